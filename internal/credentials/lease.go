package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// The lease protocol on the token cache bucket: which token every worker
// uses, and who obtains or renews it.

// resolve finds the token every worker is to use for the conference: the
// one in the token cache bucket if it is valid and not the one known to be
// rejected, else one this Store obtains or renews under a lease.
func (s *Store) resolve(ctx context.Context, conferenceID string, known *cached) (*cached, error) {
	var rejected string
	if known != nil && known.rejected {
		rejected = known.token
	}
	wait := leaseWaitMin
	for range maxRounds {
		v, rev, err := s.shared.load(ctx, conferenceID)
		if err != nil {
			return nil, err
		}
		now := s.now()
		valid := v.Token != "" && v.Token != rejected && now.Before(fromMS(v.ExpiresAt))
		leased := v.leasedBy(s.holder, now)
		switch {
		case valid && now.Before(fromMS(v.RefreshAt)):
			return s.entry(v, fromMS(v.RefreshAt)), nil
		case valid && leased:
			// Another worker is renewing it: use it meanwhile.
			return s.entry(v, now.Add(renewalRecheck)), nil
		case leased:
			// Another worker is obtaining one: wait for it.
			if err := sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("token for conference %s: %w", conferenceID, err)
			}
			wait = min(2*wait, leaseWaitMax)
			continue
		}
		claim := sharedToken{Lease: &tokenLease{Holder: s.holder, Until: ms(now.Add(s.lease))}}
		ttl := s.lease
		if valid {
			claim.Token, claim.ExpiresAt, claim.RefreshAt, claim.ObtainedAt = v.Token, v.ExpiresAt, v.RefreshAt, v.ObtainedAt
			ttl = max(ttl, fromMS(v.ExpiresAt).Sub(now))
		}
		leaseRev, err := s.shared.put(ctx, conferenceID, claim, rev, ttl)
		if errors.Is(err, errConflict) {
			continue // another worker wrote first: look again
		}
		if err != nil {
			return nil, err
		}
		return s.obtain(ctx, conferenceID, claim, leaseRev, valid)
	}
	return nil, fmt.Errorf("token for conference %s: the token cache entry kept changing", conferenceID)
}

// obtain calls the token API under the lease held at leaseRev: it keeps
// the current token of claim alive if valid, else obtains a new one, and
// writes the result to the bucket, which ends the lease.
func (s *Store) obtain(ctx context.Context, conferenceID string, claim sharedToken, leaseRev uint64, valid bool) (*cached, error) {
	current := ""
	if valid {
		current = claim.Token
	}
	tok, err := s.fetch(ctx, conferenceID, current)
	now := s.now()
	if err != nil {
		// Give the lease up, so that another worker may try at once; a
		// valid token stays in place for everyone meanwhile.
		release := sharedToken{}
		ttl := time.Second
		if valid {
			release = claim
			release.Lease = nil
			ttl = fromMS(claim.ExpiresAt).Sub(now)
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, rerr := s.shared.put(rctx, conferenceID, release, leaseRev, ttl); rerr != nil && !errors.Is(rerr, errConflict) {
			s.log.Debug("token cache lease not released; it runs out by itself",
				zap.String("conferenceID", conferenceID), zap.Error(rerr))
		}
		cancel()
		return nil, err
	}
	next := s.sharedFor(tok, now)
	if _, err := s.shared.put(ctx, conferenceID, next, leaseRev, fromMS(next.ExpiresAt).Sub(now)); err != nil {
		// The lease ran out and another worker took over, or the bucket
		// is unreachable: this token is good all the same.
		s.log.Warn("control token obtained but not shared",
			zap.String("conferenceID", conferenceID), zap.Error(err))
	}
	return s.entry(next, fromMS(next.RefreshAt)), nil
}

// entry is what the Store keeps of v, looking at the bucket again at
// recheck.
func (s *Store) entry(v sharedToken, recheck time.Time) *cached {
	refresh := fromMS(v.RefreshAt)
	if refresh.Before(recheck) {
		recheck = refresh
	}
	return &cached{token: v.Token, expires: fromMS(v.ExpiresAt), refreshAt: refresh, recheckAt: recheck}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

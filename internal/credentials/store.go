package credentials

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/meetingclient"
)

// DefaultRefreshBefore is the default of Config.RefreshBefore.
const DefaultRefreshBefore = 5 * time.Minute

const (
	// assumedLifetime is how long a token is taken to live when the token
	// API says neither its expiry nor its lifetime: the vendor documents 30
	// minutes.
	assumedLifetime = 30 * time.Minute
	// refreshRetry is how long a Store keeps using a still valid token after
	// renewing it failed, before it tries again.
	refreshRetry = 15 * time.Second
	// minPrune is the cache size below which expired tokens are never
	// pruned.
	minPrune = 256
)

// Config configures a Store.
type Config struct {
	// Bucket is the name of the key-value bucket of host passwords; it must
	// be the bucket of the KeyValue given to New. Defaults to DefaultBucket.
	Bucket string
	// RefreshBefore is how long before its expiry a cached token is kept
	// alive; a token that lives less than twice as long is kept alive at
	// half its life. Defaults to 5m.
	RefreshBefore time.Duration
	// Now is the clock that decides when cached tokens expire. Defaults to
	// time.Now.
	Now func() time.Time
}

// TokenAPI obtains meeting control tokens; *meetingclient.Client satisfies
// it.
type TokenAPI interface {
	CreateConfToken(ctx context.Context, conferenceID, hostPassword string, opts ...meetingclient.TokenOption) (*meetingclient.ConfToken, error)
}

// Store hands out meeting control tokens obtained with the host passwords of
// a key-value bucket. It caches one token per conference and keeps it alive
// shortly before it expires; concurrent calls for a conference share one
// token API call. It is safe for concurrent use and starts no goroutines.
//
// A Store satisfies the dispatcher's TokenSource.
type Store struct {
	bucket        string
	refreshBefore time.Duration
	now           func() time.Time
	kv            jetstream.KeyValue
	api           TokenAPI
	log           *zap.Logger

	mu      sync.Mutex
	cache   map[string]*cached // by conference ID
	flights map[string]*flight // fetches under way, by conference ID
	pruneAt int                // cache size at which expired tokens are pruned
}

// cached is the token of one conference.
type cached struct {
	token     string
	expires   time.Time
	refreshAt time.Time // before expires: when to keep the token alive
}

// flight is one fetch of a token, shared by the calls that wait for it.
// Its fields are written before done is closed and read after.
type flight struct {
	done  chan struct{}
	token string
	err   error
	// abandoned says that the context of the call that fetched ended, so
	// err says nothing about the calls that waited.
	abandoned bool
}

// New validates cfg and returns a Store that reads host passwords from kv
// and obtains tokens from api. A nil log logs nothing.
func New(cfg Config, kv jetstream.KeyValue, api TokenAPI, log *zap.Logger) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	switch {
	case cfg.RefreshBefore < 0:
		return nil, fmt.Errorf("credentials config: RefreshBefore must not be negative, got %s", cfg.RefreshBefore)
	case cfg.RefreshBefore == 0:
		cfg.RefreshBefore = DefaultRefreshBefore
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if kv == nil {
		return nil, errors.New("credentials: kv must not be nil")
	}
	if api == nil {
		return nil, errors.New("credentials: api must not be nil")
	}
	if got := kv.Bucket(); got != cfg.Bucket {
		return nil, fmt.Errorf("credentials config: Bucket must name the bucket of kv: Bucket is %q, kv is bucket %q", cfg.Bucket, got)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Store{
		bucket:        cfg.Bucket,
		refreshBefore: cfg.RefreshBefore,
		now:           cfg.Now,
		kv:            kv,
		api:           api,
		log:           log,
		cache:         map[string]*cached{},
		flights:       map[string]*flight{},
		pruneAt:       minPrune,
	}, nil
}

// Token returns a control token for the conference: the cached one while it
// is fresh, else one obtained with the conference's host password, read from
// the bucket afresh. A cached token near its expiry is kept alive; if that
// fails while the token is still valid, the token is returned and renewal is
// tried again later.
//
// Errors: one wrapping ErrNoCredentials when the bucket has no usable
// password for the conference (ErrInvalidCredentials when its value is
// unusable); the token API's error, wrapped, so that meetingclient.ClassOf
// tells its class (ClassNotStarted, ClassPermanent for a wrong password, and
// so on); or one wrapping ctx.Err().
func (s *Store) Token(ctx context.Context, conferenceID string) (string, error) {
	if conferenceID == "" {
		return "", errors.New("token: empty conference ID")
	}
	for {
		s.mu.Lock()
		now := s.now()
		c := s.cache[conferenceID]
		if c != nil && now.Before(c.refreshAt) {
			tok := c.token
			s.mu.Unlock()
			return tok, nil
		}
		if f := s.flights[conferenceID]; f != nil {
			if c != nil && now.Before(c.expires) {
				// Another call is renewing the token; this one still works.
				tok := c.token
				s.mu.Unlock()
				return tok, nil
			}
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", fmt.Errorf("token for conference %s: %w", conferenceID, ctx.Err())
			}
			if f.abandoned && ctx.Err() == nil {
				continue // the call that fetched gave up; this one has not
			}
			return f.token, f.err
		}
		f := &flight{done: make(chan struct{})}
		s.flights[conferenceID] = f
		var current *cached
		if c != nil && now.Before(c.expires) {
			cp := *c
			current = &cp
		}
		s.mu.Unlock()

		s.run(ctx, conferenceID, current, f)
		return f.token, f.err
	}
}

// run fetches a token for f, caches it and wakes the calls waiting for f.
// current is the cached token if it is still valid, else nil.
func (s *Store) run(ctx context.Context, conferenceID string, current *cached, f *flight) {
	// Set in case fetch panics, so that the waiting calls get an error.
	f.err = fmt.Errorf("token for conference %s: fetch did not complete", conferenceID)
	defer func() {
		s.mu.Lock()
		delete(s.flights, conferenceID)
		s.mu.Unlock()
		close(f.done)
	}()

	tok, err := s.fetch(ctx, conferenceID, current)

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if err == nil {
		s.putLocked(conferenceID, s.entryFor(tok, now), now)
		f.token, f.err = tok.Token, nil
		return
	}
	c := s.cache[conferenceID]
	if ctx.Err() != nil {
		f.err, f.abandoned = err, true
		return
	}
	if current != nil && c != nil && c.token == current.token && now.Before(c.expires) {
		// Renewal failed, but the token works until it expires (unless the
		// vendor rejects it: then Invalidate drops it).
		c.refreshAt = now.Add(min(refreshRetry, c.expires.Sub(now)/2))
		s.log.Warn("keeping a control token alive failed; using it until it expires",
			zap.String("conferenceID", conferenceID), zap.Time("expires", c.expires),
			zap.Stringer("class", meetingclient.ClassOf(err)), zap.Error(err))
		f.token, f.err = c.token, nil
		return
	}
	if c != nil && !now.Before(c.expires) {
		delete(s.cache, conferenceID)
	}
	f.err = err
}

// fetch reads the conference's host password and obtains a token with it:
// by keeping current alive if there is one, else, or if the vendor rejects
// current, a new one.
func (s *Store) fetch(ctx context.Context, conferenceID string, current *cached) (*meetingclient.ConfToken, error) {
	creds, err := s.credentials(ctx, conferenceID)
	if err != nil {
		return nil, err
	}
	if current != nil {
		tok, err := s.api.CreateConfToken(ctx, conferenceID, creds.HostPassword, meetingclient.WithOldToken(current.token))
		if err == nil {
			err = checkToken(tok)
		}
		if err == nil {
			s.log.Debug("kept control token alive",
				zap.String("conferenceID", conferenceID), zap.Bool("sameToken", tok.Token == current.token),
				zap.Time("expires", tok.ExpireTime), zap.String("apiRequestID", tok.RequestID))
			return tok, nil
		}
		if class := meetingclient.ClassOf(err); class != meetingclient.ClassAuthExpired {
			return nil, fmt.Errorf("keep token of conference %s alive: %w", conferenceID, err)
		}
		s.log.Debug("keep-alive rejected; obtaining a new control token",
			zap.String("conferenceID", conferenceID), zap.Error(err))
	}
	tok, err := s.api.CreateConfToken(ctx, conferenceID, creds.HostPassword)
	if err == nil {
		err = checkToken(tok)
	}
	if err != nil {
		return nil, fmt.Errorf("obtain token for conference %s: %w", conferenceID, err)
	}
	s.log.Debug("obtained control token",
		zap.String("conferenceID", conferenceID), zap.Time("expires", tok.ExpireTime),
		zap.String("apiRequestID", tok.RequestID))
	return tok, nil
}

// checkToken guards against a TokenAPI that answers without a token.
func checkToken(tok *meetingclient.ConfToken) error {
	if tok == nil || tok.Token == "" {
		return &meetingclient.APIError{Op: meetingclient.OpCreateToken, Message: "response has no token", Class: meetingclient.ClassRetryable}
	}
	return nil
}

// credentials reads and decodes the conference's value in the bucket.
func (s *Store) credentials(ctx context.Context, conferenceID string) (Credentials, error) {
	e, err := s.kv.Get(ctx, conferenceID)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return Credentials{}, fmt.Errorf("%w for conference %s in bucket %s", ErrNoCredentials, conferenceID, s.bucket)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return Credentials{}, fmt.Errorf("%w for conference %q in bucket %s: the ID is not a valid key", ErrNoCredentials, conferenceID, s.bucket)
	case err != nil:
		return Credentials{}, fmt.Errorf("read credentials of conference %s from bucket %s: %w", conferenceID, s.bucket, err)
	}
	c, err := decodeCredentials(e.Value())
	if err != nil {
		return Credentials{}, fmt.Errorf("%w for conference %s in bucket %s (revision %d): %w",
			ErrInvalidCredentials, conferenceID, s.bucket, e.Revision(), err)
	}
	return c, nil
}

// entryFor decides how long to cache tok, obtained at now. The expiry is
// tok.ExpireTime, bounded by now+tok.Lifetime so that a clock behind the
// vendor's does not keep a token too long; without either it is assumed to
// live 30 minutes.
func (s *Store) entryFor(tok *meetingclient.ConfToken, now time.Time) *cached {
	expires := tok.ExpireTime
	switch {
	case tok.Lifetime > 0:
		if limit := now.Add(tok.Lifetime); !expires.After(now) || expires.After(limit) {
			expires = limit
		}
	case !expires.After(now):
		expires = now.Add(assumedLifetime)
	}
	lead := min(s.refreshBefore, expires.Sub(now)/2)
	return &cached{token: tok.Token, expires: expires, refreshAt: expires.Add(-lead)}
}

// putLocked caches c, first pruning expired tokens when the cache has grown
// to pruneAt, so that it holds about as many tokens as are live. s.mu is
// held.
func (s *Store) putLocked(conferenceID string, c *cached, now time.Time) {
	if _, ok := s.cache[conferenceID]; !ok && len(s.cache) >= s.pruneAt {
		for id, e := range s.cache {
			if !now.Before(e.expires) {
				delete(s.cache, id)
			}
		}
		s.pruneAt = max(minPrune, 2*len(s.cache))
	}
	s.cache[conferenceID] = c
}

// Invalidate drops the cached token of the conference if it is token, which
// the vendor rejected; the next Token call obtains a new one. A token that
// is not the cached one (an older one, or one from elsewhere) changes
// nothing.
func (s *Store) Invalidate(conferenceID, token string) {
	if token == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cache[conferenceID]; c != nil && c.token == token {
		delete(s.cache, conferenceID)
		s.log.Debug("dropped rejected control token", zap.String("conferenceID", conferenceID))
	}
}

// String describes s without any token.
func (s *Store) String() string {
	s.mu.Lock()
	n := len(s.cache)
	s.mu.Unlock()
	return fmt.Sprintf("credentials.Store{Bucket: %s, CachedTokens: %d}", s.bucket, n)
}

// GoString describes s without any token, for %#v.
func (s *Store) GoString() string { return s.String() }

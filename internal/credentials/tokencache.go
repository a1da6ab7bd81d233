package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultTokenBucket is the default name of the key-value bucket that
// holds the control token of each conference for every worker of a
// deployment.
const DefaultTokenBucket = "hangup_tokens"

// MaxTokenLife is the bucket-wide age limit of the token cache: the
// vendor's tokens live 30 minutes, and no entry outlives its token.
const MaxTokenLife = 30 * time.Minute

// errConflict: the cache entry changed since it was read.
var errConflict = errors.New("token cache entry changed meanwhile")

// sharedToken is a conference's entry in the token cache bucket. Times are
// Unix milliseconds, so that workers agree on them whatever their time zone.
// Token is a secret: the bucket is protected like the bucket of host
// passwords.
type sharedToken struct {
	Token      string `json:"token,omitempty"`
	ExpiresAt  int64  `json:"expiresAt,omitempty"`
	RefreshAt  int64  `json:"refreshAt,omitempty"`
	ObtainedAt int64  `json:"obtainedAt,omitempty"`
	// Lease, while Until has not passed, says that Holder is obtaining or
	// renewing the token: the others use Token if it is still valid and
	// otherwise wait for the new one.
	Lease *tokenLease `json:"lease,omitempty"`
}

type tokenLease struct {
	Holder string `json:"holder"`
	Until  int64  `json:"until"`
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// leasedBy reports whether someone other than holder holds a live lease.
func (v *sharedToken) leasedBy(holder string, now time.Time) bool {
	return v.Lease != nil && v.Lease.Holder != holder && now.Before(fromMS(v.Lease.Until))
}

// tokenCache reads and writes the token cache bucket with compare-and-set
// on the revision. Each write carries a per-message TTL, so an entry
// disappears when its token (or the lease it holds) runs out.
type tokenCache struct {
	kv      jetstream.KeyValue
	js      jetstream.JetStream
	subject string // "$KV.<bucket>."
}

func newTokenCache(kv jetstream.KeyValue, js jetstream.JetStream) *tokenCache {
	return &tokenCache{kv: kv, js: js, subject: "$KV." + kv.Bucket() + "."}
}

// load returns the conference's entry and its revision: a zero entry and
// revision 0 when there is none. An entry that cannot be decoded is
// returned empty with its revision, so that it is overwritten.
func (c *tokenCache) load(ctx context.Context, conferenceID string) (sharedToken, uint64, error) {
	e, err := c.kv.Get(ctx, conferenceID)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return sharedToken{}, 0, nil
	case errors.Is(err, jetstream.ErrInvalidKey):
		// Neither bucket can hold anything for it.
		return sharedToken{}, 0, fmt.Errorf("%w for conference %q: the ID is not a valid key", ErrNoCredentials, conferenceID)
	case err != nil:
		return sharedToken{}, 0, fmt.Errorf("read token cache %s: %w", c.kv.Bucket(), err)
	}
	var v sharedToken
	if json.Unmarshal(e.Value(), &v) != nil {
		return sharedToken{}, e.Revision(), nil
	}
	return v, e.Revision(), nil
}

// put writes v if the entry is still at revision rev (0: there is none),
// to live for ttl, and returns the new revision. It fails with errConflict
// when another worker wrote first.
func (c *tokenCache) put(ctx context.Context, conferenceID string, v sharedToken, rev uint64, ttl time.Duration) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	// Message TTLs have a granularity of a second.
	ttl = max(ttl.Round(time.Second), time.Second)
	if rev == 0 {
		// Create also replaces the marker a TTL leaves behind.
		n, err := c.kv.Create(ctx, conferenceID, data, jetstream.KeyTTL(ttl))
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSequence(err) {
			return 0, errConflict
		}
		if err != nil {
			return 0, fmt.Errorf("write token cache %s: %w", c.kv.Bucket(), err)
		}
		return n, nil
	}
	msg := nats.NewMsg(c.subject + conferenceID)
	msg.Data = data
	ack, err := c.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	if isWrongLastSequence(err) {
		return 0, errConflict
	}
	if err != nil {
		return 0, fmt.Errorf("write token cache %s: %w", c.kv.Bucket(), err)
	}
	return ack.Sequence, nil
}

// isWrongLastSequence reports whether err is the server refusing a
// compare-and-set (10071; 10164 on replicated streams).
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

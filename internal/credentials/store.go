package credentials

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/meetingclient"
)

// DefaultRefreshBefore is the default of Config.RefreshBefore.
const DefaultRefreshBefore = 5 * time.Minute

// DefaultLease is the default of Config.Lease.
const DefaultLease = 15 * time.Second

const (
	// assumedLifetime is how long a token is taken to live when the token
	// API says neither its expiry nor its lifetime: the vendor documents 30
	// minutes.
	assumedLifetime = 30 * time.Minute
	// refreshRetry is how long a Store keeps using a still valid token after
	// renewing it failed, before it tries again.
	refreshRetry = 15 * time.Second
	// renewalRecheck is how often a Store looks at the token cache again
	// while another worker renews a token that still works.
	renewalRecheck = 250 * time.Millisecond
	// leaseWaitMin and leaseWaitMax bound the polling of the token cache
	// while another worker obtains a token that none has.
	leaseWaitMin = 20 * time.Millisecond
	leaseWaitMax = 500 * time.Millisecond
	// maxRounds bounds the compare-and-set rounds of one Token call.
	maxRounds = 100
	// minPrune is the cache size below which expired tokens are never
	// pruned.
	minPrune = 256
)

// Config configures a Store.
type Config struct {
	// Bucket is the name of the key-value bucket of host passwords; it must
	// be the bucket of Deps.Credentials. Defaults to DefaultBucket.
	Bucket string
	// TokenBucket is the name of the key-value bucket that caches tokens
	// for every worker of a deployment; it must be the bucket of
	// Deps.Tokens. Defaults to DefaultTokenBucket.
	TokenBucket string
	// RefreshBefore is how long before its expiry a cached token is kept
	// alive; a token that lives less than five times as long is kept alive
	// at four fifths of its life. Defaults to 5m.
	RefreshBefore time.Duration
	// Lease is how long a worker may take to obtain or renew a token before
	// another may try instead. Defaults to 15s.
	Lease time.Duration
	// Holder names this Store in the leases it takes; a random suffix
	// keeps two Stores of one name apart. Defaults to <hostname>-<pid>.
	Holder string
	// Now is the clock that decides when tokens expire and leases end.
	// Defaults to time.Now.
	Now func() time.Time
}

// Deps are the parts a Store talks to.
type Deps struct {
	// Credentials is the bucket of host passwords. Required.
	Credentials jetstream.KeyValue
	// Tokens is the token cache bucket (see EnsureTokenBucket). Required.
	Tokens jetstream.KeyValue
	// JetStream writes the token cache entries with their TTLs. Required.
	JetStream jetstream.JetStream
	// API obtains the tokens. Required.
	API TokenAPI
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
}

// TokenAPI obtains meeting control tokens; *meetingclient.Client satisfies
// it.
type TokenAPI interface {
	CreateConfToken(ctx context.Context, conferenceID, hostPassword string, opts ...meetingclient.TokenOption) (*meetingclient.ConfToken, error)
}

// Store hands out meeting control tokens obtained with the host passwords of
// a key-value bucket, one token per conference for every worker of a
// deployment.
//
// The token of each conference lives in the token cache bucket, written
// with compare-and-set on the revision. To obtain or renew a token a worker
// first takes a lease on the entry; the others keep using the current token
// while it is valid, or wait for the new one, and never call the token API
// themselves while the lease holds. So a deployment makes about one token
// call per conference per token life, however many workers it has, and
// workers never replace each other's tokens, which matters where the vendor
// keeps only the newest token of a meeting alive. A lease that its holder
// does not finish within Config.Lease (it died) is taken over.
//
// In memory a Store keeps what it read, until the token is due for renewal,
// so that most calls cost no round trip; concurrent calls for a conference
// share one look at the bucket. It is safe for concurrent use and starts no
// goroutines.
//
// A Store satisfies the dispatcher's TokenSource.
type Store struct {
	bucket        string
	tokenBucket   string
	refreshBefore time.Duration
	lease         time.Duration
	holder        string
	now           func() time.Time
	creds         jetstream.KeyValue
	shared        *tokenCache
	api           TokenAPI
	log           *zap.Logger

	mu      sync.Mutex
	cache   map[string]*cached // by conference ID
	flights map[string]*flight // look-ups under way, by conference ID
	pruneAt int                // cache size at which expired tokens are pruned
}

// cached is what a Store knows of a conference's token.
type cached struct {
	token     string
	expires   time.Time
	refreshAt time.Time // before expires: when to keep the token alive
	// recheckAt is when to look at the token cache bucket again; at
	// refreshAt at the latest.
	recheckAt time.Time
	// rejected says the vendor refused token: it is never handed out
	// again, and not taken from the bucket either.
	rejected bool
}

// usable reports whether c holds a token that may still work at now.
func (c *cached) usable(now time.Time) bool {
	return c != nil && !c.rejected && now.Before(c.expires)
}

// flight is one look-up of a token, shared by the calls that wait for it.
// Its fields are written before done is closed and read after.
type flight struct {
	done  chan struct{}
	token string
	err   error
	// again says that err says nothing about the conference's token:
	// the call that looked up gave up (its context ended), or the token
	// it found was rejected meanwhile. A call with a live context looks
	// again.
	again bool
}

// New validates cfg and deps and returns a Store.
func New(cfg Config, deps Deps) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.TokenBucket == "" {
		cfg.TokenBucket = DefaultTokenBucket
	}
	switch {
	case cfg.RefreshBefore < 0:
		return nil, fmt.Errorf("credentials config: RefreshBefore must not be negative, got %s", cfg.RefreshBefore)
	case cfg.RefreshBefore == 0:
		cfg.RefreshBefore = DefaultRefreshBefore
	}
	switch {
	case cfg.Lease < 0:
		return nil, fmt.Errorf("credentials config: Lease must not be negative, got %s", cfg.Lease)
	case cfg.Lease == 0:
		cfg.Lease = DefaultLease
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = host + "-" + strconv.Itoa(os.Getpid())
	}
	cfg.Holder += "." + nuid.Next()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case deps.Credentials == nil:
		return nil, errors.New("credentials: Deps.Credentials must not be nil")
	case deps.Tokens == nil:
		return nil, errors.New("credentials: Deps.Tokens must not be nil")
	case deps.JetStream == nil:
		return nil, errors.New("credentials: Deps.JetStream must not be nil")
	case deps.API == nil:
		return nil, errors.New("credentials: Deps.API must not be nil")
	}
	if got := deps.Credentials.Bucket(); got != cfg.Bucket {
		return nil, fmt.Errorf("credentials config: Bucket must name the bucket of Deps.Credentials: Bucket is %q, Deps.Credentials is bucket %q", cfg.Bucket, got)
	}
	if got := deps.Tokens.Bucket(); got != cfg.TokenBucket {
		return nil, fmt.Errorf("credentials config: TokenBucket must name the bucket of Deps.Tokens: TokenBucket is %q, Deps.Tokens is bucket %q", cfg.TokenBucket, got)
	}
	if cfg.Bucket == cfg.TokenBucket {
		return nil, fmt.Errorf("credentials config: Bucket and TokenBucket must differ, both are %q", cfg.Bucket)
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	return &Store{
		bucket:        cfg.Bucket,
		tokenBucket:   cfg.TokenBucket,
		refreshBefore: cfg.RefreshBefore,
		lease:         cfg.Lease,
		holder:        cfg.Holder,
		now:           cfg.Now,
		creds:         deps.Credentials,
		shared:        newTokenCache(deps.Tokens, deps.JetStream),
		api:           deps.API,
		log:           deps.Logger,
		cache:         map[string]*cached{},
		flights:       map[string]*flight{},
		pruneAt:       minPrune,
	}, nil
}

// Token returns the control token of the conference that every worker of
// the deployment uses: the one this Store read last while it is fresh,
// else the one in the token cache bucket, else one this Store obtains
// with the conference's host password, read from the bucket afresh. A
// token near its expiry is kept alive by one worker; if that fails while
// the token is still valid, the token is returned and renewal is tried
// again later. A token passed to Invalidate is never returned again.
//
// Errors: one wrapping ErrNoCredentials when the bucket has no usable
// password for the conference (ErrInvalidCredentials when its value is
// unusable); the token API's error, wrapped, so that meetingclient.ClassOf
// tells its class (ClassNotStarted, ClassPermanent for a wrong password, and
// so on); an error of the token cache bucket; or one wrapping ctx.Err().
func (s *Store) Token(ctx context.Context, conferenceID string) (string, error) {
	if conferenceID == "" {
		return "", errors.New("token: empty conference ID")
	}
	for {
		s.mu.Lock()
		now := s.now()
		c := s.cache[conferenceID]
		if c.usable(now) && now.Before(c.recheckAt) {
			tok := c.token
			s.mu.Unlock()
			return tok, nil
		}
		if f := s.flights[conferenceID]; f != nil {
			if c.usable(now) {
				// Another call is looking for a newer one; this one still
				// works.
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
			if f.again && ctx.Err() == nil {
				continue
			}
			return f.token, f.err
		}
		f := &flight{done: make(chan struct{})}
		s.flights[conferenceID] = f
		var known *cached
		if c != nil {
			cp := *c
			known = &cp
		}
		s.mu.Unlock()

		s.run(ctx, conferenceID, known, f)
		if f.again && ctx.Err() == nil {
			continue
		}
		return f.token, f.err
	}
}

// run looks up a token for f, keeps it and wakes the calls waiting for f.
// known is what the Store knew of the conference's token, or nil.
func (s *Store) run(ctx context.Context, conferenceID string, known *cached, f *flight) {
	// Set in case resolve panics, so that the waiting calls get an error.
	f.err = fmt.Errorf("token for conference %s: look-up did not complete", conferenceID)
	defer func() {
		s.mu.Lock()
		delete(s.flights, conferenceID)
		s.mu.Unlock()
		close(f.done)
	}()

	got, err := s.resolve(ctx, conferenceID, known)

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	c := s.cache[conferenceID]
	if err == nil {
		if c != nil && c.rejected && c.token == got.token {
			// Rejected while this look-up ran: the next one passes it by.
			f.err, f.again = fmt.Errorf("token for conference %s: the vendor rejected it meanwhile", conferenceID), true
			return
		}
		s.putLocked(conferenceID, got, now)
		f.token, f.err = got.token, nil
		return
	}
	if ctx.Err() != nil {
		f.err, f.again = err, true
		return
	}
	if c.usable(now) {
		// Renewal or the bucket failed, but the token works until it
		// expires (unless the vendor rejects it: then Invalidate marks it).
		c.recheckAt = now.Add(min(refreshRetry, c.expires.Sub(now)/2))
		s.log.Warn("renewing a control token failed; using it until it expires",
			zap.String("conferenceID", conferenceID), zap.Time("expires", c.expires),
			zap.Stringer("class", meetingclient.ClassOf(err)), zap.Error(err))
		f.token, f.err = c.token, nil
		return
	}
	if c != nil && !c.rejected && !now.Before(c.expires) {
		delete(s.cache, conferenceID)
	}
	f.err = err
}

// fetch reads the conference's host password and obtains a token with it:
// by keeping current alive if there is one, else, or if the vendor rejects
// current, a new one.
func (s *Store) fetch(ctx context.Context, conferenceID, current string) (*meetingclient.ConfToken, error) {
	creds, err := s.credentials(ctx, conferenceID)
	if err != nil {
		return nil, err
	}
	if current != "" {
		tok, err := s.api.CreateConfToken(ctx, conferenceID, creds.HostPassword, meetingclient.WithOldToken(current))
		if err == nil {
			err = checkToken(tok)
		}
		if err == nil {
			s.log.Debug("kept control token alive",
				zap.String("conferenceID", conferenceID), zap.Bool("sameToken", tok.Token == current),
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
	e, err := s.creds.Get(ctx, conferenceID)
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

// sharedFor decides how long tok, obtained at now, is valid and when to
// keep it alive. The expiry is tok.ExpireTime, bounded by now+tok.Lifetime
// so that a clock behind the vendor's does not keep a token too long;
// without either it is assumed to live 30 minutes.
func (s *Store) sharedFor(tok *meetingclient.ConfToken, now time.Time) sharedToken {
	expires := tok.ExpireTime
	switch {
	case tok.Lifetime > 0:
		if limit := now.Add(tok.Lifetime); !expires.After(now) || expires.After(limit) {
			expires = limit
		}
	case !expires.After(now):
		expires = now.Add(assumedLifetime)
	}
	lead := min(s.refreshBefore, expires.Sub(now)/5)
	return sharedToken{Token: tok.Token, ExpiresAt: ms(expires), RefreshAt: ms(expires.Add(-lead)), ObtainedAt: ms(now)}
}

// putLocked keeps c, first pruning expired tokens when the cache has grown
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

// Invalidate tells the Store that the vendor rejected token for the
// conference: it is never handed out again, and the next Token call looks
// for a newer one (another worker may have it already) or obtains one. A
// token older than the one the Store knows changes nothing.
func (s *Store) Invalidate(conferenceID, token string) {
	if token == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cache[conferenceID]
	switch {
	case c == nil:
		// Remember it, so that it is not taken from the bucket either.
		now := s.now()
		s.putLocked(conferenceID, &cached{token: token, expires: now.Add(assumedLifetime), rejected: true}, now)
	case c.token == token && !c.rejected:
		c.rejected = true
		s.log.Debug("control token rejected by the vendor", zap.String("conferenceID", conferenceID))
	}
}

// String describes s without any token.
func (s *Store) String() string {
	s.mu.Lock()
	n := len(s.cache)
	s.mu.Unlock()
	return fmt.Sprintf("credentials.Store{Bucket: %s, TokenBucket: %s, CachedTokens: %d}", s.bucket, s.tokenBucket, n)
}

// GoString describes s without any token, for %#v.
func (s *Store) GoString() string { return s.String() }

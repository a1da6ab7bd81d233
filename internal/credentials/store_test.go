package credentials_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/meetingclient"
)

// A Store is what the dispatcher asks for tokens.
var _ dispatcher.TokenSource = (*credentials.Store)(nil)

const (
	confID   = "914083136"
	password = "host-pw-s3cr3t-8812"
)

// fakeClock is the clock shared by a Store and the simulator.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a simulator behind a real HTTP server with the real client, a real
// embedded JetStream key-value bucket, a shared fake clock and the Store
// under test, whose logs are observed.
type env struct {
	t      *testing.T
	sim    *meetingsim.Simulator
	client *meetingclient.Client
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	tokens jetstream.KeyValue
	clock  *fakeClock
	logs   *observedLogs
	api    credentials.TokenAPI
	cfg    credentials.Config
	store  *credentials.Store
}

// observedLogs are the logs of every Store of an env.
type observedLogs struct {
	*observer.ObservedLogs
	core zapcore.Core
}

type envOption func(*envConfig)

type envConfig struct {
	sim   meetingsim.Config
	store credentials.Config
	// api wraps the real client, if set.
	api func(credentials.TokenAPI) credentials.TokenAPI
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	clock := newFakeClock()
	cfg := envConfig{
		sim:   meetingsim.Config{Now: clock.Now},
		store: credentials.Config{Now: clock.Now},
	}
	for _, o := range opts {
		o(&cfg)
	}
	sim, err := meetingsim.New(cfg.sim)
	require.NoError(t, err)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	client, err := meetingclient.New(meetingclient.Config{BaseURL: srv.URL})
	require.NoError(t, err)
	t.Cleanup(client.Close)

	_, js := natstest.Connect(t, natstest.Run(t))
	kv, err := credentials.EnsureBucket(t.Context(), js, credentials.DefaultBucket, 1)
	require.NoError(t, err)
	tokens, err := credentials.EnsureTokenBucket(t.Context(), js, credentials.DefaultTokenBucket, 1)
	require.NoError(t, err)

	core, observed := observer.New(zapcore.DebugLevel)
	logs := &observedLogs{ObservedLogs: observed, core: core}
	var api credentials.TokenAPI = client
	if cfg.api != nil {
		api = cfg.api(client)
	}
	e := &env{t: t, sim: sim, client: client, js: js, kv: kv, tokens: tokens, clock: clock, logs: logs, api: api, cfg: cfg.store}
	e.store = e.newStore()
	t.Cleanup(e.requireNoSecretsLogged)
	return e
}

// newStore returns another Store on the same buckets, API and clock: what
// another worker of the deployment has.
func (e *env) newStore() *credentials.Store {
	e.t.Helper()
	store, err := credentials.New(e.cfg, credentials.Deps{
		Credentials: e.kv, Tokens: e.tokens, JetStream: e.js, API: e.api, Logger: zap.New(e.logs.core),
	})
	require.NoError(e.t, err)
	return store
}

func (e *env) addMeeting(id, pw string, st meetingsim.MeetingState) {
	e.t.Helper()
	require.NoError(e.t, e.sim.AddMeeting(meetingsim.Meeting{ID: id, HostPassword: pw, State: st, Participants: []string{"p1"}}))
}

func (e *env) putPassword(id, pw string) {
	e.t.Helper()
	v, err := json.Marshal(credentials.Credentials{HostPassword: pw})
	require.NoError(e.t, err)
	_, err = e.kv.Put(e.t.Context(), id, v)
	require.NoError(e.t, err)
}

// running adds a running meeting with its password in the bucket.
func (e *env) running(id string) {
	e.t.Helper()
	e.addMeeting(id, password, meetingsim.StateRunning)
	e.putPassword(id, password)
}

func (e *env) token(id string) string {
	e.t.Helper()
	tok, err := e.store.Token(e.t.Context(), id)
	require.NoError(e.t, err)
	require.NotEmpty(e.t, tok)
	return tok
}

// requireNoSecretsLogged checks every log entry, message and fields, for
// the password and any token the simulator handed out.
func (e *env) requireNoSecretsLogged() {
	t := e.t
	t.Helper()
	for _, entry := range e.logs.All() {
		enc := zapcore.NewMapObjectEncoder()
		for _, f := range entry.Context {
			f.AddTo(enc)
		}
		text := entry.Message + " " + fmt.Sprint(enc.Fields)
		require.NotContains(t, text, password)
		require.NotContains(t, text, "stb", "a log entry holds a token: %s", entry.Message)
	}
}

func (e *env) stats() meetingsim.Stats { return e.sim.Stats() }

func TestNewValidatesConfig(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Run(t))
	kv, err := credentials.EnsureBucket(t.Context(), js, "", 1)
	require.NoError(t, err)
	other, err := credentials.EnsureBucket(t.Context(), js, "other_credentials", 1)
	require.NoError(t, err)
	tokens, err := credentials.EnsureTokenBucket(t.Context(), js, "", 1)
	require.NoError(t, err)
	client, err := meetingclient.New(meetingclient.Config{})
	require.NoError(t, err)
	t.Cleanup(client.Close)
	deps := func(mod func(*credentials.Deps)) credentials.Deps {
		d := credentials.Deps{Credentials: kv, Tokens: tokens, JetStream: js, API: client}
		if mod != nil {
			mod(&d)
		}
		return d
	}

	tests := []struct {
		name string
		cfg  credentials.Config
		deps credentials.Deps
		want string // "" for no error
	}{
		{name: "defaults", deps: deps(nil)},
		{name: "named bucket", cfg: credentials.Config{Bucket: "other_credentials", RefreshBefore: time.Minute, Lease: time.Second},
			deps: deps(func(d *credentials.Deps) { d.Credentials = other })},
		{name: "negative refresh", cfg: credentials.Config{RefreshBefore: -time.Second}, deps: deps(nil), want: "RefreshBefore must not be negative"},
		{name: "negative lease", cfg: credentials.Config{Lease: -time.Second}, deps: deps(nil), want: "Lease must not be negative"},
		{name: "bucket mismatch", deps: deps(func(d *credentials.Deps) { d.Credentials = other }), want: "Bucket must name the bucket of Deps.Credentials"},
		{name: "token bucket mismatch", deps: deps(func(d *credentials.Deps) { d.Tokens = other }), want: "TokenBucket must name the bucket of Deps.Tokens"},
		{name: "one bucket for both", cfg: credentials.Config{TokenBucket: credentials.DefaultBucket},
			deps: deps(func(d *credentials.Deps) { d.Tokens = kv }), want: "Bucket and TokenBucket must differ"},
		{name: "nil credentials", deps: deps(func(d *credentials.Deps) { d.Credentials = nil }), want: "Deps.Credentials must not be nil"},
		{name: "nil tokens", deps: deps(func(d *credentials.Deps) { d.Tokens = nil }), want: "Deps.Tokens must not be nil"},
		{name: "nil jetstream", deps: deps(func(d *credentials.Deps) { d.JetStream = nil }), want: "Deps.JetStream must not be nil"},
		{name: "nil api", deps: deps(func(d *credentials.Deps) { d.API = nil }), want: "Deps.API must not be nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := credentials.New(tt.cfg, tt.deps)
			if tt.want == "" {
				require.NoError(t, err)
				require.NotNil(t, s)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestTokenCachesToken(t *testing.T) {
	e := newEnv(t)
	e.running(confID)

	first := e.token(confID)
	e.clock.Advance(20 * time.Minute)
	require.Equal(t, first, e.token(confID))
	require.Equal(t, 1, e.stats().TokenRequests)
	require.Equal(t, 1, e.stats().TokensIssued)
}

func TestTokenConcurrentCallsShareOneRequest(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		// Keep the one request open long enough for the other calls to
		// pile up behind it; the assertion holds without it too.
		c.sim.Faults = meetingsim.Faults{LatencyBase: 50 * time.Millisecond}
	})
	e.running(confID)

	const calls = 50
	start := make(chan struct{})
	tokens := make([]string, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			<-start
			tokens[i], errs[i] = e.store.Token(t.Context(), confID)
		})
	}
	close(start)
	wg.Wait()

	for i := range calls {
		require.NoError(t, errs[i])
		require.Equal(t, tokens[0], tokens[i])
	}
	require.NotEmpty(t, tokens[0])
	require.Equal(t, 1, e.stats().TokenRequests)
}

func TestTokenKeepsAliveNearExpiry(t *testing.T) {
	e := newEnv(t) // tokens live 30m; renewal 5m before expiry
	e.running(confID)

	tok := e.token(confID)
	e.clock.Advance(24 * time.Minute)
	require.Equal(t, tok, e.token(confID))
	require.Equal(t, 1, e.stats().TokenRequests)

	e.clock.Advance(2 * time.Minute) // 4m before expiry
	require.Equal(t, tok, e.token(confID))
	st := e.stats()
	require.Equal(t, 2, st.TokenRequests)
	require.Equal(t, 1, st.TokensRenewed)
	require.Equal(t, 1, st.TokensIssued)

	// Renewed for 30m from now: cached again.
	e.clock.Advance(20 * time.Minute)
	require.Equal(t, tok, e.token(confID))
	require.Equal(t, 2, e.stats().TokenRequests)
}

// countingAPI records the calls to the real client and can fail the
// keep-alives.
type countingAPI struct {
	next credentials.TokenAPI

	mu      sync.Mutex
	opts    []int // len(opts) of each call
	failOld error // returned instead of calling next when a call keeps a token alive
}

func (a *countingAPI) CreateConfToken(ctx context.Context, conf, pw string, opts ...meetingclient.TokenOption) (*meetingclient.ConfToken, error) {
	a.mu.Lock()
	a.opts = append(a.opts, len(opts))
	fail := a.failOld
	a.mu.Unlock()
	if len(opts) > 0 && fail != nil {
		return nil, fail
	}
	return a.next.CreateConfToken(ctx, conf, pw, opts...)
}

func (a *countingAPI) calls() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.opts...)
}

func TestTokenKeepAliveRejectedObtainsNewToken(t *testing.T) {
	api := &countingAPI{failOld: &meetingclient.APIError{
		Op: meetingclient.OpCreateToken, Status: 401, Code: "USG.000000004", Class: meetingclient.ClassAuthExpired,
	}}
	e := newEnv(t, func(c *envConfig) {
		c.api = func(next credentials.TokenAPI) credentials.TokenAPI { api.next = next; return api }
	})
	e.running(confID)

	first := e.token(confID)
	e.clock.Advance(26 * time.Minute)
	second := e.token(confID)
	require.NotEqual(t, first, second)
	require.Equal(t, []int{0, 1, 0}, api.calls(), "new, keep-alive (rejected), new")
	require.Equal(t, 2, e.stats().TokensIssued)
	require.Zero(t, e.stats().TokensRenewed)
}

func TestTokenKeepAliveFailureKeepsValidToken(t *testing.T) {
	api := &countingAPI{}
	e := newEnv(t, func(c *envConfig) {
		c.api = func(next credentials.TokenAPI) credentials.TokenAPI { api.next = next; return api }
	})
	e.running(confID)

	tok := e.token(confID)
	e.clock.Advance(26 * time.Minute)
	e.sim.SetDown(true)
	require.Equal(t, tok, e.token(confID), "the token still works for 4m")
	require.Equal(t, tok, e.token(confID), "renewal is not retried at once")
	require.Equal(t, []int{0, 1}, api.calls())
	require.Len(t, e.logs.FilterMessageSnippet("renewing a control token failed").All(), 1)

	e.sim.SetDown(false)
	e.clock.Advance(20 * time.Second)
	require.Equal(t, tok, e.token(confID))
	require.Equal(t, []int{0, 1, 1}, api.calls())
	require.Equal(t, 1, e.stats().TokensRenewed)

	// Once the token has expired, a failure is an error.
	e.clock.Advance(31 * time.Minute)
	e.sim.SetDown(true)
	_, err := e.store.Token(t.Context(), confID)
	require.Error(t, err)
	require.Equal(t, meetingclient.ClassRetryable, meetingclient.ClassOf(err))
}

func TestInvalidateObtainsNewToken(t *testing.T) {
	e := newEnv(t)
	e.running(confID)

	first := e.token(confID)
	e.sim.ExpireTokens() // the vendor rejects it now
	e.store.Invalidate(confID, first)
	second := e.token(confID)
	require.NotEqual(t, first, second)
	st := e.stats()
	require.Equal(t, 2, st.TokensIssued)
	require.Zero(t, st.TokensRenewed, "a rejected token is not kept alive")
	require.Equal(t, second, e.token(confID))
}

func TestInvalidateStaleTokenKeepsCachedOne(t *testing.T) {
	e := newEnv(t)
	e.running(confID)

	tok := e.token(confID)
	e.store.Invalidate(confID, "stb0000000000000000000000000000000000000000000000000")
	e.store.Invalidate(confID, "")
	e.store.Invalidate("other-conference", tok)
	require.Equal(t, tok, e.token(confID))
	require.Equal(t, 1, e.stats().TokenRequests)
}

func TestTokenMissingKey(t *testing.T) {
	e := newEnv(t)
	e.addMeeting(confID, password, meetingsim.StateRunning)

	_, err := e.store.Token(t.Context(), confID)
	require.ErrorIs(t, err, credentials.ErrNoCredentials)
	require.NotErrorIs(t, err, credentials.ErrInvalidCredentials)
	require.EqualError(t, err, "no credentials for conference 914083136 in bucket meeting_credentials")
	require.Zero(t, e.stats().TokenRequests)

	// A deleted key is missing too.
	e.putPassword(confID, password)
	require.NoError(t, e.kv.Delete(t.Context(), confID))
	_, err = e.store.Token(t.Context(), confID)
	require.ErrorIs(t, err, credentials.ErrNoCredentials)

	// So is a conference ID that cannot be a key.
	_, err = e.store.Token(t.Context(), "a b*")
	require.ErrorIs(t, err, credentials.ErrNoCredentials)

	_, err = e.store.Token(t.Context(), "")
	require.ErrorContains(t, err, "empty conference ID")
}

func TestTokenInvalidValue(t *testing.T) {
	const secret = "s3cr3t-in-value"
	tests := map[string]string{
		"not JSON":             secret,
		"truncated JSON":       `{"hostPassword": "` + secret,
		"not an object":        `["` + secret + `"]`,
		"password not string":  `{"hostPassword": ["` + secret + `"]}`,
		"empty password":       `{"hostPassword": "", "note": "` + secret + `"}`,
		"missing password":     `{"password": "` + secret + `"}`,
		"null":                 `null`,
		"empty value":          ``,
		"password is a number": `{"hostPassword": 1234}`,
	}
	e := newEnv(t)
	e.addMeeting(confID, password, meetingsim.StateRunning)
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.kv.Put(t.Context(), confID, []byte(value))
			require.NoError(t, err)
			_, err = e.store.Token(t.Context(), confID)
			require.ErrorIs(t, err, credentials.ErrInvalidCredentials)
			require.ErrorIs(t, err, credentials.ErrNoCredentials)
			require.ErrorContains(t, err, "invalid credentials for conference 914083136 in bucket meeting_credentials")
			require.NotContains(t, err.Error(), secret)
			require.NotContains(t, err.Error(), "1234")
		})
	}
	require.Zero(t, e.stats().TokenRequests)
}

func TestTokenWrongPassword(t *testing.T) {
	e := newEnv(t)
	e.addMeeting(confID, "the-right-one", meetingsim.StateRunning)
	e.putPassword(confID, password)

	_, err := e.store.Token(t.Context(), confID)
	require.Error(t, err)
	require.Equal(t, meetingclient.ClassPermanent, meetingclient.ClassOf(err))
	ae, ok := errors.AsType[*meetingclient.APIError](err)
	require.True(t, ok)
	require.Equal(t, "MMC.111072065", ae.Code)
	require.NotContains(t, err.Error(), password)
	require.Contains(t, err.Error(), "obtain token for conference 914083136")
	require.Equal(t, 1, e.stats().TokenRequests, "a wrong password is tried once")
}

func TestTokenMeetingNotStarted(t *testing.T) {
	e := newEnv(t)
	e.addMeeting(confID, password, meetingsim.StateNotStarted)
	e.putPassword(confID, password)

	_, err := e.store.Token(t.Context(), confID)
	require.Equal(t, meetingclient.ClassNotStarted, meetingclient.ClassOf(err))
	require.True(t, meetingclient.ClassOf(err).Retryable())

	require.NoError(t, e.sim.SetMeetingState(confID, meetingsim.StateRunning))
	e.token(confID)
}

func TestTokenReadsRotatedPassword(t *testing.T) {
	e := newEnv(t)
	e.addMeeting(confID, password, meetingsim.StateRunning)
	e.putPassword(confID, "the-old-password")

	_, err := e.store.Token(t.Context(), confID)
	require.Equal(t, meetingclient.ClassPermanent, meetingclient.ClassOf(err))
	require.NotContains(t, err.Error(), "the-old-password")

	e.putPassword(confID, password)
	tok := e.token(confID)

	// A cached token is used without reading the bucket.
	require.NoError(t, e.kv.Delete(t.Context(), confID))
	require.Equal(t, tok, e.token(confID))
	require.Equal(t, 2, e.stats().TokenRequests)
}

// A call that waits for another call's fetch does not fail because that
// call gave up: it looks again, and makes the token call itself.
func TestTokenOutlivesCanceledFetcher(t *testing.T) {
	api := &blockingAPI{entered: make(chan struct{})}
	// The Store reads its clock under its lock, just before it looks for
	// a fetch in flight: the first reading once the fetcher is blocked is
	// the waiter's, and the fetch cannot end before the waiter has found
	// it.
	var armed atomic.Bool
	waiting := make(chan struct{})
	e := newEnv(t, func(c *envConfig) {
		c.api = func(next credentials.TokenAPI) credentials.TokenAPI { api.next = next; return api }
		now := c.store.Now
		c.store.Now = func() time.Time {
			if armed.CompareAndSwap(true, false) {
				close(waiting)
			}
			return now()
		}
	})
	e.running(confID)

	ctx, cancel := context.WithCancel(t.Context())
	fetcherErr := make(chan error, 1)
	go func() {
		_, err := e.store.Token(ctx, confID)
		fetcherErr <- err
	}()
	<-api.entered
	armed.Store(true)
	waiter := make(chan string, 1)
	go func() {
		tok, err := e.store.Token(t.Context(), confID)
		if err != nil {
			tok = "error: " + err.Error()
		}
		waiter <- tok
	}()
	<-waiting
	cancel()
	require.ErrorIs(t, <-fetcherErr, context.Canceled)
	tok := <-waiter
	require.True(t, strings.HasPrefix(tok, "stb"), tok)
	calls, most := api.counts()
	require.Equal(t, 2, calls, "the fetcher's call, then the waiter's")
	require.Equal(t, 1, most, "the waiter waited for the fetch instead of starting its own")
}

// blockingAPI blocks its first call until the call's context ends, and
// counts the calls.
type blockingAPI struct {
	next    credentials.TokenAPI
	entered chan struct{}

	mu       sync.Mutex
	calls    int
	inFlight int
	most     int // calls in flight at once, at most
}

func (a *blockingAPI) CreateConfToken(ctx context.Context, conf, pw string, opts ...meetingclient.TokenOption) (*meetingclient.ConfToken, error) {
	a.mu.Lock()
	a.calls++
	first := a.calls == 1
	a.inFlight++
	a.most = max(a.most, a.inFlight)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.inFlight--
		a.mu.Unlock()
	}()
	if first {
		close(a.entered)
		<-ctx.Done()
		return nil, fmt.Errorf("create token: %w", ctx.Err())
	}
	return a.next.CreateConfToken(ctx, conf, pw, opts...)
}

func (a *blockingAPI) counts() (calls, most int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls, a.most
}

func TestTokenContextEnded(t *testing.T) {
	e := newEnv(t)
	e.running(confID)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.store.Token(ctx, confID)
	require.ErrorIs(t, err, context.Canceled)
}

func TestSecretsNotPrinted(t *testing.T) {
	e := newEnv(t)
	e.running(confID)
	tok := e.token(confID)

	c := credentials.Credentials{HostPassword: password}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		require.NotContains(t, fmt.Sprintf(format, c), password, format)
		require.NotContains(t, fmt.Sprintf(format, &c), password, format)
		require.NotContains(t, fmt.Sprintf(format, e.store), tok, format)
	}
	require.Equal(t, "Credentials{HostPassword: [redacted]}", c.String())
	require.Equal(t, `Credentials{HostPassword: ""}`, credentials.Credentials{}.String())
	require.Equal(t, "credentials.Store{Bucket: meeting_credentials, TokenBucket: hangup_tokens, CachedTokens: 1}", e.store.String())

	enc := zapcore.NewMapObjectEncoder()
	zap.Any("creds", c).AddTo(enc)
	require.NotContains(t, fmt.Sprint(enc.Fields), password)

	// The stored form keeps it, of course.
	b, err := json.Marshal(c)
	require.NoError(t, err)
	require.JSONEq(t, `{"hostPassword":"`+password+`"}`, string(b))
}

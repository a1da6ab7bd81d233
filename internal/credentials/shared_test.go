package credentials_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/meetingclient"
)

// workers returns n Stores on the env's buckets, as n workers of one
// deployment have; the env's own Store is the first.
func (e *env) workers(n int) []*credentials.Store {
	out := []*credentials.Store{e.store}
	for len(out) < n {
		out = append(out, e.newStore())
	}
	return out
}

func TestWorkersShareOneToken(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.sim.TokenMode = meetingsim.TokenModeOneLive })
	e.running(confID)
	stores := e.workers(3)

	first := e.token(confID)
	for _, s := range stores {
		tok, err := s.Token(t.Context(), confID)
		require.NoError(t, err)
		require.Equal(t, first, tok)
	}
	require.Equal(t, 1, e.stats().TokenRequests)
	require.Zero(t, e.stats().TokensReplaced)
}

// Workers asking at the same moment make one token call between them: the
// one holding the lease calls, the others wait for its token.
func TestConcurrentWorkersMakeOneTokenCall(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		c.sim.TokenMode = meetingsim.TokenModeOneLive
		c.sim.Faults = meetingsim.Faults{LatencyBase: 50 * time.Millisecond}
	})
	e.running(confID)
	stores := e.workers(3)

	const callsEach = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	for _, s := range stores {
		for range callsEach {
			wg.Go(func() {
				tok, err := s.Token(t.Context(), confID)
				require.NoError(t, err)
				mu.Lock()
				got[tok]++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	require.Len(t, got, 1, "every worker uses the same token")
	require.Equal(t, 1, e.stats().TokenRequests)
	require.Zero(t, e.stats().TokensReplaced)
}

// Near expiry one worker keeps the token alive; the others use the renewed
// entry without a call of their own.
func TestOneWorkerRenewsForAll(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.sim.TokenMode = meetingsim.TokenModeOneLive })
	e.running(confID)
	stores := e.workers(3)
	tok := e.token(confID)
	for _, s := range stores[1:] {
		_, err := s.Token(t.Context(), confID)
		require.NoError(t, err)
	}

	e.clock.Advance(26 * time.Minute) // 4m before expiry
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			got, err := s.Token(t.Context(), confID)
			require.NoError(t, err)
			require.Equal(t, tok, got)
		})
	}
	wg.Wait()
	st := e.stats()
	require.Equal(t, 2, st.TokenRequests, "one call to obtain, one to keep alive")
	require.Equal(t, 1, st.TokensRenewed)

	// Renewed for 30m from the renewal: nobody calls again before 25m.
	e.clock.Advance(20 * time.Minute)
	for _, s := range stores {
		got, err := s.Token(t.Context(), confID)
		require.NoError(t, err)
		require.Equal(t, tok, got)
	}
	require.Equal(t, 2, e.stats().TokenRequests)
}

// When the token expires, the first worker the vendor refuses obtains a new
// one; the others, refused the same old token, find the new one in the
// bucket and make no token call.
func TestExpiredTokenIsReplacedOnceForAllWorkers(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.sim.TokenMode = meetingsim.TokenModeOneLive })
	e.running(confID)
	stores := e.workers(3)
	old := e.token(confID)
	for _, s := range stores[1:] {
		_, err := s.Token(t.Context(), confID)
		require.NoError(t, err)
	}

	e.sim.ExpireTokens()
	for _, s := range stores {
		s.Invalidate(confID, old)
	}
	tokens := map[string]bool{}
	for _, s := range stores {
		tok, err := s.Token(t.Context(), confID)
		require.NoError(t, err)
		tokens[tok] = true
	}
	require.Len(t, tokens, 1)
	require.NotContains(t, tokens, old)
	st := e.stats()
	require.Equal(t, 2, st.TokenRequests)
	require.Equal(t, 2, st.TokensIssued)

	// The new token works at the vendor.
	for tok := range tokens {
		_, err := e.client.HangUp(t.Context(), confID, tok, []string{"p1"})
		require.NoError(t, err)
	}
}

// A worker that learns of a rejection late, after another worker replaced
// the token, takes the replacement from the bucket.
func TestStaleWorkerTakesTheReplacement(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.sim.TokenMode = meetingsim.TokenModeOneLive })
	e.running(confID)
	a, b := e.workers(2)[0], e.workers(2)[1]
	old := e.token(confID)
	_, err := b.Token(t.Context(), confID)
	require.NoError(t, err)

	e.sim.ExpireTokens()
	a.Invalidate(confID, old)
	fresh, err := a.Token(t.Context(), confID)
	require.NoError(t, err)

	b.Invalidate(confID, old)
	got, err := b.Token(t.Context(), confID)
	require.NoError(t, err)
	require.Equal(t, fresh, got)
	require.Equal(t, 2, e.stats().TokenRequests)

	// An Invalidate of the old token after the fact changes nothing.
	a.Invalidate(confID, old)
	again, err := a.Token(t.Context(), confID)
	require.NoError(t, err)
	require.Equal(t, fresh, again)
	require.Equal(t, 2, e.stats().TokenRequests)
}

// A rejected token is never handed out again, even while the bucket still
// holds it and says it is valid.
func TestRejectedTokenIsNotTakenFromTheBucket(t *testing.T) {
	e := newEnv(t)
	e.running(confID)
	a := e.store
	b := e.newStore()
	old := e.token(confID)

	// b never held the token; it hears of the rejection first.
	b.Invalidate(confID, old)
	tok, err := b.Token(t.Context(), confID)
	require.NoError(t, err)
	require.NotEqual(t, old, tok)

	got, err := a.Token(t.Context(), confID)
	require.NoError(t, err)
	require.Equal(t, old, got, "a has not heard of the rejection and its copy is fresh")
	a.Invalidate(confID, old)
	got, err = a.Token(t.Context(), confID)
	require.NoError(t, err)
	require.Equal(t, tok, got)
	require.Equal(t, 2, e.stats().TokenRequests)
}

// A worker that took the lease and died does not block the others for
// longer than the lease.
func TestLeaseOfADeadWorkerIsTakenOver(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.store.Lease = 10 * time.Second })
	e.running(confID)
	dead := map[string]any{"lease": map[string]any{"holder": "dead-worker", "until": e.clock.Now().Add(10 * time.Second).UnixMilli()}}
	data, err := json.Marshal(dead)
	require.NoError(t, err)
	_, err = e.tokens.Create(t.Context(), confID, data, jetstream.KeyTTL(time.Minute))
	require.NoError(t, err)

	done := make(chan string, 1)
	go func() {
		tok, err := e.store.Token(t.Context(), confID)
		if err != nil {
			tok = "error: " + err.Error()
		}
		done <- tok
	}()
	// The lease holds: no call yet.
	require.Never(t, func() bool { return e.stats().TokenRequests > 0 }, 200*time.Millisecond, 20*time.Millisecond)
	e.clock.Advance(11 * time.Second)
	tok := <-done
	require.True(t, strings.HasPrefix(tok, "stb"), tok)
	require.Equal(t, 1, e.stats().TokenRequests)
}

// A worker whose token call fails gives the lease up at once, so another
// worker may try without waiting for it to run out.
func TestFailedTokenCallReleasesTheLease(t *testing.T) {
	e := newEnv(t)
	e.addMeeting(confID, password, meetingsim.StateNotStarted)
	e.putPassword(confID, password)
	a, b := e.store, e.newStore()

	_, err := a.Token(t.Context(), confID)
	require.Equal(t, meetingclient.ClassNotStarted, meetingclient.ClassOf(err))
	require.NoError(t, e.sim.SetMeetingState(confID, meetingsim.StateRunning))
	tok, err := b.Token(t.Context(), confID)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok, "stb"))
	require.Equal(t, 2, e.stats().TokenRequests)
}

// The token cache holds secrets: one entry per conference (history 1),
// gone with its token (a TTL no longer than the token's life), and the
// bucket's entries never live longer than the vendor's tokens.
func TestTokenCacheProtection(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.sim.TokenLifetime = 4 * time.Second })
	e.running(confID)
	tok := e.token(confID)

	st, err := e.tokens.Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(1), st.History())
	require.Equal(t, credentials.MaxTokenLife, st.TTL())
	require.Positive(t, st.LimitMarkerTTL())

	stream, err := e.js.Stream(t.Context(), "KV_"+credentials.DefaultTokenBucket)
	require.NoError(t, err)
	msg, err := stream.GetLastMsgForSubject(t.Context(), "$KV."+credentials.DefaultTokenBucket+"."+confID)
	require.NoError(t, err)
	ttl, err := time.ParseDuration(msg.Header.Get(jetstream.MsgTTLHeader))
	require.NoError(t, err)
	require.LessOrEqual(t, ttl, 4*time.Second)
	require.Contains(t, string(msg.Data), tok, "the entry is the token itself")
	require.NotContains(t, string(msg.Data), password)
}

func TestEnsureTokenBucketRefusesABucketWithoutTTLs(t *testing.T) {
	e := newEnv(t)
	_, err := e.js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "plain_tokens"})
	require.NoError(t, err)
	_, err = credentials.EnsureTokenBucket(t.Context(), e.js, "plain_tokens", 1)
	require.ErrorContains(t, err, "must allow per-entry TTLs")
	_, err = credentials.OpenTokenBucket(t.Context(), e.js, "plain_tokens")
	require.ErrorContains(t, err, "must allow per-entry TTLs")
	_, err = credentials.OpenTokenBucket(t.Context(), e.js, "missing_tokens")
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound)
}

// rejectingAPI hands out a new token per call and, for the first call,
// has the vendor's rejection of that token reported before it returns: a
// rejection that arrives while the look-up that found the token runs.
type rejectingAPI struct {
	store *credentials.Store
	calls atomic.Int32
	now   func() time.Time
}

func (a *rejectingAPI) CreateConfToken(_ context.Context, conf, _ string, _ ...meetingclient.TokenOption) (*meetingclient.ConfToken, error) {
	n := a.calls.Add(1)
	tok := fmt.Sprintf("stb%048d", n)
	if n == 1 {
		a.store.Invalidate(conf, tok)
	}
	return &meetingclient.ConfToken{Token: tok, ExpireTime: a.now().Add(30 * time.Minute), Lifetime: 30 * time.Minute}, nil
}

// A token rejected while the look-up that found it ran is not handed out,
// and the caller gets the next one rather than an error.
func TestTokenRejectedDuringItsLookUpIsReplaced(t *testing.T) {
	api := &rejectingAPI{}
	e := newEnv(t, func(c *envConfig) {
		c.api = func(credentials.TokenAPI) credentials.TokenAPI { return api }
	})
	api.store, api.now = e.store, e.clock.Now
	e.putPassword(confID, password)

	tok, err := e.store.Token(t.Context(), confID)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("stb%048d", 2), tok)
	require.EqualValues(t, 2, api.calls.Load())
}

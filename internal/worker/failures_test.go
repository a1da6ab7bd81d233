package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"encoding/pem"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/schemas"
)

// storeCredentials writes a meeting's host password to the credentials
// bucket, as the system that schedules meetings does.
func (h *harness) storeCredentials(conf, password string) {
	h.t.Helper()
	kv, err := credentials.EnsureBucket(context.Background(), h.js, credentials.DefaultBucket, 1)
	require.NoError(h.t, err)
	data, err := json.Marshal(credentials.Credentials{HostPassword: password})
	require.NoError(h.t, err)
	_, err = kv.Put(context.Background(), conf, data)
	require.NoError(h.t, err)
}

// gauge reads a gauge from a worker's registry.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// startWith starts a worker with its own registry.
func (h *harness) startWith(mod func(*Config)) (*Worker, *prometheus.Registry) {
	h.t.Helper()
	cfg := h.config()
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	w, err := New(cfg, Deps{Logger: h.log, Registry: reg})
	require.NoError(h.t, err)
	require.NoError(h.t, w.Start(context.Background()))
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w, reg
}

func withCredentials(c *Config) { c.CredentialsBucket = credentials.DefaultBucket }

func TestStoredCredentialsReplaceMissingAndRejectedTokens(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	h.meeting("c", participants("p", 40)...)
	h.storeCredentials("c", "pw-c")
	stale := "stb" + strings.Repeat("a", 48)
	for i := 0; i < 30; i++ {
		tok := ""
		if i%3 == 0 {
			tok = stale
		}
		h.request(fmt.Sprintf("r%d", i), "c", tok, fmt.Sprintf("p-%d", i+1))
	}
	h.start(func(c *Config) { withCredentials(c); c.MaxBatch = 4 })
	s, rep := h.audit("pw-c", stale)
	require.Equal(t, 30, rep.ByStatus[schemas.StatusSucceeded])
	require.Empty(t, s.DeadLetters)
	require.Equal(t, 1, h.sim.Stats().TokenRequests, "a burst for one conference obtains one token")
}

func TestExpiredTokensAreReplacedFromCredentials(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	h.meeting("c", participants("p", 20)...)
	h.storeCredentials("c", "pw-c")
	h.request("first", "c", "", "p-1")
	h.start(func(c *Config) { withCredentials(c); c.Linger = time.Millisecond })
	h.drained(10 * time.Second)
	h.sim.ExpireTokens()
	h.request("second", "c", "", "p-2")
	_, rep := h.audit("pw-c")
	require.Equal(t, 2, rep.ByStatus[schemas.StatusSucceeded])
	require.Equal(t, 2, h.sim.Stats().TokenRequests, "one token, then one more after the vendor rejected it")
}

func TestWrongStoredPasswordFailsWithoutLeakingIt(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	h.meeting("c", "a")
	h.storeCredentials("c", "not-the-password")
	h.request("r", "c", "", "a")
	h.start(withCredentials)
	s, rep := h.audit("not-the-password", "pw-c")
	require.Equal(t, 1, rep.ByStatus[schemas.StatusFailed])
	require.Equal(t, schemas.ReasonRejected, s.DeadLetters[0].Reason)
}

func TestMeetingNotStartedIsHandedBackWithoutBurningDeliveries(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("c", "a", "b")
	require.NoError(t, h.sim.SetMeetingState("c", meetingsim.StateNotStarted))
	h.request("early", "c", tok, "a", "b")
	_, reg := h.startWith(func(c *Config) { c.MaxDeliveries = 2; c.DeferInitial = 100 * time.Millisecond })
	require.Eventually(t, func() bool { return gauge(t, reg, "hangup_requests_deferred_total") >= 3 },
		20*time.Second, 20*time.Millisecond, "handed back several times")
	require.Equal(t, 0.0, gauge(t, reg, "hangup_requests_held"), "a deferred request is not held in memory")
	require.NoError(t, h.sim.SetMeetingState("c", meetingsim.StateRunning))
	s, rep := h.audit(tok)
	require.Equal(t, 1, rep.ByStatus[schemas.StatusSucceeded], "deferrals did not count towards max deliveries")
	require.Empty(t, s.DeadLetters)
}

func TestEndedMeetingBurstMakesOneCall(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("c", participants("p", 60)...)
	require.NoError(t, h.sim.SetMeetingState("c", meetingsim.StateEnded))
	for i := 0; i < 60; i++ {
		h.request(fmt.Sprintf("r%d", i), "c", tok, fmt.Sprintf("p-%d", i+1))
	}
	h.start(func(c *Config) { c.MaxBatch = 5 })
	_, rep := h.audit(tok)
	require.Equal(t, 60, rep.ByStatus[schemas.StatusFailed])
	require.Equal(t, 60, rep.ByReason[schemas.ReasonRejected])
	require.Len(t, h.sim.Calls(), 1, "the dead meeting is remembered")
}

func TestBreakerPausesDuringOutageAndNothingFails(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tokens := map[string]string{}
	for c := 0; c < 10; c++ {
		conf := fmt.Sprintf("c%d", c)
		tokens[conf] = h.meeting(conf, participants("p", 5)...)
	}
	h.sim.SetDown(true)
	for i := 0; i < 40; i++ {
		conf := fmt.Sprintf("c%d", i%10)
		h.request(fmt.Sprintf("r%d", i), conf, tokens[conf], fmt.Sprintf("p-%d", i/10+1))
	}
	_, reg := h.startWith(func(c *Config) { c.BreakerThreshold = 5; c.RetryMaxElapsed = 3 * time.Second })
	require.Eventually(t, func() bool { return gauge(t, reg, "hangup_breaker_open") == 1 }, 10*time.Second, 10*time.Millisecond)
	callsWhenOpen := len(h.sim.Calls())
	// Longer than the retry budget: without the breaker every request
	// would be dead-lettered as retries_exhausted.
	require.Eventually(t, func() bool { return len(h.sim.Calls()) >= callsWhenOpen+3 }, 20*time.Second, 20*time.Millisecond,
		"probes keep testing the API")
	require.Less(t, len(h.sim.Calls()), callsWhenOpen+12, "while open, only probes are sent")
	h.sim.SetDown(false)
	_, rep := h.audit()
	require.Equal(t, 40, rep.ByStatus[schemas.StatusSucceeded])
	require.Equal(t, 0.0, gauge(t, reg, "hangup_breaker_open"))
}

func TestExpiresAtIsHonouredWhileRetrying(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Faults: meetingsim.Faults{
		Errors: []meetingsim.ErrorFault{{Rate: 1, Status: 500}},
	}})
	tok := h.meeting("c", "a")
	exp := time.Now().Add(1500 * time.Millisecond).UTC()
	h.requestWith(schemas.Request{RequestID: "soon", ConferenceID: "c", ParticipantIDs: []string{"a"}, ExpiresAt: &exp}, tok)
	h.start(func(c *Config) { c.BreakerThreshold = -1 })
	s, rep := h.audit(tok)
	require.Equal(t, 1, rep.ByStatus[schemas.StatusExpired])
	require.Empty(t, s.DeadLetters)
	require.Greater(t, s.Results[0].Attempts, 1, "it was retried until it expired")
	require.False(t, s.Results[0].CompletedAt.Before(exp))
}

func TestUntrustedCertificateIsRefusedUntilItsCAIsConfigured(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("c", "a")
	tlsAPI := httptest.NewUnstartedServer(h.sim.Handler())
	// The refused handshakes are the point of the test; keep them quiet.
	tlsAPI.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsAPI.StartTLS()
	t.Cleanup(tlsAPI.Close)
	h.request("r", "c", tok, "a")

	w, reg := h.startWith(func(c *Config) { c.APIBaseURL = tlsAPI.URL; c.BreakerThreshold = 2 })
	require.Eventually(t, func() bool { return gauge(t, reg, "hangup_breaker_open") == 1 }, 10*time.Second, 10*time.Millisecond,
		"every call fails certificate verification")
	require.Empty(t, h.sim.Calls(), "no request reached the API")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = w.Stop(ctx)
	cancel()

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	cert := tlsAPI.Certificate()
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600))
	h.start(func(c *Config) { c.APIBaseURL = tlsAPI.URL; c.APICAFile = caFile; c.WorkerID = "with-ca" })
	_, rep := h.audit(tok)
	require.Equal(t, 1, rep.ByStatus[schemas.StatusSucceeded])
}

// publishResult stores a result as an earlier attempt would have.
func (h *harness) publishResult(r schemas.Result) {
	h.t.Helper()
	data, err := json.Marshal(r)
	require.NoError(h.t, err)
	_, err = h.js.Publish(context.Background(), schemas.DefaultResultSubjectPrefix+"."+r.ConferenceID, data, jetstream.WithMsgID(r.RequestID))
	require.NoError(h.t, err)
}

func TestAnEarlierResultStandsWhenTheAckWasLost(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	endedTok := h.meeting("ended", "a")
	require.NoError(t, h.sim.SetMeetingState("ended", meetingsim.StateEnded))
	liveTok := h.meeting("live", "b")
	now := time.Now().UTC()
	// "was-ok" succeeded before; this attempt would fail (the meeting has
	// ended since): no dead letter may follow a succeeded result.
	h.publishResult(schemas.Result{RequestID: "was-ok", ConferenceID: "ended", ParticipantIDs: []string{"a"},
		Status: schemas.StatusSucceeded, Disconnected: []string{"a"}, FailedParticipantIDs: []string{},
		AlreadyGone: []string{}, BatchIDs: []string{"earlier-1"}, Attempts: 1, HTTPStatus: 200, ReceivedAt: now, CompletedAt: now, WorkerID: "earlier"})
	// "was-failed" failed before and crashed before its dead letter; this
	// attempt succeeds: the failure stands and gets its dead letter.
	h.publishResult(schemas.Result{RequestID: "was-failed", ConferenceID: "live", ParticipantIDs: []string{"b"},
		Status: schemas.StatusFailed, FailedParticipantIDs: []string{"b"}, Disconnected: []string{}, AlreadyGone: []string{},
		BatchIDs: []string{"earlier-2"}, Attempts: 3, HTTPStatus: 503, ErrorMessage: "SERVICE_UNAVAILABLE",
		ReceivedAt: now, CompletedAt: now, WorkerID: "earlier"})
	h.request("was-ok", "ended", endedTok, "a")
	h.request("was-failed", "live", liveTok, "b")
	h.start(nil)
	h.drained(20 * time.Second)
	s := h.snapshot()
	require.Len(t, s.Results, 2, "one result per request")
	byID := resultsByID(s)
	require.Equal(t, schemas.StatusSucceeded, byID["was-ok"].Status)
	require.Equal(t, schemas.StatusFailed, byID["was-failed"].Status)
	require.Len(t, s.DeadLetters, 1, "a dead letter only for the request whose standing result failed")
	dl := s.DeadLetters[0]
	require.Equal(t, "was-failed", dl.RequestID)
	require.Equal(t, schemas.ReasonRetriesExhausted, dl.Reason)
	require.Contains(t, dl.Error, "SERVICE_UNAVAILABLE")
}

func TestARejectedTokenIsNotTriedAgain(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	h.meeting("c", participants("p", 30)...)
	h.storeCredentials("c", "pw-c")
	stale := "stb" + strings.Repeat("b", 48)
	h.start(func(c *Config) { withCredentials(c); c.Linger = time.Millisecond })
	for i := 0; i < 15; i++ {
		h.request(fmt.Sprintf("r%d", i), "c", stale, fmt.Sprintf("p-%d", i+1))
		h.drained(10 * time.Second) // one batch each
	}
	_, rep := h.audit(stale, "pw-c")
	require.Equal(t, 15, rep.ByStatus[schemas.StatusSucceeded])
	unauthorized := 0
	for _, c := range h.sim.Calls() {
		if c.Status == 401 {
			unauthorized++
		}
	}
	require.Equal(t, 1, unauthorized, "the expired token costs one call, not one per batch")
}

func TestTokenServiceOutageDefersInsteadOfFailing(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	h.meeting("c", "a")
	h.storeCredentials("c", "pw-c")
	h.sim.SetDown(true)
	h.request("r", "c", "", "a")
	_, reg := h.startWith(func(c *Config) { withCredentials(c); c.DeferInitial = 100 * time.Millisecond; c.MaxDeliveries = 2 })
	require.Eventually(t, func() bool { return gauge(t, reg, "hangup_requests_deferred_total") >= 2 }, 20*time.Second, 20*time.Millisecond)
	h.sim.SetDown(false)
	s, rep := h.audit("pw-c")
	require.Equal(t, 1, rep.ByStatus[schemas.StatusSucceeded], "a token that could not be obtained for now is tried again later")
	require.Empty(t, s.DeadLetters)
}

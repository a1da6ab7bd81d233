package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestValidRequestsGetOneSucceededResultEach(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tokens := map[string]string{}
	for c := 1; c <= 3; c++ {
		conf := fmt.Sprintf("conf-%d", c)
		tokens[conf] = h.meeting(conf, participants("p", 20)...)
	}
	h.start(nil)
	for i := 0; i < 30; i++ {
		conf := fmt.Sprintf("conf-%d", i%3+1)
		h.request(fmt.Sprintf("req-%d", i), conf, tokens[conf], fmt.Sprintf("p-%d", i/3+1), fmt.Sprintf("p-%d", i/3+11))
	}
	s, rep := h.audit(tokens["conf-1"], tokens["conf-2"], tokens["conf-3"])
	require.Equal(t, 30, rep.ByStatus[schemas.StatusSucceeded])
	require.Empty(t, s.DeadLetters)
	require.Equal(t, 60, len(h.sim.Disconnects()))

	callIDs := map[string]bool{}
	for _, c := range h.sim.Calls() {
		callIDs[c.RequestID] = true
	}
	for _, r := range s.Results {
		require.Equal(t, "test-worker", r.WorkerID)
		require.Equal(t, 200, r.HTTPStatus)
		require.True(t, callIDs[r.APIRequestID], "apiRequestID %q is the X-Request-Id of a real call", r.APIRequestID)
		require.GreaterOrEqual(t, r.Attempts, 1)
		require.NotEmpty(t, r.BatchIDs)
		require.False(t, r.ReceivedAt.IsZero())
		require.False(t, r.CompletedAt.Before(r.ReceivedAt))
		require.ElementsMatch(t, r.ParticipantIDs, r.Disconnected)
	}
}

func TestBatchingSendsSharedIDsOnceAndFewerCalls(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("big", participants("p", 60)...)
	// Publish everything before the worker starts, so that it all
	// arrives within one linger.
	for i := 0; i < 40; i++ {
		// Request i wants p-(i+1) and p-(i+2): every ID but the ends is
		// wanted by two requests.
		h.request(fmt.Sprintf("r-%d", i), "big", tok, fmt.Sprintf("p-%d", i+1), fmt.Sprintf("p-%d", i+2))
	}
	h.start(func(c *Config) { c.Linger = 300 * time.Millisecond; c.MaxBatch = 100 })
	s, rep := h.audit(tok)
	require.Equal(t, 40, rep.ByStatus[schemas.StatusSucceeded])

	calls := h.sim.Calls()
	require.Less(t, len(calls), 40, "batching makes fewer calls than requests")
	sentTimes := map[string]int{}
	for _, c := range calls {
		require.Equal(t, 200, c.Status)
		for _, id := range c.ParticipantIDs {
			sentTimes[id]++
		}
	}
	for id, n := range sentTimes {
		require.Equal(t, 1, n, "participant %s sent %d times", id, n)
	}
	require.Len(t, sentTimes, 41)
	// r-0 and r-1 share p-2: both report it disconnected.
	byID := resultsByID(s)
	require.Contains(t, byID["r-0"].Disconnected, "p-2")
	require.Contains(t, byID["r-1"].Disconnected, "p-2")
}

func TestMaxBatchCapsIDsPerCall(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("c", participants("p", 35)...)
	h.request("all", "c", tok, participants("p", 35)...)
	h.start(func(c *Config) { c.MaxBatch = 10 })
	s, _ := h.audit(tok)
	calls := h.sim.Calls()
	require.Len(t, calls, 4)
	for _, c := range calls {
		require.LessOrEqual(t, len(c.ParticipantIDs), 10)
	}
	r := s.Results[0]
	require.Equal(t, schemas.StatusSucceeded, r.Status)
	require.Len(t, r.BatchIDs, 4, "a request spanning several calls lists them all")
	require.Len(t, r.Disconnected, 35)
}

func TestRetryableFailureIsRetriedThenSucceeds(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Faults: meetingsim.Faults{
		Errors: []meetingsim.ErrorFault{{Rate: 1, Status: 500, Code: "MMC.111070003", Message: "SERVICE_ERROR"}},
	}})
	tok := h.meeting("c", "a", "b")
	h.request("r", "c", tok, "a", "b")
	h.start(nil)
	require.Eventually(t, func() bool { return len(h.sim.Calls()) >= 3 }, 10*time.Second, 10*time.Millisecond)
	require.Empty(t, h.sim.Disconnects(), "a failed call removes no one")
	h.sim.SetFaults(meetingsim.Faults{})
	s, _ := h.audit(tok)
	r := s.Results[0]
	require.Equal(t, schemas.StatusSucceeded, r.Status)
	require.GreaterOrEqual(t, r.Attempts, 4)
	require.ElementsMatch(t, []string{"a", "b"}, r.Disconnected)
}

func TestFlowControlIsRetried(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Faults: meetingsim.Faults{FlowControlRate: 1}})
	tok := h.meeting("c", "a")
	h.request("r", "c", tok, "a")
	h.start(nil)
	require.Eventually(t, func() bool { return len(h.sim.Calls()) >= 2 }, 10*time.Second, 10*time.Millisecond)
	h.sim.SetFaults(meetingsim.Faults{})
	s, _ := h.audit(tok)
	require.Equal(t, schemas.StatusSucceeded, s.Results[0].Status)
}

func TestRetriesExhaustedGoToDeadLetters(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Faults: meetingsim.Faults{
		Errors: []meetingsim.ErrorFault{{Rate: 1, Status: 503, Code: "", Message: ""}},
	}})
	tok := h.meeting("c", "a")
	h.request("r", "c", tok, "a")
	h.start(func(c *Config) { c.RetryMaxElapsed = 300 * time.Millisecond })
	s, rep := h.audit(tok)
	require.Equal(t, 1, rep.ByStatus[schemas.StatusFailed])
	require.Len(t, s.DeadLetters, 1)
	dl := s.DeadLetters[0]
	require.Equal(t, schemas.ReasonRetriesExhausted, dl.Reason)
	require.Contains(t, dl.Error, "retries exhausted")
	require.Equal(t, 503, s.Results[0].HTTPStatus)
	require.Greater(t, s.Results[0].Attempts, 1)
	require.Empty(t, h.sim.Disconnects())
}

func TestPermanentFailureGoesToDeadLetterWithOriginalMessage(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("ended", "a", "b")
	require.NoError(t, h.sim.SetMeetingState("ended", meetingsim.StateEnded))
	tokLive := h.meeting("live", "x")
	h.request("dead", "ended", tok, "a", "b")
	h.request("fine", "live", tokLive, "x")
	h.start(nil)
	s, rep := h.audit(tok, tokLive)
	require.Equal(t, 1, rep.ByStatus[schemas.StatusFailed])
	require.Equal(t, 1, rep.ByStatus[schemas.StatusSucceeded])
	byID := resultsByID(s)
	failed := byID["dead"]
	require.Equal(t, "MMC.111071072", failed.ErrorCode)
	require.ElementsMatch(t, []string{"a", "b"}, failed.FailedParticipantIDs)
	require.Equal(t, 1, failed.Attempts, "a permanent failure is not retried")

	require.Len(t, s.DeadLetters, 1)
	dl := s.DeadLetters[0]
	require.Equal(t, schemas.ReasonRejected, dl.Reason)
	require.Equal(t, "dead", dl.RequestID)
	require.Equal(t, "ended", dl.ConferenceID)
	require.Equal(t, "meeting.disconnect.requests.ended", dl.Subject)
	require.NotZero(t, dl.StreamSequence)
	require.EqualValues(t, 1, dl.Deliveries)
	var orig schemas.Request
	require.NoError(t, json.Unmarshal(dl.Request, &orig))
	require.Equal(t, "dead", orig.RequestID)
	require.Equal(t, []string{"[redacted]"}, dl.Headers[schemas.TokenHeader])
	require.Contains(t, dl.Error, "MMC.111071072")
}

func TestStrictModeRejectionIsPinnedToSingleIDs(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Mode: meetingsim.ModeStrict})
	online := participants("on", 14)
	tok := h.meeting("c", online...)
	ids := append(append([]string{}, online...), "gone-1", "gone-2")
	h.neverOnline("c", "gone-1", "gone-2")
	h.request("r", "c", tok, ids...)
	h.start(nil)
	s, _ := h.audit(tok)
	r := s.Results[0]
	require.Equal(t, schemas.StatusSucceeded, r.Status)
	require.ElementsMatch(t, online, r.Disconnected)
	require.ElementsMatch(t, []string{"gone-1", "gone-2"}, r.AlreadyGone)
	require.Len(t, h.sim.Disconnects(), 14)
	// Two bad IDs in 16: the rejected call, one for who is online, one
	// for each of the two.
	require.LessOrEqual(t, len(h.sim.Calls()), 4)
	require.Greater(t, len(h.sim.Calls()), 1)
}

func TestBadParameterFailsOnlyTheRequestsHoldingTheID(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("c", participants("p", 12)...)
	h.sim.RejectAsMalformed("p-7")
	h.request("with-bad", "c", tok, "p-1", "p-7")
	h.request("also-bad", "c", tok, "p-7", "p-8")
	h.request("clean", "c", tok, "p-2", "p-3", "p-4", "p-5", "p-6", "p-9")
	h.start(func(c *Config) { c.Linger = 300 * time.Millisecond })
	s, rep := h.audit(tok)
	require.Equal(t, 2, rep.ByStatus[schemas.StatusFailed])
	require.Equal(t, 1, rep.ByStatus[schemas.StatusSucceeded])
	byID := resultsByID(s)
	require.Equal(t, []string{"p-7"}, byID["with-bad"].FailedParticipantIDs)
	require.Equal(t, []string{"p-1"}, byID["with-bad"].Disconnected)
	require.Equal(t, []string{"p-7"}, byID["also-bad"].FailedParticipantIDs)
	require.Equal(t, "MMC.111071061", byID["also-bad"].ErrorCode)
	require.Len(t, h.sim.Disconnects(), 8, "everyone but the bad ID is disconnected")
	require.Equal(t, 2, rep.ByReason[schemas.ReasonRejected])
}

func TestSplittingManyBadIDsStaysBounded(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Mode: meetingsim.ModeStrict})
	online := participants("on", 92)
	tok := h.meeting("c", online...)
	bad := participants("gone", 8)
	h.neverOnline("c", bad...)
	// Spread the bad IDs through one batch of 100.
	var ids []string
	for i, id := range online {
		ids = append(ids, id)
		if i%12 == 5 && len(bad) > 0 {
			ids, bad = append(ids, bad[0]), bad[1:]
		}
	}
	ids = append(ids, bad...)
	require.Len(t, ids, 100)
	h.request("mixed", "c", tok, ids...)
	h.start(func(c *Config) { c.MaxBatch = 100 })
	s, _ := h.audit(tok)
	r := s.Results[0]
	require.Equal(t, schemas.StatusSucceeded, r.Status)
	require.Len(t, r.Disconnected, 92)
	require.Len(t, r.AlreadyGone, 8)
	// The rejected call, one call for who is online, one per ID that is
	// not: halving alone would cost up to 2·log2(100) ≈ 14 per bad ID.
	require.LessOrEqual(t, len(h.sim.Calls()), 1+1+8)
	t.Logf("%d calls for 100 IDs with 8 not online", len(h.sim.Calls()))
}

func TestNewestTokenFirstThenOtherTokens(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	good := h.meeting("c", "a", "b")
	stale := "stb" + strings.Repeat("0", 48)
	h.request("old", "c", good, "a")
	h.request("new", "c", stale, "b")
	h.start(func(c *Config) { c.Linger = 300 * time.Millisecond })
	s, rep := h.audit(good, stale)
	require.Equal(t, 2, rep.ByStatus[schemas.StatusSucceeded])
	calls := h.sim.Calls()
	require.Len(t, calls, 2, "the newest token is rejected, then the other one works")
	require.Equal(t, 401, calls[0].Status)
	require.Equal(t, 200, calls[1].Status)
	for _, r := range s.Results {
		require.Equal(t, 2, r.Attempts)
	}
}

func TestNoWorkingTokenFailsAsRejected(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	h.meeting("c", "a")
	h.request("bad-token", "c", "stb"+strings.Repeat("1", 48), "a")
	h.request("no-token", "c", "", "a")
	h.start(func(c *Config) { c.Linger = 0 })
	s, rep := h.audit()
	require.Equal(t, 2, rep.ByStatus[schemas.StatusFailed])
	require.Equal(t, 2, rep.ByReason[schemas.ReasonRejected])
	require.Empty(t, h.sim.Disconnects())
	for _, dl := range s.DeadLetters {
		require.NotContains(t, dl.Error, strings.Repeat("1", 48))
	}
}

func TestExpiredRequestIsNotAttempted(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("c", "a")
	past := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	h.requestWith(schemas.Request{RequestID: "late", ConferenceID: "c", ParticipantIDs: []string{"a"}, ExpiresAt: &past}, tok)
	h.start(nil)
	s, rep := h.audit(tok)
	require.Equal(t, 1, rep.ByStatus[schemas.StatusExpired])
	require.Empty(t, s.DeadLetters)
	require.Empty(t, h.sim.Calls())
	require.Empty(t, s.Results[0].Disconnected)
}

func TestStopMidStreamLosesNothing(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Faults: meetingsim.Faults{LatencyBase: 20 * time.Millisecond, LatencyJitter: 20 * time.Millisecond}})
	const confs, per = 10, 30
	tokens := map[string]string{}
	for c := 0; c < confs; c++ {
		conf := fmt.Sprintf("c%d", c)
		tokens[conf] = h.meeting(conf, participants("p", per*2)...)
	}
	w1 := h.start(func(c *Config) { c.MaxBatch = 5; c.APIConcurrency = 4; c.MaxInFlight = 5 })
	for i := 0; i < confs*per; i++ {
		conf := fmt.Sprintf("c%d", i%confs)
		h.request(fmt.Sprintf("r%d", i), conf, tokens[conf], fmt.Sprintf("p-%d", i/confs+1), fmt.Sprintf("p-%d", i/confs+1+per))
	}
	require.Eventually(t, func() bool { return len(h.sim.Disconnects()) > 40 }, 20*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	require.NoError(t, w1.Stop(ctx))
	cancel()
	stoppedAt := len(h.sim.Disconnects())
	require.Less(t, stoppedAt, confs*per*2, "the worker stopped mid-stream")

	h.start(func(c *Config) { c.WorkerID = "second" })
	_, rep := h.audit()
	require.Equal(t, confs*per, rep.ByStatus[schemas.StatusSucceeded])
	require.Len(t, h.sim.Disconnects(), confs*per*2)
}

func TestStopDeadlineHandsBackUnfinishedRequests(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Faults: meetingsim.Faults{LatencyBase: 400 * time.Millisecond}})
	tok := h.meeting("c", participants("p", 40)...)
	for i := 0; i < 20; i++ {
		h.request(fmt.Sprintf("r%d", i), "c", tok, fmt.Sprintf("p-%d", i+1), fmt.Sprintf("p-%d", i+21))
	}
	w1 := h.start(func(c *Config) { c.MaxBatch = 2 })
	require.Eventually(t, func() bool { return len(h.sim.Calls()) >= 1 }, 10*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := w1.Stop(ctx)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the deadline passed with calls in flight")
	snap := h.snapshot()
	require.Less(t, len(snap.Results), 20, "unfinished requests got no outcome")

	h.start(func(c *Config) { c.WorkerID = "second" })
	_, rep := h.audit(tok)
	require.Equal(t, 20, rep.ByStatus[schemas.StatusSucceeded])
	require.Len(t, h.sim.Disconnects(), 40)
}

func TestCrashedWorkerMessagesAreRedelivered(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Faults: meetingsim.Faults{LatencyBase: 50 * time.Millisecond}})
	tok := h.meeting("c", participants("p", 100)...)
	for i := 0; i < 50; i++ {
		h.request(fmt.Sprintf("r%d", i), "c", tok, fmt.Sprintf("p-%d", i+1), fmt.Sprintf("p-%d", i+51))
	}
	// A worker on its own connection that dies without a graceful stop:
	// its connection is closed under it and nothing more is acked.
	nc, err := nats.Connect(h.srv.ClientURL())
	require.NoError(t, err)
	cfg := h.config()
	cfg.AckWait = 3 * time.Second
	cfg.MaxBatch = 4
	cfg.APIConcurrency = 1
	crashed, err := New(cfg, Deps{Conn: nc, Logger: h.log})
	require.NoError(t, err)
	require.NoError(t, crashed.Start(context.Background()))
	require.Eventually(t, func() bool { return len(h.sim.Disconnects()) >= 8 }, 10*time.Second, 5*time.Millisecond)
	nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = crashed.Stop(ctx)
	cancel()

	h.start(func(c *Config) { c.WorkerID = "survivor"; c.AckWait = 3 * time.Second })
	_, rep := h.audit(tok)
	require.Equal(t, 50, rep.ByStatus[schemas.StatusSucceeded])
	require.Len(t, h.sim.Disconnects(), 100)
}

func TestMaxDeliveriesDeadLettersBeforeProcessing(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("c", "a")
	h.request("poison", "c", tok, "a")
	// Deliver it four times and hand it back each time, as a worker that
	// crashes on it would.
	cons, group := h.holder()
	for i := 0; i < 4; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second), jetstream.FetchPriorityGroup(group))
		require.NoError(t, err)
		n := 0
		for m := range batch.Messages() {
			n++
			require.NoError(t, m.Nak())
		}
		require.Equal(t, 1, n)
	}
	h.start(func(c *Config) { c.MaxDeliveries = 5 })
	s, rep := h.audit(tok)
	require.Equal(t, 1, rep.ByStatus[schemas.StatusFailed])
	require.Len(t, s.DeadLetters, 1)
	require.Equal(t, schemas.ReasonMaxDeliveries, s.DeadLetters[0].Reason)
	require.EqualValues(t, 5, s.DeadLetters[0].Deliveries)
	require.Empty(t, h.sim.Calls(), "a poison message is not attempted again")
}

func TestInvalidConfigNamesTheSetting(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"NATS.URL":        func(c *Config) { c.NATS.URL = "::not a url" },
		"ShutdownTimeout": func(c *Config) { c.ShutdownTimeout = -time.Second },
		"HTTPAddr":        func(c *Config) { c.HTTPAddr = "nope" },
		"Replicas":        func(c *Config) { c.Topology.Replicas = 9 },
	} {
		cfg := Config{}
		mod(&cfg)
		_, err := New(cfg, Deps{})
		require.ErrorContains(t, err, name)
	}
}

package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// refuse is a Handler for tests that never get to hand a job over.
type refuse struct{}

func (refuse) Capacity(context.Context) (int, error)        { return 0, dispatcher.ErrStopped }
func (refuse) Submit(context.Context, dispatcher.Job) error { return dispatcher.ErrStopped }
func (refuse) Fail(context.Context, dispatcher.Job, schemas.DeadLetterReason, string) error {
	return dispatcher.ErrStopped
}
func (refuse) Reject(context.Context, dispatcher.Message, *schemas.DeadLetter, string) error {
	return dispatcher.ErrStopped
}

func TestConfigErrorsNameTheField(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	deps := Deps{JetStream: js, Handler: refuse{}}
	for field, cfg := range map[string]Config{
		"MaxDeliveries":   {WorkerID: "w", MaxDeliveries: 1},
		"MaxParticipants": {WorkerID: "w", MaxParticipants: 20000},
		"FetchBatch":      {WorkerID: "w", FetchBatch: -1},
		"FetchWait":       {WorkerID: "w", FetchWait: time.Millisecond},
		"WorkerID":        {},
	} {
		_, err := New(cfg, deps)
		require.ErrorContains(t, err, field)
	}
	_, err := New(Config{WorkerID: "w"}, Deps{JetStream: js})
	require.ErrorContains(t, err, "Deps.Handler")
}

func TestStopIsIdempotentAndSafeBeforeStart(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	c, err := New(Config{WorkerID: "w"}, Deps{JetStream: js, Handler: refuse{}})
	require.NoError(t, err)
	require.NoError(t, c.Stop(context.Background()))
	require.NoError(t, c.Stop(context.Background()))
	require.Error(t, c.Start(context.Background()), "a stopped consumer does not start")
}

func TestStartFailsWithoutTheDurableAndMayBeTriedAgain(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	h := &waiting{}
	c, err := New(Config{WorkerID: "w"}, Deps{JetStream: js, Handler: h})
	require.NoError(t, err)
	err = c.Start(context.Background())
	require.ErrorContains(t, err, "hangup-worker")

	var tc topology.Config
	tc.SetDefaults()
	require.NoError(t, topology.Ensure(context.Background(), js, tc))
	require.NoError(t, c.Start(context.Background()))
	require.Eventually(t, func() bool { return h.active.Load() == 1 }, 10*time.Second, time.Millisecond, "the loop waits for capacity")
	require.Error(t, c.Start(context.Background()), "started once")
	require.NoError(t, c.Stop(context.Background()))
	require.Zero(t, h.active.Load(), "Stop waited for the loop")
}

// waiting is a Handler whose Capacity waits until the consumer stops.
type waiting struct {
	refuse
	active atomic.Int32 // Capacity calls in progress
}

func (h *waiting) Capacity(ctx context.Context) (int, error) {
	h.active.Add(1)
	defer h.active.Add(-1)
	<-ctx.Done()
	return 0, ctx.Err()
}

// binding is a JetStream whose Consumer call waits until its context ends.
type binding struct {
	jetstream.JetStream
	entered chan struct{}
}

func (b binding) Consumer(ctx context.Context, _, _ string) (jetstream.Consumer, error) {
	close(b.entered)
	<-ctx.Done()
	return nil, ctx.Err()
}

// Stop does not wait behind a Start's network call: it ends it, and the
// Start that was binding starts nothing.
func TestStopEndsAStartInProgress(t *testing.T) {
	js := binding{entered: make(chan struct{})}
	h := &waiting{}
	c, err := New(Config{WorkerID: "w"}, Deps{JetStream: js, Handler: h})
	require.NoError(t, err)
	started := make(chan error, 1)
	go func() { started <- c.Start(context.Background()) }()
	<-js.entered
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Stop(stopCtx))
	require.ErrorContains(t, <-started, "stopped while starting")
	require.Zero(t, h.active.Load(), "no pull loop")
	require.NoError(t, c.Stop(stopCtx), "Stop twice")
	require.Error(t, c.Start(context.Background()), "a stopped consumer does not start")
}

// Start and Stop racing each other always end with no pull loop running.
func TestStartRacingStop(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	var tc topology.Config
	tc.SetDefaults()
	require.NoError(t, topology.Ensure(context.Background(), js, tc))
	for range 20 {
		h := &waiting{}
		c, err := New(Config{WorkerID: "w"}, Deps{JetStream: js, Handler: h})
		require.NoError(t, err)
		var wg sync.WaitGroup
		var startErr, stopErr error
		wg.Go(func() { startErr = c.Start(context.Background()) })
		wg.Go(func() { stopErr = c.Stop(context.Background()) })
		wg.Wait()
		require.NoError(t, stopErr)
		if startErr == nil {
			// Start won; Stop ended the loop it started.
			require.NoError(t, c.Stop(context.Background()))
		}
		require.Zero(t, h.active.Load())
	}
}

func TestBestEffortIDsKeepOnlyValidOnes(t *testing.T) {
	prefix := schemas.DefaultRequestSubjectPrefix
	cases := []struct {
		name, subject, payload string
		wantReq, wantConf      string
	}{
		{"both valid", prefix + ".c1", `{"requestID":"r1","participantIDs":7}`, "r1", "c1"},
		{"bad request ID", prefix + ".c1", `{"requestID":"r 1"}`, "", "c1"},
		{"wildcard subject token cannot name a subject", prefix + ".c*", `{"requestID":"r1"}`, "r1", ""},
		{"subject too deep", prefix + ".a.b", `{"requestID":"r1"}`, "r1", ""},
		{"not JSON", prefix + ".c1", `hello`, "", "c1"},
		{"request ID not a string", prefix + ".c1", `{"requestID":12}`, "", "c1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, c := bestEffortIDs(outcome.Source{Subject: tc.subject, Payload: []byte(tc.payload)}, prefix)
			require.Equal(t, tc.wantReq, r)
			require.Equal(t, tc.wantConf, c)
		})
	}
}

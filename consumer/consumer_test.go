package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"))
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

func TestStartFailsWithoutTheDurable(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	c, err := New(Config{WorkerID: "w"}, Deps{JetStream: js, Handler: refuse{}})
	require.NoError(t, err)
	err = c.Start(context.Background())
	require.ErrorContains(t, err, "hangup-worker")
	require.NoError(t, c.Stop(context.Background()))
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

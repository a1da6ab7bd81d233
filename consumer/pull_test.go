package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/schemas"
)

// provision creates a request stream that is not partitioned and the
// shared durable on a fresh embedded server, publishes n valid requests,
// and returns the durable's handle.
func provision(t *testing.T, n int) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	var tc topology.Config
	tc.SetDefaults()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: tc.RequestStream, Subjects: []string{tc.RequestSubjectPrefix + ".>"},
		Retention: jetstream.WorkQueuePolicy})
	require.NoError(t, err)
	_, err = js.CreateOrUpdateConsumer(ctx, tc.RequestStream, jetstream.ConsumerConfig{Durable: tc.Durable, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	for i := range n {
		data := fmt.Sprintf(`{"requestID":"r%d","conferenceID":"c1","participantIDs":["p%d"]}`, i, i)
		_, err := js.Publish(ctx, tc.RequestSubjectPrefix+".c1", []byte(data))
		require.NoError(t, err)
	}
	durable, err := js.Consumer(ctx, tc.RequestStream, tc.Durable)
	require.NoError(t, err)
	return js, durable
}

// stingy is a Handler that grants little capacity at a time, holds what
// it is given until the next Capacity call, and records every message that
// reached the client beyond what it granted.
type stingy struct {
	t       *testing.T
	durable jetstream.Consumer // to ask the server what it delivered
	grants  []int              // cycled through
	batch   int                // the consumer's FetchBatch
	want    int                // messages in the stream
	all     chan struct{}      // closed when want messages were submitted

	mu        sync.Mutex
	calls     int
	granted   int // sum of what each pull could ask for
	allowance int // what the current pull could ask for
	held      []dispatcher.Message
	submitted int
	beyond    []string // deliveries beyond the capacity granted
}

func (h *stingy) Capacity(ctx context.Context) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Capacity runs on the pull loop's goroutine: errors are reported
	// with t.Error, which may be called there.
	for _, m := range h.held {
		if err := m.Ack(); err != nil {
			h.t.Error(err)
		}
	}
	h.held = nil
	// The loop calls Capacity between pulls: whatever the server has
	// delivered by now was asked for by an earlier pull.
	info, err := h.durable.Info(context.Background())
	if err != nil {
		h.t.Error(err)
		return 0, err
	}
	if int(info.Delivered.Consumer) > h.granted {
		h.beyond = append(h.beyond, fmt.Sprintf("server delivered %d messages, %d granted", info.Delivered.Consumer, h.granted))
	}
	if h.submitted == h.want {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	grant := h.grants[h.calls%len(h.grants)]
	h.calls++
	h.allowance = min(grant, h.batch)
	h.granted += h.allowance
	return grant, nil
}

func (h *stingy) Submit(_ context.Context, job dispatcher.Job) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, job.Msg)
	if len(h.held) > h.allowance {
		h.beyond = append(h.beyond, fmt.Sprintf("holding %d, granted %d", len(h.held), h.allowance))
	}
	h.submitted++
	if h.submitted == h.want {
		close(h.all)
	}
	return nil
}

func (h *stingy) Fail(context.Context, dispatcher.Job, schemas.DeadLetterReason, string) error {
	h.t.Error("Fail called")
	return dispatcher.ErrStopped
}

func (h *stingy) Reject(context.Context, dispatcher.Message, *schemas.DeadLetter, string) error {
	h.t.Error("Reject called")
	return dispatcher.ErrStopped
}

// The consumer asks for no more messages than the handler can take (nor
// more than FetchBatch): no message waits in a client-side buffer, where
// its ack deadline would run out unattended.
func TestNeverPullsMoreThanTheHandlerCanTake(t *testing.T) {
	const n = 30
	js, durable := provision(t, n)
	h := &stingy{t: t, durable: durable, grants: []int{1, 3, 2, 1}, batch: 2, want: n, all: make(chan struct{})}
	c, err := New(Config{WorkerID: "w", FetchBatch: h.batch, FetchWait: 200 * time.Millisecond}, Deps{JetStream: js, Handler: h})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	select {
	case <-h.all:
	case <-time.After(30 * time.Second):
		t.Fatal("not every message was pulled")
	}
	require.NoError(t, c.Stop(context.Background()))

	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(t, h.beyond)
	require.GreaterOrEqual(t, h.calls, n/2, "many small pulls")
	info, err := durable.Info(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, n, info.Delivered.Consumer, "each message delivered once")
}

// clocked records the dead letters it is given.
type clocked struct {
	refuse
	mu      sync.Mutex
	letters []*schemas.DeadLetter
}

func (h *clocked) Capacity(ctx context.Context) (int, error) {
	h.mu.Lock()
	n := len(h.letters)
	h.mu.Unlock()
	if n > 0 {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return 1, nil
}

func (h *clocked) Reject(_ context.Context, msg dispatcher.Message, dl *schemas.DeadLetter, _ string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.letters = append(h.letters, dl)
	return msg.Ack()
}

// The time a dead letter carries is the injected clock's.
func TestDeadLetterTimeIsTheInjectedClocks(t *testing.T) {
	js, _ := provision(t, 0)
	_, err := js.Publish(context.Background(), schemas.DefaultRequestSubjectPrefix+".c1", []byte("not JSON"))
	require.NoError(t, err)
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	h := &clocked{}
	c, err := New(Config{WorkerID: "w", Now: func() time.Time { return at }}, Deps{JetStream: js, Handler: h})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	require.Eventually(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.letters) == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, c.Stop(context.Background()))
	require.Equal(t, at, h.letters[0].DeadLetteredAt)
	require.Equal(t, schemas.ReasonInvalidRequest, h.letters[0].Reason)
}

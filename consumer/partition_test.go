package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
)

// collector takes every valid request and acks it at once.
type collector struct {
	refuse
	mu   sync.Mutex
	jobs []dispatcher.Job
}

func (h *collector) Capacity(context.Context) (int, error) { return 10, nil }

func (h *collector) Submit(_ context.Context, job dispatcher.Job) error {
	h.mu.Lock()
	h.jobs = append(h.jobs, job)
	h.mu.Unlock()
	return job.Msg.Ack()
}

func (h *collector) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.jobs)
}

// Requests published to <prefix>.<conferenceID> land in partitions; a
// consumer assigned every partition serves them all, and sees the subject
// the producer published to. A second consumer with the same assignment
// gets nothing while the first holds the partitions, and takes them over
// once the first lets go.
func TestPartitionsAreServedByOneWorkerAtATime(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	_, js2 := natstest.Connect(t, srv)
	ctx := context.Background()
	var tc topology.Config
	tc.Partitions = 4
	tc.SetDefaults()
	require.NoError(t, topology.Ensure(ctx, js, tc))
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			conf := fmt.Sprintf("conf%d", i%8)
			data := fmt.Sprintf(`{"requestID":"r%d","conferenceID":"%s","participantIDs":["p%d"]}`, i, conf, i)
			_, err := js.Publish(ctx, tc.RequestSubjectPrefix+"."+conf, []byte(data))
			require.NoError(t, err)
		}
	}
	publish(0, 40)
	cfg := Config{WorkerID: "w", FetchWait: 200 * time.Millisecond}
	first, second := &collector{}, &collector{}
	a, err := New(cfg, Deps{JetStream: js, Handler: first, Assignment: Static(tc.PartitionConsumerNames())})
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	require.Eventually(t, func() bool { return first.count() == 40 }, 20*time.Second, 10*time.Millisecond)
	first.mu.Lock()
	for _, job := range first.jobs {
		require.Equal(t, tc.RequestSubjectPrefix+"."+job.Request.ConferenceID, job.Source.Subject, "the subject as published")
	}
	first.mu.Unlock()

	b, err := New(cfg, Deps{JetStream: js2, Handler: second, Assignment: Static(tc.PartitionConsumerNames())})
	require.NoError(t, err)
	require.NoError(t, b.Start(ctx))
	publish(40, 80)
	require.Eventually(t, func() bool { return first.count() == 80 }, 20*time.Second, 10*time.Millisecond)
	require.Zero(t, second.count(), "the partitions are pinned to the first consumer")

	require.NoError(t, a.Stop(ctx))
	require.NoError(t, a.Unpin(ctx))
	publish(80, 120)
	require.Eventually(t, func() bool { return second.count() == 40 }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, b.Stop(ctx))
	require.Equal(t, 80, first.count())
}

// full takes up to room requests and holds them; it records a request
// handed over beyond that.
type full struct {
	refuse
	room int

	mu     sync.Mutex
	held   int
	beyond int
	freed  chan struct{}
}

func (h *full) Capacity(ctx context.Context) (int, error) {
	for {
		h.mu.Lock()
		free, freed := h.room-h.held, h.freed
		h.mu.Unlock()
		if free > 0 {
			return free, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-freed:
		}
	}
}

func (h *full) Submit(context.Context, dispatcher.Job) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held++
	if h.held > h.room {
		h.beyond++
	}
	return nil
}

func (h *full) counts() (held, beyond int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held, h.beyond
}

// With many partitions and little room, the pullers together ask for no
// more than the room: a message pulled beyond it would wait in the client,
// unattended, while its ack deadline runs.
func TestPartitionPullersTogetherNeverPullMoreThanTheRoom(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	var tc topology.Config
	tc.Partitions = 8
	tc.SetDefaults()
	require.NoError(t, topology.Ensure(ctx, js, tc))
	for i := range 200 {
		conf := fmt.Sprintf("conf%d", i)
		data := fmt.Sprintf(`{"requestID":"r%d","conferenceID":"%s","participantIDs":["p%d"]}`, i, conf, i)
		_, err := js.Publish(ctx, tc.RequestSubjectPrefix+"."+conf, []byte(data))
		require.NoError(t, err)
	}
	h := &full{room: 4, freed: make(chan struct{})}
	c, err := New(Config{WorkerID: "w", FetchWait: 100 * time.Millisecond}, Deps{JetStream: js, Handler: h, Assignment: Static(tc.PartitionConsumerNames())})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	require.Eventually(t, func() bool { held, _ := h.counts(); return held >= h.room }, 10*time.Second, 10*time.Millisecond)

	// Wait until every fetch the pullers made has run out, then count
	// what the server handed out.
	delivered := func() int {
		n := 0
		for _, name := range tc.PartitionConsumerNames() {
			cons, err := js.Consumer(ctx, tc.RequestStream, name)
			require.NoError(t, err)
			info, err := cons.Info(ctx)
			require.NoError(t, err)
			n += info.NumAckPending
		}
		return n
	}
	require.Never(t, func() bool { return delivered() > h.room }, time.Second, 50*time.Millisecond)
	held, beyond := h.counts()
	require.Equal(t, h.room, held)
	require.Zero(t, beyond, "requests handed over beyond the room")

	// The backlog is what is left in the partitions pulled from, as the
	// server counts it; nothing moves while the room is full.
	left := 0
	for _, name := range tc.PartitionConsumerNames() {
		cons, err := js.Consumer(ctx, tc.RequestStream, name)
		require.NoError(t, err)
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		if info.NumAckPending > 0 {
			left += int(info.NumPending)
		}
	}
	require.Positive(t, left)
	require.Equal(t, left, c.Backlog())
	require.NoError(t, c.Stop(ctx))
	require.Zero(t, c.Backlog(), "a stopped consumer has nothing before it")
}

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

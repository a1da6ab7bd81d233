package consumer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
)

// lagGauges are the names of the gauges the lag poller sets.
var lagGauges = []string{"hangup_consumer_pending_messages", "hangup_consumer_ack_pending_messages", "hangup_consumer_redelivered_messages"}

// series returns the values of the metric name in reg by the value of
// its consumer label; a metric without labels is under "".
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "consumer" {
					key = l.GetValue()
				}
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// serverView is what the server says of a consumer, as the three gauges
// report it.
func serverView(t *testing.T, js jetstream.JetStream, stream, name string) [3]float64 {
	t.Helper()
	cons, err := js.Consumer(context.Background(), stream, name)
	require.NoError(t, err)
	info := cons.CachedInfo()
	return [3]float64{float64(info.NumPending), float64(info.NumAckPending), float64(info.NumRedelivered)}
}

// reported is what the gauges say of a consumer, and whether all three
// have a series for it.
func reported(t *testing.T, reg *prometheus.Registry, name string) ([3]float64, bool) {
	t.Helper()
	var v [3]float64
	for i, g := range lagGauges {
		x, ok := series(t, reg, g)[name]
		if !ok {
			return v, false
		}
		v[i] = x
	}
	return v, true
}

// naksFirst hands every first delivery back at once and holds every
// redelivery unacked until release.
type naksFirst struct {
	refuse
	mu   sync.Mutex
	held []dispatcher.Message
}

func (h *naksFirst) Capacity(context.Context) (int, error) { return 10, nil }

func (h *naksFirst) Submit(_ context.Context, job dispatcher.Job) error {
	if job.Source.Deliveries == 1 {
		return job.Msg.NakWithDelay(0)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, job.Msg)
	return nil
}

func (h *naksFirst) release(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.held {
		require.NoError(t, m.Ack())
	}
	h.held = nil
}

func TestLagIntervalDefaultsAndIsValidated(t *testing.T) {
	require.Equal(t, 10*time.Second, DefaultConfig().LagInterval)
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	_, err := New(Config{WorkerID: "w", LagInterval: 10 * time.Millisecond}, Deps{JetStream: js, Handler: refuse{}})
	require.ErrorContains(t, err, "LagInterval")
}

// The gauges carry the server's pending, ack-pending and redelivered
// counts of the shared durable; each redelivery pulled is counted; and a
// stopped consumer leaves no gauge series behind.
func TestLagGaugesAreTheServersView(t *testing.T) {
	const n = 5
	js, _ := provision(t, n)
	reg := prometheus.NewRegistry()
	h := &naksFirst{}
	c, err := New(Config{WorkerID: "w", FetchWait: 200 * time.Millisecond, LagInterval: 100 * time.Millisecond},
		Deps{JetStream: js, Handler: h, Registerer: reg})
	require.NoError(t, err)
	require.Empty(t, series(t, reg, lagGauges[0]), "no series before Start")
	require.NoError(t, c.Start(context.Background()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.Stop(context.Background())
		}
	})

	const durable = "hangup-worker"
	stream := DefaultConfig().Stream
	// Every message delivered twice and held: nothing pending, n awaiting
	// their ack, n redelivered.
	require.Eventually(t, func() bool {
		got, ok := reported(t, reg, durable)
		return ok && got == [3]float64{0, n, n} && got == serverView(t, js, stream, durable)
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, float64(n), series(t, reg, "hangup_messages_redelivered_total")[""])
	require.Equal(t, float64(2*n), series(t, reg, "hangup_messages_received_total")[""])

	h.release(t)
	require.Eventually(t, func() bool {
		got, ok := reported(t, reg, durable)
		return ok && got == [3]float64{0, 0, 0}
	}, 20*time.Second, 20*time.Millisecond, "acked messages leave the gauges")

	require.NoError(t, c.Stop(context.Background()))
	stopped = true
	for _, g := range lagGauges {
		require.Empty(t, series(t, reg, g), "%s after Stop", g)
	}
}

// movable is an Assignment a test changes.
type movable struct {
	mu      sync.Mutex
	names   []string
	changes chan struct{}
}

func newMovable(names ...string) *movable {
	return &movable{names: names, changes: make(chan struct{}, 1)}
}

func (a *movable) Owned() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.names)
}

func (a *movable) Changes() <-chan struct{} { return a.changes }

func (a *movable) set(names ...string) {
	a.mu.Lock()
	a.names = names
	a.mu.Unlock()
	select {
	case a.changes <- struct{}{}:
	default:
	}
}

// holding takes every request and holds it until handBack.
type holding struct {
	refuse
	mu   sync.Mutex
	held []dispatcher.Message
}

func (h *holding) Capacity(context.Context) (int, error) { return 10, nil }

func (h *holding) Submit(_ context.Context, job dispatcher.Job) error {
	h.mu.Lock()
	h.held = append(h.held, job.Msg)
	h.mu.Unlock()
	return nil
}

func (h *holding) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

// handBack settles every message held, as a dispatcher does in the end.
func (h *holding) handBack(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.held {
		require.NoError(t, m.NakWithDelay(0))
	}
	h.held = nil
}

// A worker reports the partitions it owns, each as the server sees it,
// and drops a partition's series once it no longer owns it, so that a
// sum over workers counts every partition once.
func TestLagSeriesFollowTheAssignment(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	var tc topology.Config
	tc.Partitions = 2
	tc.SetDefaults()
	require.NoError(t, topology.Ensure(ctx, js, tc))
	const n = 12
	for i := range n {
		conf := fmt.Sprintf("conf%d", i)
		data := fmt.Sprintf(`{"requestID":"r%d","conferenceID":"%s","participantIDs":["p%d"]}`, i, conf, i)
		_, err := js.Publish(ctx, tc.RequestSubjectPrefix+"."+conf, []byte(data))
		require.NoError(t, err)
	}
	parts := tc.PartitionConsumerNames()
	require.Len(t, parts, 2)

	reg := prometheus.NewRegistry()
	h := &holding{}
	assign := newMovable(parts...)
	c, err := New(Config{WorkerID: "w", FetchWait: 200 * time.Millisecond, LagInterval: 100 * time.Millisecond, ReleaseWait: 100 * time.Millisecond},
		Deps{JetStream: js, Handler: h, Registerer: reg, Assignment: assign})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.Stop(context.Background())
		}
	})
	require.Eventually(t, func() bool { return h.count() == n }, 20*time.Second, 10*time.Millisecond)

	// Each consumer pulled is reported as the server sees it; the
	// partitions together hold every request.
	matches := func(names ...string) bool {
		got := series(t, reg, lagGauges[1])
		if len(got) != len(names) {
			return false
		}
		for _, name := range names {
			v, ok := reported(t, reg, name)
			if !ok || v != serverView(t, js, tc.RequestStream, name) {
				return false
			}
		}
		return true
	}
	require.Eventually(t, func() bool { return matches(tc.Durable, parts[0], parts[1]) }, 20*time.Second, 20*time.Millisecond)
	got := series(t, reg, "hangup_consumer_ack_pending_messages")
	require.Equal(t, float64(n), got[parts[0]]+got[parts[1]])
	require.Zero(t, got[tc.Durable], "the shared durable holds nothing")

	assign.set(parts[0])
	require.Eventually(t, func() bool { return matches(tc.Durable, parts[0]) }, 20*time.Second, 20*time.Millisecond,
		"the partition given up has no series left")
	for _, g := range lagGauges {
		require.NotContains(t, series(t, reg, g), parts[1], g)
	}

	require.NoError(t, c.Stop(ctx))
	stopped = true
	h.handBack(t)
	for _, g := range lagGauges {
		require.Empty(t, series(t, reg, g), "%s after Stop", g)
	}
}

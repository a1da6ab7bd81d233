package membership

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func partitions(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("p%d", i)
	}
	return out
}

// Every partition falls to exactly one member, the split is even to
// within one, and every member computes the same split.
func TestAssignSharesEveryPartitionOnce(t *testing.T) {
	parts := partitions(16)
	for n := 1; n <= 7; n++ {
		members := make([]string, n)
		for i := range members {
			members[i] = fmt.Sprintf("member.w%d.%02x", i, 255-i)
		}
		seen := map[string]int{}
		sizes := []int{}
		for _, m := range members {
			owned := Assign(members, m, parts)
			sizes = append(sizes, len(owned))
			for _, p := range owned {
				seen[p]++
			}
		}
		require.Len(t, seen, 16, "%d members", n)
		for p, k := range seen {
			require.Equal(t, 1, k, "%s owned %d times with %d members", p, k, n)
		}
		require.LessOrEqual(t, slices.Max(sizes)-slices.Min(sizes), 1, "even split with %d members", n)
	}
	require.Equal(t, parts, Assign(nil, "alone", parts), "a worker that sees nobody else takes everything")
}

// Workers see each other join and leave, and share the partitions
// accordingly; a throttle signal reaches the others, not its sender.
func TestGroupsFollowJoinsLeavesAndThrottles(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	kv, err := EnsureBucket(ctx, js, DefaultBucket, 3*time.Second, 1)
	require.NoError(t, err)
	var throttledA, throttledB atomic.Int32
	var membersA atomic.Int32
	a, err := New(Config{Name: "w", TTL: 3 * time.Second, Partitions: partitions(8)}, kv, nil,
		Hooks{OnThrottle: func() { throttledA.Add(1) }, OnView: func(v View) { membersA.Store(int32(v.Members)) }})
	require.NoError(t, err)
	b, err := New(Config{Name: "w", TTL: 3 * time.Second, Partitions: partitions(8)}, kv, nil,
		Hooks{OnThrottle: func() { throttledB.Add(1) }})
	require.NoError(t, err)
	require.NotEqual(t, a.Key(), b.Key(), "one name, two members")

	require.NoError(t, a.Start(ctx))
	require.Equal(t, partitions(8), a.Owned())
	require.EqualValues(t, 1, membersA.Load())
	require.NoError(t, b.Start(ctx))
	require.Eventually(t, func() bool { return a.Members() == 2 && b.Members() == 2 }, 5*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 2, membersA.Load())
	require.Len(t, a.Owned(), 4)
	require.Len(t, b.Owned(), 4)
	require.Empty(t, intersect(a.Owned(), b.Owned()))
	select {
	case <-a.Changes():
	default:
		t.Fatal("a join is a change")
	}

	b.Throttled()
	require.Eventually(t, func() bool { return throttledA.Load() == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Zero(t, throttledB.Load(), "no echo to the sender")

	require.NoError(t, b.Stop(ctx))
	require.Eventually(t, func() bool { return a.Members() == 1 }, 5*time.Second, 10*time.Millisecond, "a leave is seen at once")
	require.Equal(t, partitions(8), a.Owned())
	require.NoError(t, a.Stop(ctx))
}

// viewLog records, in order, each view the workers of a test applied.
type viewLog struct {
	mu     sync.Mutex
	events []viewEvent
}

type viewEvent struct {
	who string
	v   View
}

// hooks are a worker's hooks that record its views, and order them as
// the dispatcher does.
func (l *viewLog) hooks(who string, held, load func() int) Hooks {
	return Hooks{Held: held, Load: load,
		Raises: func(prev, next View) bool { return share(prev).Raises(share(next)) },
		OnView: func(v View) {
			l.mu.Lock()
			l.events = append(l.events, viewEvent{who, v})
			l.mu.Unlock()
		}}
}

func share(v View) dispatcher.Share {
	return dispatcher.Share{Members: v.Members, IdleOthers: v.IdleOthers, Idle: v.Idle, Load: v.Load, OthersLoad: v.OthersLoad}
}

// last is the view who applied last.
func (l *viewLog) last(who string) View {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.events) - 1; i >= 0; i-- {
		if l.events[i].who == who {
			return l.events[i].v
		}
	}
	return View{}
}

// index is where who first applied v, or -1.
func (l *viewLog) index(who string, v View) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.events {
		if e.who == who && e.v == v {
			return i
		}
	}
	return -1
}

func (l *viewLog) reset() {
	l.mu.Lock()
	l.events = nil
	l.mu.Unlock()
}

// membersBucket is a fresh members bucket on an embedded server.
func membersBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	kv, err := EnsureBucket(context.Background(), js, DefaultBucket, 3*time.Second, 1)
	require.NoError(t, err)
	return kv
}

// An idle worker gives its part of the vendor budget to the busy ones:
// it takes its cut before it tells them, and when work comes back it
// tells them before it takes its share again, so that the others have
// taken their cut by then.
func TestIdleWorkersGiveTheirShareAway(t *testing.T) {
	ctx := context.Background()
	kv := membersBucket(t)
	var log viewLog
	var heldA, heldB atomic.Int32
	heldA.Store(5)
	heldB.Store(5)
	group := func(who string, held *atomic.Int32) *Group {
		g, err := New(Config{Name: who, TTL: 3 * time.Second, Partitions: partitions(4), IdleAfter: 300 * time.Millisecond, RaiseDelay: 200 * time.Millisecond}, kv, nil,
			log.hooks(who, func() int { return int(held.Load()) }, nil))
		require.NoError(t, err)
		require.NoError(t, g.Start(ctx))
		return g
	}
	a, b := group("a", &heldA), group("b", &heldB)
	busy := View{Members: 2}
	require.Eventually(t, func() bool { return log.last("a") == busy && log.last("b") == busy }, 5*time.Second, 10*time.Millisecond)

	// b runs out of work: it cuts its own share, then a takes the rest.
	heldB.Store(0)
	bIdle, aGets := View{Members: 2, Idle: true}, View{Members: 2, IdleOthers: 1}
	require.Eventually(t, func() bool { return log.last("a") == aGets }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, bIdle, log.last("b"))
	require.Less(t, log.index("b", bIdle), log.index("a", aGets), "b cut its share before a raised its own")

	// Work comes back to b: a takes its cut before b raises its share.
	log.reset()
	heldB.Store(1)
	require.Eventually(t, func() bool { return log.last("b") == busy }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, busy, log.last("a"))
	require.Less(t, log.index("a", busy), log.index("b", busy), "a cut its share before b raised its own")

	require.NoError(t, a.Stop(ctx))
	require.NoError(t, b.Stop(ctx))
}

// Busy workers share the budget by their loads; a worker whose load grows
// tells the others first, and takes its larger share only after they have
// taken their cut.
func TestBusyWorkersShareByLoad(t *testing.T) {
	ctx := context.Background()
	kv := membersBucket(t)
	var log viewLog
	var loadA, loadB atomic.Int32
	loadA.Store(100)
	loadB.Store(100)
	group := func(who string, load *atomic.Int32) *Group {
		g, err := New(Config{Name: who, TTL: 3 * time.Second, Partitions: partitions(4), RaiseDelay: 200 * time.Millisecond}, kv, nil,
			log.hooks(who, func() int { return 1 }, func() int { return int(load.Load()) }))
		require.NoError(t, err)
		require.NoError(t, g.Start(ctx))
		return g
	}
	a, b := group("a", &loadA), group("b", &loadB)
	even := View{Members: 2, Load: 100, OthersLoad: 100}
	require.Eventually(t, func() bool { return log.index("a", even) >= 0 && log.index("b", even) >= 0 }, 5*time.Second, 10*time.Millisecond)

	loadA.Store(400)
	aMore, bLess := View{Members: 2, Load: 400, OthersLoad: 100}, View{Members: 2, Load: 100, OthersLoad: 400}
	require.Eventually(t, func() bool { return log.index("a", aMore) >= 0 }, 5*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, log.index("b", bLess), 0)
	require.Less(t, log.index("b", bLess), log.index("a", aMore), "b cut its share before a raised its own")

	// A small change is not worth telling.
	loadA.Store(450)
	require.Never(t, func() bool { return log.index("b", View{Members: 2, Load: 100, OthersLoad: 450}) >= 0 }, 600*time.Millisecond, 20*time.Millisecond)

	require.NoError(t, a.Stop(ctx))
	require.NoError(t, b.Stop(ctx))
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

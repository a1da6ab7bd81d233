package membership

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// An idle worker gives its part of the vendor budget to the busy ones:
// it takes its cut before it tells them, and when work comes back it
// tells them before it takes its share again, so that the others have
// taken their cut by then.
func TestIdleWorkersGiveTheirShareAway(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	kv, err := EnsureBucket(ctx, js, DefaultBucket, 3*time.Second, 1)
	require.NoError(t, err)

	// events records, in order, each view a worker applied.
	type event struct {
		who string
		v   View
	}
	var mu sync.Mutex
	var events []event
	last := func(who string) View {
		mu.Lock()
		defer mu.Unlock()
		for i := len(events) - 1; i >= 0; i-- {
			if events[i].who == who {
				return events[i].v
			}
		}
		return View{}
	}
	index := func(who string, v View) int {
		mu.Lock()
		defer mu.Unlock()
		for i, e := range events {
			if e.who == who && e.v == v {
				return i
			}
		}
		return -1
	}
	var heldA, heldB atomic.Int32
	heldA.Store(5)
	heldB.Store(5)
	group := func(who string, held *atomic.Int32) *Group {
		g, err := New(Config{Name: who, TTL: 3 * time.Second, Partitions: partitions(4), IdleAfter: 300 * time.Millisecond, RaiseDelay: 200 * time.Millisecond}, kv, nil,
			Hooks{Held: func() int { return int(held.Load()) }, OnView: func(v View) {
				mu.Lock()
				events = append(events, event{who, v})
				mu.Unlock()
			}})
		require.NoError(t, err)
		require.NoError(t, g.Start(ctx))
		return g
	}
	a, b := group("a", &heldA), group("b", &heldB)
	busy := View{Members: 2}
	require.Eventually(t, func() bool { return last("a") == busy && last("b") == busy }, 5*time.Second, 10*time.Millisecond)

	// b runs out of work: it cuts its own share, then a takes the rest.
	heldB.Store(0)
	bIdle, aGets := View{Members: 2, Idle: true}, View{Members: 2, IdleOthers: 1}
	require.Eventually(t, func() bool { return last("a") == aGets }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, bIdle, last("b"))
	require.Less(t, index("b", bIdle), index("a", aGets), "b cut its share before a raised its own")

	// Work comes back to b: a takes its cut before b raises its share.
	heldB.Store(1)
	mu.Lock()
	events = nil
	mu.Unlock()
	require.Eventually(t, func() bool { return last("b") == busy }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, busy, last("a"))
	require.Less(t, index("a", busy), index("b", busy), "a cut its share before b raised its own")

	require.NoError(t, a.Stop(ctx))
	require.NoError(t, b.Stop(ctx))
}

// Busy workers share the budget in proportion to their loads; a worker
// whose load grows tells the others first, and takes its larger share
// only after they have taken their cut.
func TestBusyWorkersShareByLoad(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	kv, err := EnsureBucket(ctx, js, DefaultBucket, 3*time.Second, 1)
	require.NoError(t, err)
	type event struct {
		who string
		v   View
	}
	var mu sync.Mutex
	var events []event
	find := func(who string, v View) int {
		mu.Lock()
		defer mu.Unlock()
		for i, e := range events {
			if e.who == who && e.v == v {
				return i
			}
		}
		return -1
	}
	var loadA, loadB atomic.Int32
	loadA.Store(100)
	loadB.Store(100)
	group := func(who string, load *atomic.Int32) *Group {
		g, err := New(Config{Name: who, TTL: 3 * time.Second, Partitions: partitions(4), RaiseDelay: 200 * time.Millisecond}, kv, nil,
			Hooks{Held: func() int { return 1 }, Load: func() int { return int(load.Load()) }, OnView: func(v View) {
				mu.Lock()
				events = append(events, event{who, v})
				mu.Unlock()
			}})
		require.NoError(t, err)
		require.NoError(t, g.Start(ctx))
		return g
	}
	a, b := group("a", &loadA), group("b", &loadB)
	even := View{Members: 2, Load: 100, OthersLoad: 100}
	require.Eventually(t, func() bool { return find("a", even) >= 0 && find("b", even) >= 0 }, 5*time.Second, 10*time.Millisecond)

	loadA.Store(400)
	aMore, bLess := View{Members: 2, Load: 400, OthersLoad: 100}, View{Members: 2, Load: 100, OthersLoad: 400}
	require.Eventually(t, func() bool { return find("a", aMore) >= 0 }, 5*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, find("b", bLess), 0)
	require.Less(t, find("b", bLess), find("a", aMore), "b cut its share before a raised its own")

	// A small change is not worth telling.
	loadA.Store(450)
	require.Never(t, func() bool { return find("b", View{Members: 2, Load: 100, OthersLoad: 450}) >= 0 }, 600*time.Millisecond, 20*time.Millisecond)

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

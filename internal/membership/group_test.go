package membership

import (
	"context"
	"fmt"
	"slices"
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
		Hooks{OnThrottle: func() { throttledA.Add(1) }, OnMembers: func(n int) { membersA.Store(int32(n)) }})
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

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

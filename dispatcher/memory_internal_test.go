package dispatcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMemoryRemembersAGoneMeetingForGoneMemory(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	m := newMemory(30 * time.Second)
	rec := &callRecord{batchID: "w-1"}
	m.remember("c", &idOutcome{kind: idFailed, decidedBy: rec, carriedBy: []*callRecord{rec}}, t0)

	o, ok := m.answer("c", t0.Add(29*time.Second))
	require.True(t, ok)
	require.Equal(t, idFailed, o.kind)
	require.Same(t, rec, o.decidedBy, "the answer that decided it is reported")
	require.Nil(t, o.carriedBy, "no call carried a batch answered from memory")
	_, ok = m.answer("other", t0)
	require.False(t, ok, "only for its conference")

	_, ok = m.answer("c", t0.Add(30*time.Second))
	require.False(t, ok, "forgotten after GoneMemory")
	m.prune(t0.Add(30 * time.Second))
	require.Empty(t, m.meetings)
}

func TestMemoryRemembersANotReadyMeetingForItsDelay(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	m := newMemory(30 * time.Second)
	m.remember("c", &idOutcome{kind: idDeferred, delay: 5 * time.Second}, t0)

	o, ok := m.answer("c", t0.Add(2*time.Second))
	require.True(t, ok)
	require.Equal(t, idDeferred, o.kind)
	require.Equal(t, 3*time.Second, o.delay, "handed back for what is left of the delay")
	o, ok = m.answer("c", t0.Add(4500*time.Millisecond))
	require.True(t, ok)
	require.Equal(t, time.Second, o.delay, "at least a second")
	_, ok = m.answer("c", t0.Add(5*time.Second))
	require.False(t, ok, "not for GoneMemory: for the delay")
	m.prune(t0.Add(4 * time.Second))
	require.Len(t, m.meetings, 1)
	m.prune(t0.Add(5 * time.Second))
	require.Empty(t, m.meetings)
}

func TestMemoryTokensNewestFirstWithoutRejected(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	m := newMemory(time.Second)
	for i := 1; i <= 10; i++ {
		m.addToken("c", fmt.Sprintf("t%d", i))
	}
	require.Equal(t, []string{"t10", "t9", "t8", "t7", "t6", "t5", "t4", "t3"}, m.tokensOf("c"), "newest first, at most 8")
	m.addToken("c", "t5")
	require.Equal(t, []string{"t5", "t10", "t9", "t8", "t7", "t6", "t4", "t3"}, m.tokensOf("c"), "a repeated token moves to the front")

	got := m.tokensOf("c")
	got[0] = "changed"
	require.Equal(t, "t5", m.tokensOf("c")[0], "a batch gets a copy")

	m.addToken("d", "t9")
	m.reject("c", []string{"t9", "t5"}, t0)
	require.Equal(t, []string{"t10", "t8", "t7", "t6", "t4", "t3"}, m.tokensOf("c"))
	require.Equal(t, []string{"t9"}, m.tokensOf("d"), "only the conference's tokens are dropped")
	m.addToken("c", "t9")
	require.NotContains(t, m.tokensOf("c"), "t9", "a rejected token does not come back to life")

	m.forgetTokens("c")
	require.Empty(t, m.tokensOf("c"))

	m.prune(t0.Add(rejectedTokenTTL))
	m.addToken("c", "t9")
	require.Empty(t, m.tokensOf("c"), "still rejected at the TTL")
	m.prune(t0.Add(rejectedTokenTTL + time.Second))
	m.addToken("c", "t9")
	require.Equal(t, []string{"t9"}, m.tokensOf("c"), "usable again after the TTL")
}

func TestMemoryRejectedTokensAreCapped(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	m := newMemory(time.Second)
	for i := 0; i < rejectedTokenCap; i++ {
		m.reject("c", []string{fmt.Sprintf("bad-%d", i)}, t0)
	}
	require.Len(t, m.rejected, rejectedTokenCap)
	m.reject("c", []string{"one-more"}, t0)
	require.Len(t, m.rejected, 1, "cleared at the cap")
}

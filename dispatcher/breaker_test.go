package dispatcher

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestBreakerOpensAtThresholdProbesAndCloses(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	var changes []bool
	b := newBreaker(3, time.Second, 4*time.Second, time.Second, clk.now, func(open bool) { changes = append(changes, open) })

	b.record(true)
	b.record(true)
	require.False(t, b.isOpen())
	b.record(false) // an answer resets the count
	b.record(true)
	b.record(true)
	require.False(t, b.isOpen())
	b.record(true)
	require.True(t, b.isOpen(), "three outage answers in a row open it")

	ok, in := b.acquire()
	require.False(t, ok, "no calls while cooling down")
	require.Equal(t, time.Second, in)
	admitted, in := b.admitProbe()
	require.False(t, admitted, "no request is let in while cooling down")
	require.Equal(t, time.Second, in)

	clk.advance(time.Second)
	admitted, _ = b.admitProbe()
	require.True(t, admitted, "a request is let in for the probe that is due")
	admitted, in = b.admitProbe()
	require.False(t, admitted, "not again at once")
	require.Equal(t, admitRetry, in, "an admission that brought no request is given again soon")
	clk.advance(admitRetry)
	admitted, _ = b.admitProbe()
	require.True(t, admitted, "to another consumer, whose partition may hold a request")
	b.submitted()
	admitted, in = b.admitProbe()
	require.False(t, admitted, "one request a second once one came in")
	require.Equal(t, time.Second, in)
	clk.advance(time.Second - admitRetry)
	ok, _ = b.acquire()
	require.True(t, ok, "after the cool-down one caller probes")
	ok, _ = b.acquire()
	require.False(t, ok, "only one probe at a time")
	b.record(true) // the probe fails: open again, cool-down doubled
	require.True(t, b.isOpen())
	clk.advance(time.Second)
	ok, in = b.acquire()
	require.False(t, ok)
	require.Equal(t, time.Second, in, "the doubled cool-down has a second to go")
	clk.advance(time.Second)
	ok, _ = b.acquire()
	require.True(t, ok)
	b.record(false) // the probe succeeds
	require.False(t, b.isOpen())
	ok, _ = b.acquire()
	require.True(t, ok)
	require.Equal(t, []bool{true, true, false}, changes)
}

func TestBreakerDisabled(t *testing.T) {
	b := newBreaker(-1, time.Second, time.Second, time.Second, time.Now, nil)
	for i := 0; i < 100; i++ {
		b.record(true)
	}
	require.False(t, b.isOpen())
}

// window feeds one second of answers to l: calls answers, throttled of
// them flow control.
func window(l *limiter, clk *clock, calls, throttled int) {
	for i := 0; i < calls; i++ {
		l.answered(i < throttled)
	}
	clk.advance(time.Second)
}

func TestLimiterSlowsOnSustainedFlowControlAndRecovers(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	var set []float64
	l := newLimiter(40, clk.now, func(v float64) { set = append(set, v) })
	require.Equal(t, rate.Limit(40), l.current())

	window(l, clk, 40, 20) // half the answers are flow control
	l.answered(false)      // the next answer closes the window
	require.InDelta(t, 28, float64(l.current()), 0.5, "70% of the achieved rate")
	window(l, clk, 27, 14)
	l.answered(false)
	require.Less(t, float64(l.current()), 28.0)

	for i := 0; i < 20 && l.current() < 40; i++ {
		window(l, clk, 10, 0)
	}
	l.answered(false)
	require.Equal(t, rate.Limit(40), l.current(), "windows without flow control bring it back to the configured rate")
	require.Equal(t, 40.0, set[len(set)-1])
}

func TestLimiterIgnoresScatteredFlowControl(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := newLimiter(0, clk.now, nil)
	for i := 0; i < 30; i++ {
		window(l, clk, 100, 5) // 5% flow control, as from a busy shared gateway
	}
	require.Equal(t, rate.Inf, l.current(), "per-call backoff handles a few; the rate stays")
}

func TestLimiterWithoutConfiguredRateLimitsOnlyAfterFlowControl(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := newLimiter(0, clk.now, nil)
	require.Equal(t, rate.Inf, l.current())
	window(l, clk, 30, 15)
	l.answered(false)
	require.InDelta(t, 21, float64(l.current()), 0.5, "70% of the 30 calls/s achieved")
	for i := 0; i < 20 && l.current() != rate.Inf; i++ {
		window(l, clk, 10, 0)
	}
	l.answered(false)
	require.Equal(t, rate.Inf, l.current(), "lifted again once back at the rate it was throttled from")
}

// Capacity may be called from several goroutines: while the breaker is
// open, a probe that is due still lets in one request, not one per caller.
func TestBreakerAdmitsOneRequestPerProbeWhateverTheCallers(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	b := newBreaker(1, time.Second, 4*time.Second, time.Second, clk.now, nil)
	b.record(true)
	require.True(t, b.isOpen())
	clk.advance(time.Second)

	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := b.admitProbe(); ok {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, admitted)

	ok, _ := b.acquire()
	require.True(t, ok, "the admitted request probes")
	ok, in := b.admitProbe()
	require.False(t, ok, "none while the probe is under way")
	require.Equal(t, 4*time.Second, in)
}

// The flow-control share is taken over every answer, server errors
// included: 6 flow-control answers among 100 are scattered, though they
// would be 12% of the 50 successes.
func TestLimiterCountsEveryAnswerInTheFlowControlShare(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := newLimiter(40, clk.now, nil)
	for i := 0; i < 3; i++ {
		for j := 0; j < 100; j++ {
			l.answered(j < 6) // 6 flow control, then 44 successes and 50 HTTP 500s
		}
		clk.advance(time.Second)
	}
	l.answered(false)
	require.Equal(t, rate.Limit(40), l.current())
}

package dispatcher

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	mc "github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

func TestConfigShare(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		members   int
		calls     int
		perSecond float64
	}{
		{"one worker has it all", Config{APIConcurrency: 32, APIRate: 30}, 1, 32, 30},
		{"no members counts as one", Config{APIConcurrency: 32, APIRate: 30}, 0, 32, 30},
		{"rounded down: never over the budget", Config{APIConcurrency: 32, APIRate: 30}, 3, 10, 10},
		{"more workers than calls: one each", Config{APIConcurrency: 4}, 6, 1, 0},
		{"worker caps below the share", Config{APIConcurrency: 32, APIRate: 30, WorkerAPIConcurrency: 4, WorkerAPIRate: 5}, 2, 4, 5},
		{"worker caps above the share", Config{APIConcurrency: 32, APIRate: 30, WorkerAPIConcurrency: 20, WorkerAPIRate: 20}, 2, 16, 15},
		{"worker rate cap without a budget", Config{APIConcurrency: 8, WorkerAPIRate: 5}, 4, 2, 5},
		{"no rate at all", Config{APIConcurrency: 8}, 2, 4, 0},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			calls, perSecond := tt.cfg.share(Share{Members: tt.members})
			require.Equal(t, tt.calls, calls)
			require.InDelta(t, tt.perSecond, perSecond, 1e-9)
		})
	}
}

// Idle workers keep one call and a tenth of a rate share; the busy ones
// share the rest, and the parts never add up to more than the budget.
func TestConfigShareGivesIdleWorkersBudgetToTheBusyOnes(t *testing.T) {
	cfg := Config{APIConcurrency: 24, APIRate: 90}
	cases := []struct {
		name      string
		share     Share
		calls     int
		perSecond float64
	}{
		{"all busy", Share{Members: 3}, 8, 30},
		{"two others idle", Share{Members: 3, IdleOthers: 2}, 22, 84},
		{"one other idle", Share{Members: 3, IdleOthers: 1}, 11, 43.5},
		{"idle itself", Share{Members: 3, Idle: true}, 1, 3},
		{"idle counts are clamped", Share{Members: 2, IdleOthers: 5}, 23, 85.5},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			calls, perSecond := cfg.share(tt.share)
			require.Equal(t, tt.calls, calls)
			require.InDelta(t, tt.perSecond, perSecond, 1e-9)
		})
	}
	// Every split of three workers into busy and idle stays within the
	// budget.
	for idle := 0; idle <= 3; idle++ {
		calls, rate := 0, 0.0
		for w := 0; w < 3; w++ {
			self := w < idle
			others := idle
			if self {
				others--
			}
			c, r := cfg.share(Share{Members: 3, IdleOthers: others, Idle: self})
			calls, rate = calls+c, rate+r
		}
		require.LessOrEqual(t, calls, cfg.APIConcurrency, "idle %d", idle)
		require.LessOrEqual(t, rate, cfg.APIRate+1e-9, "idle %d", idle)
	}
	// The busy share in proportion to their loads.
	calls, perSecond := cfg.share(Share{Members: 3, Load: 300, OthersLoad: 300})
	require.Equal(t, 1+8, calls, "one each, and of the other 21 half a third and half the load's half")
	require.InDelta(t, 90*(0.5/3+0.5*0.5), perSecond, 1e-9)
	calls, perSecond = cfg.share(Share{Members: 3, IdleOthers: 1, Load: 100, OthersLoad: 300})
	require.Equal(t, 1+7, calls, "one each, and of the other 21 the idle one leaves half a half and half a quarter")
	require.InDelta(t, 90*(1-0.1/3)*(0.5/2+0.5/4), perSecond, 1e-9)
	// Whatever the loads, the parts add up to no more than the budget.
	for _, loads := range [][3]int{{1, 1, 1}, {5, 100, 1000}, {0, 7, 7}, {1, 1, 50}} {
		calls, rate := 0, 0.0
		for w := range 3 {
			others := 0
			for o := range 3 {
				if o != w {
					others += max(loads[o], 1)
				}
			}
			c, r := cfg.share(Share{Members: 3, Load: max(loads[w], 1), OthersLoad: others})
			calls, rate = calls+c, rate+r
		}
		require.LessOrEqual(t, calls, cfg.APIConcurrency, "loads %v", loads)
		require.LessOrEqual(t, rate, cfg.APIRate+1e-9, "loads %v", loads)
	}
	require.True(t, Share{Members: 3, Load: 1, OthersLoad: 2}.Raises(Share{Members: 3, Load: 2, OthersLoad: 2}))
	require.True(t, Share{Members: 3}.Raises(Share{Members: 3, IdleOthers: 1}))
	require.True(t, Share{Members: 3, Idle: true}.Raises(Share{Members: 3}))
	require.False(t, Share{Members: 3}.Raises(Share{Members: 3, Idle: true}))
	require.False(t, Share{Members: 2}.Raises(Share{Members: 3}))
}

// gateVendor holds each hang-up call until the test hands it a release,
// and records how many calls were in flight when each started.
type gateVendor struct {
	release chan struct{} // each call takes one to return

	mu       sync.Mutex
	inFlight int
	starts   []int    // calls in flight, itself included, as each started
	confs    []string // the conference of each call, as each started
}

func (v *gateVendor) HangUp(ctx context.Context, conferenceID, _ string, _ []string) (mc.Response, error) {
	v.mu.Lock()
	v.inFlight++
	v.starts = append(v.starts, v.inFlight)
	v.confs = append(v.confs, conferenceID)
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.inFlight--
		v.mu.Unlock()
	}()
	select {
	case <-v.release:
		return mc.Response{Status: 200, RequestID: "ok"}, nil
	case <-ctx.Done():
		return mc.Response{}, ctx.Err()
	}
}

// peak is the most calls in flight at once so far, and how many started.
func (v *gateVendor) peak() (most, started int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.starts {
		most = max(most, n)
	}
	return most, len(v.starts)
}

func (v *gateVendor) now() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.inFlight
}

func TestSetShareDividesTheCallsInFlight(t *testing.T) {
	vendor := &gateVendor{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	// No keep-alive tick wakes the batcher: only SetShare can start the
	// batches waiting when the share grows.
	d, err := New(Config{WorkerID: "w", MaxBatch: 1, APIConcurrency: 9, KeepAlive: time.Hour},
		Deps{API: vendor, Publisher: nopPublisher{}, Registerer: reg})
	require.NoError(t, err)
	require.Equal(t, 9.0, gauge(t, reg, "hangup_api_concurrency_share"), "all of it until told otherwise")
	d.SetShare(Share{Members: 3}) // before Start
	require.Equal(t, 3.0, gauge(t, reg, "hangup_api_concurrency_share"))
	require.NoError(t, d.Start(t.Context()))
	t.Cleanup(func() { stopWithin(t, d, 5*time.Second) })

	msgs := make([]*fakeMsg, 12)
	for i := range msgs {
		msgs[i] = newFakeMsg()
		id := strconv.Itoa(i)
		req := &schemas.Request{RequestID: "r" + id, ConferenceID: "c" + id, ParticipantIDs: []string{"p"}}
		require.NoError(t, d.Submit(t.Context(), Job{Request: req, Token: "tok", Msg: msgs[i]}))
	}
	// The batcher sets the held gauge after deciding what to send: once it
	// shows all 12, none is left to be decided on the old share.
	require.Eventually(t, func() bool {
		held, _ := gaugeValue(reg, "hangup_requests_held")
		return held == 12 && vendor.now() >= 3
	}, 10*time.Second, time.Millisecond)
	most, _ := vendor.peak()
	require.Equal(t, 3, most, "3 workers share 9 calls: 3 each")

	d.SetShare(Share{Members: 1})
	require.Equal(t, 9.0, gauge(t, reg, "hangup_api_concurrency_share"))
	require.Eventually(t, func() bool { return vendor.now() >= 9 }, 10*time.Second, time.Millisecond,
		"the batches waiting start when the share grows, without another event")
	most, started := vendor.peak()
	require.Equal(t, 9, most)
	require.Equal(t, 9, started)

	// A smaller share lets the calls in flight finish; the next ones
	// start one at a time. Each release waits for a call to take it.
	d.SetShare(Share{Members: 9})
	for range msgs {
		vendor.release <- struct{}{}
	}
	for i, m := range msgs {
		select {
		case <-m.settled:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d not settled", i)
		}
		require.True(t, m.acked)
	}
	vendor.mu.Lock()
	defer vendor.mu.Unlock()
	require.Equal(t, []int{1, 1, 1}, vendor.starts[9:], "with a share of 1, one call at a time")
}

// When the calls in flight run short, a full batch goes before the partial
// ones that are due: it carries the most IDs per call, and a conference
// with a backlog is not kept waiting among many small ones.
func TestFullBatchesGoFirstWhenCallsRunShort(t *testing.T) {
	vendor := &gateVendor{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	d, err := New(Config{WorkerID: "w", MaxBatch: 2, APIConcurrency: 1, Linger: 50 * time.Millisecond, KeepAlive: time.Hour, Now: clk.now},
		Deps{API: vendor, Publisher: nopPublisher{}, Registerer: reg})
	require.NoError(t, err)
	require.NoError(t, d.Start(t.Context()))
	t.Cleanup(func() { stopWithin(t, d, 5*time.Second) })
	submit := func(conf string, ids ...string) {
		req := &schemas.Request{RequestID: "r-" + conf, ConferenceID: conf, ParticipantIDs: ids}
		require.NoError(t, d.Submit(t.Context(), Job{Request: req, Token: "tok", Msg: newFakeMsg()}))
	}
	submit("first", "p1", "p2") // a full batch: it goes at once
	require.Eventually(t, func() bool { return vendor.now() == 1 }, 10*time.Second, time.Millisecond)
	const small = 20
	submit("big", "p1", "p2")
	for i := range small {
		submit("small"+strconv.Itoa(i), "p")
	}
	require.Eventually(t, func() bool {
		held, _ := gaugeValue(reg, "hangup_requests_held")
		return held == small+2
	}, 10*time.Second, time.Millisecond)
	clk.advance(time.Second) // every partial batch is due

	vendor.release <- struct{}{}
	require.Eventually(t, func() bool { _, started := vendor.peak(); return started == 2 }, 10*time.Second, time.Millisecond)
	vendor.mu.Lock()
	second := vendor.confs[1]
	vendor.mu.Unlock()
	require.Equal(t, "big", second, "the full batch goes before %d partial ones", small)
	for range small + 1 {
		vendor.release <- struct{}{}
	}
}

// countSignal is a FlowSignal that counts its calls.
type countSignal struct {
	calls atomic.Int32
	got   chan struct{} // buffered: Throttled never blocks
}

func newCountSignal() *countSignal { return &countSignal{got: make(chan struct{}, 100)} }

func (s *countSignal) Throttled() {
	s.calls.Add(1)
	s.got <- struct{}{}
}

func TestLocalThrottleSignalsTheOtherWorkersOnce(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	// Ten flow-control answers a second, then the next answer closes the
	// window: one slowdown.
	vendor := &scriptVendor{script: repeat(errFlow, 12), clk: clk, step: 100 * time.Millisecond}
	sig := newCountSignal()
	reg := prometheus.NewRegistry()
	d, err := New(Config{WorkerID: "w", MaxBatch: 1, Now: clk.now, RetryInitial: time.Millisecond, RetryMaxInterval: 2 * time.Millisecond},
		Deps{API: vendor, Publisher: nopPublisher{}, FlowSignal: sig, Registerer: reg})
	require.NoError(t, err)
	require.NoError(t, d.Start(t.Context()))
	t.Cleanup(func() { stopWithin(t, d, 5*time.Second) })

	msg := newFakeMsg()
	req := &schemas.Request{RequestID: "r", ConferenceID: "c", ParticipantIDs: []string{"p"}}
	require.NoError(t, d.Submit(t.Context(), Job{Request: req, Token: "tok", Msg: msg}))
	select {
	case <-msg.settled:
	case <-time.After(10 * time.Second):
		t.Fatal("request not settled")
	}
	require.True(t, msg.acked)
	require.Len(t, vendor.made(), 13)
	require.InDelta(t, 7, float64(d.limiter.current()), 0.01, "70% of the 10 calls/s achieved")
	require.InDelta(t, 7, gauge(t, reg, "hangup_api_rate_limit"), 0.01)

	require.NoError(t, d.Stop(context.Background())) // delivers any signal pending
	require.Equal(t, int32(1), sig.calls.Load())
}

func TestThrottleFromAnotherWorker(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	sig := newCountSignal()
	reg := prometheus.NewRegistry()
	d, err := New(Config{WorkerID: "w", APIRate: 40, Now: clk.now},
		Deps{API: &scriptVendor{}, Publisher: nopPublisher{}, FlowSignal: sig, Registerer: reg})
	require.NoError(t, err)
	require.NoError(t, d.Start(t.Context()))
	t.Cleanup(func() { stopWithin(t, d, 5*time.Second) })
	window(d.limiter, clk, 20, 0) // 20 calls/s, no flow control

	// Eight workers met the same flow control and each said so.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(d.Throttle)
	}
	wg.Wait()
	require.InDelta(t, 14, float64(d.limiter.current()), 0.01, "70% of the 20 calls/s achieved, once")
	require.InDelta(t, 14, gauge(t, reg, "hangup_api_rate_limit"), 0.01)

	clk.advance(900 * time.Millisecond)
	d.Throttle()
	require.InDelta(t, 14, float64(d.limiter.current()), 0.01, "at most once a second")

	clk.advance(100 * time.Millisecond)
	d.Throttle() // 20 answers over the 2s of the window: 10 calls/s
	require.InDelta(t, 7, float64(d.limiter.current()), 0.01)

	require.NoError(t, d.Stop(context.Background())) // delivers any signal pending
	require.Zero(t, sig.calls.Load(), "a slowdown from another worker is not signalled back")
}

func TestLimiterCeilingChanges(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	var set []float64
	l := newLimiter(40, clk.now, func(v float64) { set = append(set, v) })

	l.setCeiling(10)
	require.Equal(t, rate.Limit(10), l.current(), "a lower ceiling applies at once")
	require.Equal(t, []float64{10}, set)
	l.setCeiling(12)
	require.Equal(t, rate.Limit(12), l.current(), "a limit at its ceiling follows a higher one at once")
	l.setCeiling(10)
	require.Equal(t, []float64{10, 12, 10}, set)

	window(l, clk, 10, 6)
	l.answered(false)
	require.InDelta(t, 7, float64(l.current()), 0.01, "flow control below the ceiling")

	l.setCeiling(30)
	require.InDelta(t, 7, float64(l.current()), 0.01, "a throttled limit climbs to a higher ceiling, not jumps")
	l.setCeiling(20)
	require.InDelta(t, 7, float64(l.current()), 0.01, "nor does a ceiling above the limit raise it")
	for range 20 {
		window(l, clk, 5, 0)
		require.LessOrEqual(t, l.current(), rate.Limit(20), "never above the ceiling")
	}
	l.answered(false)
	require.Equal(t, rate.Limit(20), l.current(), "recovery climbs to the ceiling")

	window(l, clk, 20, 10)
	l.setCeiling(5)
	require.Equal(t, rate.Limit(5), l.current())
	l.answered(false) // 20 calls/s, half flow control
	require.InDelta(t, 3.5, float64(l.current()), 0.01, "70% of the lesser of the limit and the rate achieved")

	l.setCeiling(0)
	for i := 0; i < 20 && l.current() != rate.Inf; i++ {
		window(l, clk, 5, 0)
	}
	require.Equal(t, rate.Inf, l.current(), "no ceiling: lifted once recovered")
	require.Equal(t, 0.0, set[len(set)-1])
}

func TestLimiterThrottleFromElsewhere(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	signals := 0
	l := newLimiter(0, clk.now, nil)
	l.onThrottle = func() { signals++ }

	require.False(t, l.throttle(), "no limit and no call yet: nothing to slow down from")
	require.Equal(t, rate.Inf, l.current())

	window(l, clk, 30, 15)
	l.answered(false) // a local slowdown
	require.InDelta(t, 21, float64(l.current()), 0.5)
	require.Equal(t, 1, signals)
	require.False(t, l.throttle(), "within a second of the local slowdown")
	require.InDelta(t, 21, float64(l.current()), 0.5)

	window(l, clk, 19, 0)
	l.answered(false) // 20 calls/s: recovering
	require.InDelta(t, 21*1.25+1, float64(l.current()), 0.5)
	clk.advance(500 * time.Millisecond)
	require.True(t, l.throttle())
	require.InDelta(t, 20*0.7, float64(l.current()), 0.5, "by the 20 calls/s of the last window closed")
	require.Equal(t, 1, signals, "a slowdown from elsewhere is not signalled")

	for i := 0; i < 20 && l.current() != rate.Inf; i++ {
		window(l, clk, 10, 0)
	}
	require.Equal(t, rate.Inf, l.current(), "recovers as from a local slowdown")
}

// stopWithin stops d, cancelling the calls in flight after timeout, so
// that a failed test does not hang on them.
func stopWithin(t *testing.T, d *Dispatcher, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = d.Stop(ctx)
}

// gauge is the value of the gauge called name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, ok := gaugeValue(reg, name)
	require.True(t, ok, "no gauge %s", name)
	return v
}

func gaugeValue(reg *prometheus.Registry, name string) (float64, bool) {
	families, err := reg.Gather()
	if err != nil {
		return 0, false
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A limiter set to a share of the rate budget lets no window of one
// second hold more calls than the share, even flat out: the shares of
// the workers then never add up to more than the budget in any second.
func TestLimiterKeepsEverySecondWithinTheShare(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	for _, share := range []float64{2, 3, 10, 29.5, 30, 84, 200} {
		l := newLimiter(windowSafe(share), func() time.Time { return start }, nil)
		var calls []time.Time
		for at := start; at.Before(start.Add(5 * time.Second)); at = at.Add(50 * time.Microsecond) {
			if l.lim.AllowN(at, 1) {
				calls = append(calls, at)
			}
		}
		for i := range calls {
			in := 0
			for j := i; j < len(calls) && calls[j].Sub(calls[i]) < time.Second; j++ {
				in++
			}
			require.LessOrEqual(t, float64(in), share, "share %v: %d calls in the second from %s", share, in, calls[i].Sub(start))
		}
		require.GreaterOrEqual(t, float64(len(calls)), 0.95*5*windowSafe(share), "share %v: the limiter still uses nearly all of it", share)
	}
}

package dispatcher

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter caps the rate of API calls. It starts at its ceiling (this
// worker's share of the configured rate, or none) and adapts to the
// vendor's flow control, judged per one-second window: when more than a
// tenth of a window's answers of every kind (successes, flow control,
// server errors, no answer), and at least five, are flow control, the
// limit drops to 70% of the rate that window achieved; every other window
// raises it by a quarter, back to the ceiling or to none. A few scattered
// flow-control answers are left to the per-call backoff and Retry-After;
// only a sustained share slows everything down.
//
// The ceiling changes with the number of live workers (setCeiling): a
// lower one lowers the limit at once, a higher one is climbed to by the
// same recovery. Another worker's slowdown is applied here by throttle.
type limiter struct {
	onSet func(calls float64)
	now   func() time.Time
	// onThrottle, when set, is called outside the lock after each slowdown
	// decided here by flow control (not after one asked for by throttle).
	// It must not block. Set before first use.
	onThrottle func()

	mu        sync.Mutex
	lim       *rate.Limiter
	ceiling   rate.Limit // this worker's share of the configured rate; rate.Inf for none
	recoverTo rate.Limit // with no ceiling: where the limit is lifted again
	window    time.Time  // start of the current one-second window
	answers   int        // answers in the current window
	throttles int        // flow-control answers among them
	achieved  rate.Limit // the rate of the last window closed; 0 before the first
	lastCut   time.Time  // when the limit was last lowered by flow control, here or elsewhere
}

const (
	floorRate       = rate.Limit(1)
	throttleShare   = 0.1
	throttleMinimum = 5
	// remoteHoldoff is the least time between a slowdown and one asked for
	// by another worker: the workers of a deployment meet the same flow
	// control at about the same time, and each signals it.
	remoteHoldoff = time.Second
)

func newLimiter(callsPerSecond float64, now func() time.Time, onSet func(float64)) *limiter {
	l := &limiter{ceiling: limitOf(callsPerSecond), onSet: onSet, now: now}
	l.lim = rate.NewLimiter(l.ceiling, burstFor(l.ceiling))
	return l
}

// limitOf is callsPerSecond as a limit: rate.Inf for 0 (none).
func limitOf(callsPerSecond float64) rate.Limit {
	if callsPerSecond > 0 {
		return rate.Limit(callsPerSecond)
	}
	return rate.Inf
}

// burstFor is the limiter's burst: one call, so that the calls of any
// second never exceed the rate by more than one (see windowSafe).
func burstFor(rate.Limit) int { return 1 }

// wait blocks until a call may start.
func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	lim := l.lim
	l.mu.Unlock()
	return lim.Wait(ctx)
}

// current is the limit in calls per second; rate.Inf for none.
func (l *limiter) current() rate.Limit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim.Limit()
}

// setCeiling makes callsPerSecond (0: none) the most the limit may be. A
// limit above it drops to it at once. A limit that was at the old ceiling
// (not slowed down by flow control) moves to the new one at once, so that
// a larger share of the budget is used from the next call on; one below
// it, slowed down by flow control, climbs to it as it recovers. Calls
// already waiting keep the time they were given.
func (l *limiter) setCeiling(callsPerSecond float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.ceiling
	l.ceiling = limitOf(callsPerSecond)
	if l.ceiling == rate.Inf && old != rate.Inf {
		// The limit is lifted once it recovers to the old ceiling.
		l.recoverTo = old
	}
	if cur := l.lim.Limit(); cur > l.ceiling || cur == old {
		l.set(l.ceiling)
	}
}

// answered takes the answer of one call, whatever it was: flowControl
// reports whether it was flow control.
func (l *limiter) answered(flowControl bool) {
	if l.record(flowControl) && l.onThrottle != nil {
		l.onThrottle()
	}
}

// record counts one answer, and reports whether it closed a window that
// lowered the limit.
func (l *limiter) record(flowControl bool) (throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.window.IsZero() {
		l.window = now
	}
	if elapsed := now.Sub(l.window); elapsed >= time.Second {
		throttled = l.closeWindow(now, elapsed)
		l.window, l.answers, l.throttles = now, 0, 0
	}
	l.answers++
	if flowControl {
		l.throttles++
	}
	return throttled
}

// closeWindow adapts the limit to the window that just ended, and reports
// whether it lowered it.
func (l *limiter) closeWindow(now time.Time, elapsed time.Duration) bool {
	cur := l.lim.Limit()
	l.achieved = rate.Limit(float64(l.answers) / elapsed.Seconds())
	switch {
	case l.throttles >= throttleMinimum && float64(l.throttles) > throttleShare*float64(l.answers):
		l.cut(now, cur, l.achieved)
		return true
	case cur != l.ceiling:
		next := cur*1.25 + 1
		target := l.ceiling
		if target == rate.Inf {
			target = l.recoverTo
		}
		if next >= target {
			next = l.ceiling
		}
		l.set(next)
	}
	return false
}

// throttle applies the slowdown of another worker's flow control as if it
// had been decided here, by the rate this worker achieved in the current
// window (or, if that has lasted less than a second, the last one). It
// does nothing within remoteHoldoff of the last slowdown, and when the
// limit is none and no call was answered yet (there is no rate to slow
// down from). It reports whether it lowered the limit; onThrottle is not
// called.
func (l *limiter) throttle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.lastCut.IsZero() && now.Sub(l.lastCut) < remoteHoldoff {
		return false
	}
	cur := l.lim.Limit()
	achieved := cur
	if !l.window.IsZero() {
		switch elapsed := now.Sub(l.window); {
		case elapsed >= time.Second:
			achieved = rate.Limit(float64(l.answers) / elapsed.Seconds())
		case l.achieved > 0:
			achieved = l.achieved
		default:
			// The first window, not a second old: its answers are a
			// second's worth at least.
			achieved = rate.Limit(l.answers)
		}
	}
	if achieved == rate.Inf {
		return false
	}
	l.cut(now, cur, achieved)
	return true
}

// cut lowers the limit to 70% of the lesser of cur and achieved, not
// below floorRate nor above the ceiling.
func (l *limiter) cut(now time.Time, cur, achieved rate.Limit) {
	if cur == rate.Inf {
		l.recoverTo = max(achieved, 2*floorRate)
	}
	l.set(min(l.ceiling, max(floorRate, min(cur, achieved)*0.7)))
	l.lastCut = now
}

func (l *limiter) set(r rate.Limit) {
	l.lim.SetLimit(r)
	l.lim.SetBurst(burstFor(r))
	if l.onSet != nil {
		v := float64(r)
		if r == rate.Inf {
			v = 0
		}
		l.onSet(v)
	}
}

package dispatcher

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter caps the rate of API calls. It starts at the configured rate (or
// none) and adapts to the vendor's flow control, judged per one-second
// window: when more than a tenth of a window's answers of every kind
// (successes, flow control, server errors, no answer), and at least five,
// are flow control, the limit drops to 70% of the rate that window
// achieved; every other window raises it by a quarter, back to the
// configured rate or to none. A few scattered flow-control answers are left
// to the per-call backoff and Retry-After; only a sustained share slows
// everything down.
type limiter struct {
	ceiling rate.Limit // the configured rate; rate.Inf for none
	onSet   func(calls float64)
	now     func() time.Time

	mu        sync.Mutex
	lim       *rate.Limiter
	recoverTo rate.Limit // with no configured rate: where the limit is lifted again
	window    time.Time  // start of the current one-second window
	answers   int        // answers in the current window
	throttles int        // flow-control answers among them
}

const (
	floorRate       = rate.Limit(1)
	throttleShare   = 0.1
	throttleMinimum = 5
)

func newLimiter(callsPerSecond float64, now func() time.Time, onSet func(float64)) *limiter {
	l := &limiter{ceiling: rate.Inf, onSet: onSet, now: now}
	if callsPerSecond > 0 {
		l.ceiling = rate.Limit(callsPerSecond)
	}
	l.lim = rate.NewLimiter(l.ceiling, burstFor(l.ceiling))
	return l
}

func burstFor(r rate.Limit) int {
	if r == rate.Inf {
		return 1
	}
	return max(1, int(float64(r)/10))
}

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

// answered takes the answer of one call, whatever it was: flowControl
// reports whether it was flow control.
func (l *limiter) answered(flowControl bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.window.IsZero() {
		l.window = now
	}
	if elapsed := now.Sub(l.window); elapsed >= time.Second {
		l.closeWindow(elapsed)
		l.window, l.answers, l.throttles = now, 0, 0
	}
	l.answers++
	if flowControl {
		l.throttles++
	}
}

// closeWindow adapts the limit to the window that just ended.
func (l *limiter) closeWindow(elapsed time.Duration) {
	cur := l.lim.Limit()
	achieved := rate.Limit(float64(l.answers) / elapsed.Seconds())
	switch {
	case l.throttles >= throttleMinimum && float64(l.throttles) > throttleShare*float64(l.answers):
		if cur == rate.Inf {
			l.recoverTo = max(achieved, 2*floorRate)
		}
		next := max(floorRate, min(cur, achieved)*0.7)
		l.set(next)
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

package dispatcher

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter caps the rate of API calls. It starts at the configured rate (or
// none) and adapts to the vendor's flow control: each flow-control answer
// halves the rate (at most once a second, down to one call a second); a
// run of successes raises it again step by step, back to the configured
// rate or to none.
type limiter struct {
	ceiling rate.Limit // the configured rate; rate.Inf for none
	onSet   func(calls float64)
	now     func() time.Time

	mu         sync.Mutex
	lim        *rate.Limiter
	lastChange time.Time
	recoverTo  rate.Limit // with no configured rate: where the limit is lifted again
	window     time.Time  // start of the current one-second window
	inWindow   int        // calls started in it
	lastRate   float64    // calls in the last whole window
}

const floorRate = rate.Limit(1)

func newLimiter(callsPerSecond float64, onSet func(float64)) *limiter {
	l := &limiter{ceiling: rate.Inf, onSet: onSet, now: time.Now}
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
	now := l.now()
	if now.Sub(l.window) >= time.Second {
		if now.Sub(l.window) < 2*time.Second {
			l.lastRate = float64(l.inWindow)
		} else {
			l.lastRate = 0
		}
		l.window, l.inWindow = now, 0
	}
	l.inWindow++
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

// throttled takes a flow-control answer.
func (l *limiter) throttled() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.lastChange) < time.Second {
		return
	}
	cur := l.lim.Limit()
	if cur == rate.Inf {
		observed := rate.Limit(max(l.lastRate, float64(l.inWindow)))
		l.recoverTo = max(observed, 2*floorRate)
		cur = observed
	}
	l.set(max(floorRate, cur/2), now)
}

// succeeded takes a successful answer.
func (l *limiter) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.lim.Limit()
	now := l.now()
	if cur == l.ceiling || now.Sub(l.lastChange) < 2*time.Second {
		return
	}
	next := cur*1.25 + 1
	target := l.ceiling
	if target == rate.Inf {
		target = l.recoverTo
	}
	if next >= target {
		next = l.ceiling
	}
	l.set(next, now)
}

func (l *limiter) set(r rate.Limit, now time.Time) {
	l.lim.SetLimit(r)
	l.lim.SetBurst(burstFor(r))
	l.lastChange = now
	if l.onSet != nil {
		v := float64(r)
		if r == rate.Inf {
			v = 0
		}
		l.onSet(v)
	}
}

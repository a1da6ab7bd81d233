package dispatcher

import (
	"context"
	"sync"
	"time"
)

// breaker stops the worker from spending its requests' retries while the
// meeting API fails every call. It counts consecutive outage answers
// (connection errors, timeouts, HTTP 5xx); at the threshold it opens:
// calls wait instead of being made, and the consumer stops pulling. After a
// cool-down one probe call goes through; its success closes the breaker,
// its failure opens it again with a doubled cool-down.
type breaker struct {
	threshold   int
	minCooldown time.Duration
	maxCooldown time.Duration
	onChange    func(open bool)
	now         func() time.Time

	mu       sync.Mutex
	failures int
	open     bool
	until    time.Time // when the next probe may go
	cooldown time.Duration
	probing  bool
	changed  chan struct{} // closed and replaced when the state changes
}

func newBreaker(threshold int, minCooldown, maxCooldown time.Duration, onChange func(bool)) *breaker {
	return &breaker{threshold: threshold, minCooldown: minCooldown, maxCooldown: maxCooldown,
		onChange: onChange, now: time.Now, changed: make(chan struct{})}
}

// isOpen reports whether calls are held back.
func (b *breaker) isOpen() bool {
	if b.threshold <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// changes returns a channel closed at the next change of state.
func (b *breaker) changes() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// wait returns at once while the breaker is closed. While it is open it
// waits until this caller may send the probe, the breaker closes, deadline
// passes (a zero deadline is none), or ctx ends. It reports whether it
// waited at all.
func (b *breaker) wait(ctx context.Context, deadline time.Time) (waited bool, err error) {
	if b.threshold <= 0 {
		return false, nil
	}
	for {
		b.mu.Lock()
		if !b.open {
			b.mu.Unlock()
			return waited, nil
		}
		now := b.now()
		if !now.Before(b.until) && !b.probing {
			b.probing = true
			b.mu.Unlock()
			return true, nil
		}
		wake := b.until
		if b.probing {
			wake = now.Add(b.maxCooldown)
		}
		ch := b.changed
		b.mu.Unlock()
		if !deadline.IsZero() && deadline.Before(wake) {
			wake = deadline
		}
		waited = true
		t := time.NewTimer(max(wake.Sub(b.now()), time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return waited, ctx.Err()
		case <-ch:
			t.Stop()
		case <-t.C:
			if !deadline.IsZero() && !b.now().Before(deadline) {
				return waited, nil
			}
		}
	}
}

// record takes the answer of one call: outage reports whether it was an
// outage answer (anything else, success or a vendor error, shows the API
// is up).
func (b *breaker) record(outage bool) {
	if b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	changed, open := false, false
	if !outage {
		b.failures = 0
		if b.open {
			b.open, b.probing, b.cooldown = false, false, 0
			changed = true
		}
	} else {
		b.failures++
		switch {
		case b.open && b.probing:
			b.probing = false
			b.cooldown = min(2*b.cooldown, b.maxCooldown)
			b.until = b.now().Add(b.cooldown)
			changed = true
		case !b.open && b.failures >= b.threshold:
			b.open = true
			b.cooldown = b.minCooldown
			b.until = b.now().Add(b.cooldown)
			changed = true
		}
	}
	open = b.open
	if changed {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	b.mu.Unlock()
	if changed && b.onChange != nil {
		b.onChange(open)
	}
}

package dispatcher

import (
	"sync"
	"time"
)

// breaker stops the worker from spending its requests' retries while the
// meeting API fails every call. It counts consecutive outage answers
// (connection errors, timeouts, HTTP 5xx); at the threshold it opens:
// calls are not made (their requests are handed back until the next probe)
// and the consumer stops pulling. After a cool-down one probe call goes
// through; its success closes the breaker, its failure opens it again with
// a doubled cool-down. While it is open, it also decides when a request
// may be let in so that the probe has a call to make (admitProbe).
type breaker struct {
	threshold   int
	minCooldown time.Duration
	maxCooldown time.Duration
	admitEvery  time.Duration // least time between two requests admitted for a probe
	onChange    func(open bool)
	now         func() time.Time

	mu       sync.Mutex
	failures int
	open     bool
	until    time.Time // when the next probe may go
	cooldown time.Duration
	probing  bool
	admitted time.Time     // when the last request was admitted for a probe
	taken    bool          // a request was submitted since that admission
	changed  chan struct{} // closed and replaced when the state changes
}

// admitRetry is how soon an admission that brought no request (the
// consumer that got it found its partition empty) is given again, to
// another consumer of the worker.
const admitRetry = 100 * time.Millisecond

func newBreaker(threshold int, minCooldown, maxCooldown, admitEvery time.Duration, now func() time.Time, onChange func(bool)) *breaker {
	return &breaker{threshold: threshold, minCooldown: minCooldown, maxCooldown: maxCooldown, admitEvery: admitEvery,
		onChange: onChange, now: now, changed: make(chan struct{})}
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

// acquire asks to make a call. It allows it while the breaker is closed,
// and lets one caller through as the probe once the cool-down has passed.
// Otherwise it says how long until the next probe may go.
func (b *breaker) acquire() (ok bool, retryIn time.Duration) {
	if b.threshold <= 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true, 0
	}
	now := b.now()
	if !now.Before(b.until) && !b.probing {
		b.probing = true
		return true, 0
	}
	if b.probing {
		return false, b.cooldown
	}
	return false, b.until.Sub(now)
}

// admitProbe reports whether one more request may be let in while the
// breaker is open, so that a probe that is due (with none under way) has a
// call to make: at most one each admitEvery, however many goroutines ask,
// once a request came in on it; an admission that brought none is given
// again after admitRetry. Otherwise it says how long until one may be.
func (b *breaker) admitProbe() (ok bool, in time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open || b.probing {
		return false, b.maxCooldown
	}
	now := b.now()
	if now.Before(b.until) {
		return false, b.until.Sub(now)
	}
	wait := b.admitEvery
	if !b.taken {
		wait = min(admitRetry, b.admitEvery)
	}
	if since := now.Sub(b.admitted); since < wait {
		return false, wait - since
	}
	b.admitted, b.taken = now, false
	return true, 0
}

// submitted notes that a request came in; while the breaker is open, it
// uses up the admission given for the probe.
func (b *breaker) submitted() {
	if b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		b.taken = true
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

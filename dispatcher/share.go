package dispatcher

import (
	"sync"

	"go.uber.org/zap"
)

// FlowSignal carries this worker's slowdowns to the other workers of the
// deployment, which call Throttle when they hear of one.
type FlowSignal interface {
	// Throttled is called when this worker's rate limiter has slowed down
	// because of sustained flow control from the vendor. It is called from
	// one goroutine of the dispatcher's, one call at a time, never with a
	// lock held; slowdowns decided while it runs are merged into one more
	// call. It should return promptly: Stop waits for the call in progress.
	Throttled()
}

// SetShare makes this worker's share of the deployment's budget what s
// says (see Share): for a busy worker, with no idle one, that of one of
// s.Members live workers (below 1 counts as 1): at most
// max(1, APIConcurrency/members) calls in flight, capped by
// WorkerAPIConcurrency, and APIRate/members calls per second, capped by
// WorkerAPIRate. The calls-in-flight share is rounded down so that the
// workers together never exceed APIConcurrency, except that each worker
// keeps one call when there are more workers than APIConcurrency. Idle
// workers keep one call and a tenth of a rate share; the busy ones share
// the rest.
//
// It may be called from any goroutine at any time, before or after Start.
// It applies to the calls that have not yet started: calls in flight run
// on. Batches that wait for a call start as soon as a larger share lets
// them; a lower rate share lowers the current rate limit at once, and a
// higher one is taken at once unless flow control slowed the worker down,
// in which case it is climbed to as flow control allows. The caller
// orders the changes: a raise only once the others have taken their cut.
func (d *Dispatcher) SetShare(s Share) {
	calls, perSecond := d.cfg.share(s)
	d.shareMu.Lock()
	defer d.shareMu.Unlock()
	d.batcher.setCallLimit(calls)
	d.limiter.setCeiling(windowSafe(perSecond))
	d.metrics.concurrencyShare.Set(float64(calls))
}

// Held is how many requests this worker holds now, from Submit until
// their messages are acked or handed back.
func (d *Dispatcher) Held() int { return len(d.slots) }

// Throttle applies a slowdown that another worker decided because of
// sustained flow control, as if this worker's rate limiter had decided it:
// the rate limit drops to 70% of the lesser of the current limit and the
// rate this worker achieved lately. It does nothing within a second of
// the last slowdown, local or remote, so that the signals of many workers
// meeting the same flow control lower the limit once; nor when there is
// no limit and this worker has made no call yet. It never calls
// Deps.FlowSignal. It does not block and is safe from any goroutine.
func (d *Dispatcher) Throttle() {
	if d.limiter.throttle() {
		d.log.Debug("flow control at another worker: API rate lowered", zap.Float64("limit", float64(d.limiter.current())))
	}
}

// flowRelay calls a FlowSignal from a goroutine of its own, so that the
// call chains that decide a slowdown never wait for it.
type flowRelay struct {
	signal FlowSignal
	// pending holds a signal not yet delivered; a buffer of 1 merges the
	// signals that come while one is delivered.
	pending  chan struct{}
	quit     chan struct{}
	quitOnce sync.Once
	done     chan struct{}
}

func newFlowRelay(s FlowSignal) *flowRelay {
	return &flowRelay{signal: s, pending: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

// notify asks for a signal without waiting.
func (r *flowRelay) notify() {
	select {
	case r.pending <- struct{}{}:
	default:
	}
}

// run delivers the signals until stop; a signal pending then is still
// delivered.
func (r *flowRelay) run() {
	defer close(r.done)
	for {
		select {
		case <-r.pending:
			r.signal.Throttled()
		case <-r.quit:
			select {
			case <-r.pending:
				r.signal.Throttled()
			default:
			}
			return
		}
	}
}

// stop ends run and waits for it; it may be called again.
func (r *flowRelay) stop() {
	r.quitOnce.Do(func() { close(r.quit) })
	<-r.done
}

package dispatcher

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// batcher gathers the participant IDs of the requests held into batches per
// conference, starts the call chain of each batch, applies the outcomes to
// the requests waiting, and hands each decided request to the finisher. It
// owns all of that state in one loop goroutine, run: nothing else reads or
// writes it.
type batcher struct {
	cfg      Config
	caller   *caller
	finisher *finisher
	metrics  *metrics
	log      *zap.Logger

	submitCh chan *request
	doneCh   chan *batchOutcome
	// callLimit is the most calls in flight, this worker's share of
	// APIConcurrency: set by setCallLimit from any goroutine, read by the
	// loop. limitRaised wakes the loop when it was raised; a buffer of 1
	// keeps one pending wake-up.
	callLimit   atomic.Int64
	limitRaised chan struct{}
	stopping    <-chan struct{} // closed when Stop begins
	done        chan struct{}   // closed when run returns
	calls       sync.WaitGroup  // call-chain goroutines

	// Owned by the loop goroutine.
	confs         map[string]*conference
	waiting       map[*conference]struct{} // conferences with pending IDs
	held          map[*request]struct{}    // requests not yet finalized
	inFlightCalls int
	batchSeq      uint64
	flushing      bool
	memory        *memory
}

// conference is the batching state of one conference.
type conference struct {
	id       string
	pending  map[string][]*request // participant ID -> requests waiting for it
	order    []string              // pending IDs in arrival order
	firstAt  time.Time             // arrival of the oldest pending ID
	inFlight int                   // call chains in flight
	// proven: a call chain of the conference came back without an answer
	// for the whole conference (meeting gone or not ready), so that more
	// than one may be in flight: a burst for a dead meeting makes one call.
	proven bool
}

func newBatcher(cfg Config, c *caller, f *finisher, m *metrics, log *zap.Logger, stopping <-chan struct{}) *batcher {
	b := &batcher{
		cfg:         cfg,
		caller:      c,
		finisher:    f,
		metrics:     m,
		log:         log,
		submitCh:    make(chan *request),
		doneCh:      make(chan *batchOutcome),
		limitRaised: make(chan struct{}, 1),
		stopping:    stopping,
		done:        make(chan struct{}),
		confs:       make(map[string]*conference),
		waiting:     make(map[*conference]struct{}),
		held:        make(map[*request]struct{}),
		memory:      newMemory(cfg.GoneMemory),
	}
	b.callLimit.Store(int64(cfg.APIConcurrency))
	return b
}

// setCallLimit makes n the most calls in flight. Calls in flight beyond a
// lower limit run on; no new one starts until they are below it. A higher
// limit wakes the loop, so that batches waiting for a call start at once.
func (b *batcher) setCallLimit(n int) {
	if old := b.callLimit.Swap(int64(n)); int64(n) > old {
		select {
		case b.limitRaised <- struct{}{}:
		default:
		}
	}
}

// take hands r to the loop; false when Stop began first.
func (b *batcher) take(r *request) bool {
	select {
	case b.submitCh <- r:
		return true
	case <-b.stopping:
		return false
	}
}

// run is the loop goroutine. The call chains it starts get ctx. Once Stop
// has begun it sends every open batch at once, and it returns when every
// request held has been finalized.
func (b *batcher) run(ctx context.Context) {
	defer close(b.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	keep := time.NewTicker(b.cfg.KeepAlive)
	defer keep.Stop()
	stopping := b.stopping
	for {
		select {
		case r := <-b.submitCh:
			b.accept(r)
		case out := <-b.doneCh:
			b.complete(out)
		case <-b.limitRaised:
		case <-timer.C:
		case <-keep.C:
			b.keepAlive()
			b.memory.prune(b.cfg.Now())
		case <-stopping:
			b.flushing = true
			stopping = nil
		}
		next := b.dispatchReady(ctx, b.cfg.Now())
		b.metrics.held.Set(float64(len(b.held)))
		if b.flushing && len(b.held) == 0 && b.inFlightCalls == 0 {
			return
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(b.cfg.Now()), 0))
		}
	}
}

// wait waits for the call-chain goroutines to return.
func (b *batcher) wait() { b.calls.Wait() }

// accept takes a new request into its conference's pending set.
func (b *batcher) accept(r *request) {
	b.held[r] = struct{}{}
	if r.invalid != nil {
		b.finalize(r)
		return
	}
	req := r.job.Request
	if r.failReason != "" {
		rec := &callRecord{message: r.failText, err: errors.New(r.failText)}
		for _, id := range req.ParticipantIDs {
			r.remaining++
			r.record(id, &idOutcome{kind: idFailed, decidedBy: rec, reason: r.failReason})
		}
		b.finalize(r)
		return
	}
	now := b.cfg.Now()
	if r.expiredAt(now) {
		r.expired = true
		b.finalize(r)
		return
	}
	c := b.confs[req.ConferenceID]
	if c == nil {
		c = &conference{id: req.ConferenceID, pending: make(map[string][]*request)}
		b.confs[req.ConferenceID] = c
	}
	if tok := r.job.Token; tok != "" {
		b.memory.addToken(c.id, tok)
	}
	if len(c.order) == 0 {
		c.firstAt = now
		b.waiting[c] = struct{}{}
	}
	for _, id := range req.ParticipantIDs {
		if _, ok := c.pending[id]; !ok {
			c.order = append(c.order, id)
		}
		c.pending[id] = append(c.pending[id], r)
	}
	r.remaining = len(req.ParticipantIDs)
}

// dispatchReady sends the batches that are due and returns when the next
// one falls due (zero if none waits on time). Full batches go first: when
// this worker's share of the calls in flight runs short, the calls that
// carry the most IDs are made first, and a conference with a backlog keeps
// its ConferenceCalls busy instead of waiting its turn among the partial
// batches of many others. Partial batches follow in no set order.
func (b *batcher) dispatchReady(ctx context.Context, now time.Time) time.Time {
	var next time.Time
	limit := int(b.callLimit.Load())
	for _, fullOnly := range []bool{true, false} {
		for c := range b.waiting {
			if fullOnly && len(c.order) < b.cfg.MaxBatch || !b.mayStart(c) {
				continue
			}
			due := c.firstAt.Add(b.cfg.Linger)
			if !b.flushing && len(c.order) < b.cfg.MaxBatch && now.Before(due) {
				if next.IsZero() || due.Before(next) {
					next = due
				}
				continue
			}
			if b.inFlightCalls >= limit {
				// A call completing, or a higher limit, wakes the loop
				// again, and the next due time is found then.
				return next
			}
			b.dropExpired(c)
			if len(c.order) == 0 {
				delete(b.waiting, c)
				b.forgetIfIdle(c)
				continue
			}
			// A batch answered from memory leaves the conference idle: send
			// the rest of its pending IDs now, not at the next event; full
			// batches may go in parallel up to ConferenceCalls.
			for len(c.order) > 0 && b.mayStart(c) && b.inFlightCalls < limit {
				b.send(ctx, c)
			}
		}
	}
	return next
}

// mayStart reports whether another call chain may start for c: the first
// with any batch, the next ones, up to ConferenceCalls, only with a full
// batch and once a chain of c came back with answers about its IDs.
func (b *batcher) mayStart(c *conference) bool {
	return c.inFlight == 0 || (c.proven && c.inFlight < b.cfg.ConferenceCalls && len(c.order) >= b.cfg.MaxBatch)
}

// dropExpired removes the pending IDs of requests whose expiresAt has
// passed; they are not sent.
func (b *batcher) dropExpired(c *conference) {
	now := b.cfg.Now()
	var expired []*request
	order := c.order[:0]
	for _, id := range c.order {
		waiters := c.pending[id]
		keep := waiters[:0]
		for _, r := range waiters {
			if !r.expired && r.expiredAt(now) {
				r.expired = true
				expired = append(expired, r)
			}
			if r.expired {
				r.remaining--
				continue
			}
			keep = append(keep, r)
		}
		if len(keep) == 0 {
			delete(c.pending, id)
			continue
		}
		c.pending[id] = keep
		order = append(order, id)
	}
	c.order = order
	for _, r := range expired {
		if r.remaining == 0 {
			b.finalize(r)
		}
	}
}

// send decides the conference's next batch from memory, or starts its
// call chain.
func (b *batcher) send(ctx context.Context, c *conference) {
	bt := b.next(c)
	if o, ok := b.memory.answer(c.id, b.cfg.Now()); ok {
		b.metrics.remembered.Inc()
		out := &batchOutcome{batch: bt, outcomes: make(map[string]*idOutcome, len(bt.ids))}
		for _, id := range bt.ids {
			out.outcomes[id] = o
		}
		b.apply(c, out)
		return
	}
	c.inFlight++
	b.inFlightCalls++
	b.calls.Add(1)
	go func() {
		defer b.calls.Done()
		b.doneCh <- b.caller.execute(ctx, bt)
	}()
}

// next takes the conference's next batch off its pending IDs: the oldest
// MaxBatch of them, with the requests waiting for each.
func (b *batcher) next(c *conference) *batch {
	n := min(b.cfg.MaxBatch, len(c.order))
	b.batchSeq++
	bt := &batch{
		id:         b.cfg.WorkerID + "-" + strconv.FormatUint(b.batchSeq, 10),
		conference: c.id,
		ids:        append([]string(nil), c.order[:n]...),
		waiters:    make(map[string][]*request, n),
		tokens:     b.memory.tokensOf(c.id),
	}
	noExpiry := false
	for _, id := range bt.ids {
		bt.waiters[id] = c.pending[id]
		delete(c.pending, id)
		for _, r := range bt.waiters[id] {
			bt.deliveries = max(bt.deliveries, r.job.Source.Deliveries)
			if exp := r.job.Request.ExpiresAt; exp == nil {
				noExpiry = true
			} else if exp.After(bt.expiresAt) {
				bt.expiresAt = *exp
			}
		}
	}
	if noExpiry {
		bt.expiresAt = time.Time{}
	}
	c.order = append([]string(nil), c.order[n:]...)
	if len(c.order) == 0 {
		delete(b.waiting, c)
	}
	return bt
}

// complete applies the answers of a call chain to the requests waiting,
// and remembers what holds beyond the batch.
func (b *batcher) complete(out *batchOutcome) {
	b.inFlightCalls--
	c := b.confs[out.batch.conference]
	c.inFlight--
	now := b.cfg.Now()
	b.memory.reject(c.id, out.rejected, now)
	if out.remember != nil {
		b.memory.remember(c.id, out.remember, now)
		c.proven = false
	} else {
		c.proven = true
	}
	b.apply(c, out)
}

// apply records the outcome of each ID with the requests waiting for it.
func (b *batcher) apply(c *conference, out *batchOutcome) {
	bt := out.batch
	for _, id := range bt.ids {
		o := out.outcomes[id]
		for _, r := range bt.waiters[id] {
			r.record(id, o)
			if r.remaining == 0 {
				b.finalize(r)
			}
		}
	}
	b.forgetIfIdle(c)
}

// forgetIfIdle drops a conference's state once nothing waits on it.
func (b *batcher) forgetIfIdle(c *conference) {
	if c.inFlight == 0 && len(c.order) == 0 {
		delete(b.confs, c.id)
		b.memory.forgetTokens(c.id)
	}
}

// keepAlive marks every held message in progress. The publishes are
// buffered by the NATS connection, so the loop does not wait on the
// network here.
func (b *batcher) keepAlive() {
	for r := range b.held {
		if err := r.job.Msg.InProgress(); err != nil {
			b.log.Debug("keep-alive", zap.String("requestID", r.job.Request.RequestID), zap.Error(err))
		}
	}
}

// finalize hands a decided request to the finisher.
func (b *batcher) finalize(r *request) {
	delete(b.held, r)
	b.finisher.start(r)
}

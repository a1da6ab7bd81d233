package dispatcher

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// finisher settles each decided request on one of a fixed set of
// goroutines, which it starts and ends: it publishes the outcome, then
// acks the message; or it hands the message back to be delivered again.
//
// The goroutines are long-lived rather than one per request: a publish
// waits for the stream's ack, and a fresh goroutine would grow its stack
// on every request.
type finisher struct {
	cfg     Config
	pub     Publisher
	defers  Deferrals
	metrics *metrics
	log     *zap.Logger
	// release frees the request's slot once its message is settled.
	release func()

	// ctx bounds every publish and ack; cancel ends it when the shutdown
	// deadline passes. It belongs to the finisher, not to a caller.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the requests started and not yet settled.
	wg sync.WaitGroup

	// work holds the requests started and not yet taken by a goroutine;
	// each holds a slot, so it never holds more than MaxInFlight.
	work     chan *request
	quit     chan struct{}
	quitOnce sync.Once
	pool     sync.WaitGroup
}

// finishers is the most requests settled at once: publishes waiting for
// their stream acks. At 25,000 requests a second and 10 ms per ack (a
// replicated stream under load), 250 are under way.
const finishers = 256

func newFinisher(cfg Config, pub Publisher, defers Deferrals, m *metrics, log *zap.Logger, release func()) *finisher {
	f := &finisher{cfg: cfg, pub: pub, defers: defers, metrics: m, log: log, release: release,
		work: make(chan *request, cfg.MaxInFlight), quit: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

// run starts the goroutines; stop ends them.
func (f *finisher) run() {
	n := min(finishers, f.cfg.MaxInFlight)
	f.pool.Add(n)
	for range n {
		go func() {
			defer f.pool.Done()
			for {
				select {
				case r := <-f.work:
					f.finish(r)
				case <-f.quit:
					return
				}
			}
		}()
	}
}

// stop ends the goroutines once every request started is settled (see
// wait); it is idempotent.
func (f *finisher) stop() {
	f.quitOnce.Do(func() { close(f.quit) })
	f.pool.Wait()
}

// start queues r to be settled; it never blocks, as r holds a slot.
func (f *finisher) start(r *request) {
	f.wg.Add(1)
	f.work <- r
}

// wait waits for every request started to be settled, or for ctx to end;
// then it cancels the publishes under way, waits for them, and returns
// ctx's error.
func (f *finisher) wait(ctx context.Context) error {
	finished := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		f.cancel()
		<-finished
		return ctx.Err()
	}
}

// finish publishes the outcome of r, then acks its message: the result
// first, then the dead letter (for a failed request), then the ack. A
// request whose call was cancelled by shutdown, or whose meeting is not
// ready, is handed back instead.
func (f *finisher) finish(r *request) {
	defer f.wg.Done()
	defer f.release()
	defer r.endSpan()
	if r.invalid != nil {
		f.finishInvalid(r)
		return
	}
	log := &requestLog{base: f.log, r: r}
	if r.aborted {
		// Not the message's fault: the redelivery does not count towards
		// the delivery limit.
		r.deferDelay = 0
		f.handBack(r, log)
		log.get().Info("request handed back for redelivery: shutdown deadline passed during its call")
		return
	}
	now := f.cfg.Now()
	if r.deferDelay > 0 && !r.expired && !f.giveUp(r, now) {
		f.handBack(r, log)
		return
	}
	f.publish(r, now, log)
}

// giveUp reports whether a deferred request has waited past DeferMax, and
// turns its deferred IDs into failures if so.
func (f *finisher) giveUp(r *request, now time.Time) bool {
	waited := now.Sub(r.job.Source.ReceivedAt)
	if r.job.Source.ReceivedAt.IsZero() || waited < f.cfg.DeferMax {
		return false
	}
	r.failText = fmt.Sprintf("handed back for later for %s, as the meeting was not ready or its control tokens were refused (last answer: %s); given up after the %s limit. Republish the request once the meeting is running and its credentials work.",
		waited.Round(time.Second), r.failedBy.message, f.cfg.DeferMax)
	r.giveUp()
	return true
}

// publish publishes the outcome of a decided request and acks it.
//
// The result goes first: if the stream already holds one for this request
// (decided before, the ack lost in a crash or a NATS restart), that first
// result counts, and a dead letter follows only if it was a failure. So a
// request never has a succeeded result and a dead letter, and a crash
// between the two publishes is repaired by the redelivery.
func (f *finisher) publish(r *request, now time.Time, log *requestLog) {
	req := r.job.Request
	res := r.result(now, f.cfg.WorkerID)
	var first *schemas.Result
	err := f.retry(func(ctx context.Context) error {
		var err error
		first, err = f.pub.PublishResult(r.traced(ctx), res)
		return err
	})
	if err != nil {
		r.traceNotPublished(err)
		log.get().Error("result not published; the message will be redelivered", zap.Error(err))
		return
	}
	if first != nil {
		log.get().Info("request was decided before; its first result stands",
			zap.String("firstStatus", string(first.Status)), zap.String("thisStatus", string(res.Status)))
		res = first
	}
	var reason schemas.DeadLetterReason
	if res.Status == schemas.StatusFailed {
		dl := r.deadLetterFor(res, now, f.cfg.WorkerID)
		if err := f.retry(func(ctx context.Context) error { return f.pub.PublishDeadLetter(r.traced(ctx), dl, req.RequestID) }); err != nil {
			r.traceNotPublished(err)
			log.get().Error("dead letter not published; the message will be redelivered", zap.Error(err))
			return
		}
		f.metrics.deadLetters.WithLabelValues(string(dl.Reason)).Inc()
		reason = dl.Reason
	}
	r.traceResult(res, reason)
	if err := r.job.Msg.Ack(); err != nil {
		log.get().Warn("ack not sent; a redelivery will find the outcome already published", zap.Error(err))
	}
	f.metrics.requests.WithLabelValues(string(res.Status)).Inc()
	if !res.ReceivedAt.IsZero() {
		f.metrics.latency.Observe(res.CompletedAt.Sub(res.ReceivedAt).Seconds())
	}
	if ce := f.log.Check(zap.DebugLevel, "request completed"); ce != nil {
		ce.Write(zap.String("requestID", req.RequestID), zap.String("conferenceID", req.ConferenceID),
			zap.String("status", string(res.Status)), zap.Int("attempts", res.Attempts), zap.Strings("batchIDs", res.BatchIDs))
	}
}

// finishInvalid publishes the dead letter of an invalid message, then
// acks it; if the publish fails the message is handed back to be tried
// again later.
func (f *finisher) finishInvalid(r *request) {
	msg, inv := r.job.Msg, r.invalid
	dl := inv.deadLetter
	log := f.log.With(zap.String("subject", dl.Subject), zap.Uint64("streamSequence", dl.StreamSequence))
	err := f.retry(func(ctx context.Context) error { return f.pub.PublishDeadLetter(r.traced(ctx), dl, inv.msgID) })
	if err != nil {
		r.traceNotPublished(err)
		log.Error("dead letter not published; message handed back", zap.Error(err))
		if nerr := msg.NakWithDelay(time.Second); nerr != nil {
			log.Debug("hand back", zap.Error(nerr))
		}
		return
	}
	log.Info("invalid request dead-lettered", zap.String("error", dl.Error))
	if err := msg.Ack(); err != nil {
		log.Warn("ack not sent; a redelivery will be dead-lettered under the same message ID", zap.Error(err))
	}
}

// handBack releases a deferred request's message for redelivery after its
// delay, first recording the deferral so that it does not count as a
// failed delivery.
func (f *finisher) handBack(r *request, log *requestLog) {
	src := r.job.Source
	if f.defers != nil && src.Stream != "" {
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.PublishTimeout)
		err := f.defers.Record(ctx, src.Stream, src.StreamSequence)
		cancel()
		if err != nil {
			log.get().Warn("deferral not recorded; this redelivery will count towards the delivery limit", zap.Error(err))
		}
	}
	if err := r.job.Msg.NakWithDelay(r.deferDelay); err != nil {
		log.get().Warn("hand back", zap.Error(err))
	}
	r.traceHandBack()
	if r.deferDelay > 0 {
		f.metrics.deferred.Inc()
	}
	if ce := f.log.Check(zap.DebugLevel, "request handed back for later"); ce != nil {
		ce.Write(zap.String("requestID", r.job.Request.RequestID), zap.String("conferenceID", r.job.Request.ConferenceID),
			zap.Duration("delay", r.deferDelay))
	}
}

// retry runs fn with outcome.Retry until the shutdown deadline.
func (f *finisher) retry(fn func(ctx context.Context) error) error {
	return outcome.Retry(f.ctx, f.cfg.PublishTimeout, fn)
}

// requestLog is the logger of one request, made only when something is
// logged: most requests finish without a line, and a logger with fields
// costs allocations on every one of them.
type requestLog struct {
	base *zap.Logger
	r    *request
	l    *zap.Logger
}

func (l *requestLog) get() *zap.Logger {
	if l.l == nil {
		req := l.r.job.Request
		l.l = l.base.With(zap.String("requestID", req.RequestID), zap.String("conferenceID", req.ConferenceID))
	}
	return l.l
}

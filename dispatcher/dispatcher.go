package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// Publisher publishes outcomes and returns once the stream confirmed them;
// *outcome.Publisher satisfies it. PublishResult returns the result stored
// first when the stream drops r as a repeat.
type Publisher interface {
	PublishResult(ctx context.Context, r *schemas.Result) (*schemas.Result, error)
	PublishDeadLetter(ctx context.Context, dl *schemas.DeadLetter, msgID string) error
}

// Deps are the parts a Dispatcher talks to.
type Deps struct {
	// API makes the hang-up calls. Required.
	API HangUpper
	// Publisher publishes outcomes. Required.
	Publisher Publisher
	// Tokens supplies tokens when a request's own do not work. Optional.
	Tokens TokenSource
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Deferrals records each deliberate hand-back of a message, so that the
	// consumer's delivery count check does not count it. Optional.
	Deferrals Deferrals
}

// Deferrals records deliberate redeliveries; *deferral.Ledger satisfies it.
type Deferrals interface {
	Record(ctx context.Context, stream string, seq uint64) error
}

// ErrStopped is returned by Submit once Stop has begun.
var ErrStopped = errors.New("dispatcher stopped")

const (
	stateNew = iota
	stateRunning
	stateStopping
)

// Dispatcher turns jobs into batched hang-up calls and outcomes.
type Dispatcher struct {
	cfg     Config
	api     HangUpper
	pub     Publisher
	tokens  TokenSource
	log     *zap.Logger
	limiter *limiter
	breaker *breaker
	defers  Deferrals
	metrics *metrics

	// slots holds one token per request from Submit until its message is
	// acked or handed back; its capacity is MaxInFlight.
	slots chan struct{}
	// probeAdmitted is when Capacity last let a request in for a probe
	// while the breaker was open; only the consumer's loop calls Capacity.
	probeAdmitted time.Time
	// freed gets a signal whenever a slot is released or the breaker
	// changes; Capacity waits on it. A buffer of 1 keeps one pending wake-up.
	freed    chan struct{}
	submitCh chan *request
	doneCh   chan *batchOutcome

	mu       sync.Mutex
	state    int
	stopping chan struct{} // closed when Stop begins
	loopDone chan struct{}

	callCtx     context.Context // cancelled when the shutdown deadline passes
	cancelCalls context.CancelFunc
	pubCtx      context.Context // cancelled when the shutdown deadline passes
	cancelPub   context.CancelFunc
	calls       sync.WaitGroup // call-chain goroutines
	finishers   sync.WaitGroup // publish-and-ack goroutines

	// Owned by the loop goroutine.
	confs         map[string]*conference
	waiting       map[*conference]struct{} // conferences with pending IDs
	held          map[*request]struct{}    // requests not yet finalized
	inFlightCalls int
	batchSeq      uint64
	flushing      bool
	// memory answers a conference's batches without calls for a while
	// after its meeting was found gone or not ready.
	memory map[string]memo
	// rejectedTokens are tokens the vendor refused, with when: requests
	// published before a token was replaced keep arriving with it, and
	// each would otherwise cost a call.
	rejectedTokens map[string]time.Time
}

// Bounds of the rejected-token memory: a token lives 30 minutes, so an
// hour covers it; the cap bounds memory under a flood of bad tokens.
const (
	rejectedTokenTTL = time.Hour
	rejectedTokenCap = 10000
)

// memo is a remembered answer for a whole conference.
type memo struct {
	until   time.Time
	outcome *idOutcome
}

// conference is the batching state of one conference.
type conference struct {
	id       string
	pending  map[string][]*request // participant ID -> requests waiting for it
	order    []string              // pending IDs in arrival order
	firstAt  time.Time             // monotonic arrival of the oldest pending ID
	inFlight bool
	tokens   []string // newest first
}

// addToken puts tok first: the newest token is tried first.
func (c *conference) addToken(tok string) {
	for i, t := range c.tokens {
		if t == tok {
			copy(c.tokens[1:i+1], c.tokens[:i])
			c.tokens[0] = tok
			return
		}
	}
	c.tokens = append([]string{tok}, c.tokens...)
	const keep = 8 // tokens remembered per conference
	if len(c.tokens) > keep {
		c.tokens = c.tokens[:keep]
	}
}

// drop forgets tok: the vendor rejected it, and a rejected token does not
// come back to life.
func (c *conference) drop(tok string) {
	for i, t := range c.tokens {
		if t == tok {
			c.tokens = append(c.tokens[:i], c.tokens[i+1:]...)
			return
		}
	}
}

// New validates cfg and returns a Dispatcher that is not yet started.
func New(cfg Config, deps Deps) (*Dispatcher, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	if deps.API == nil {
		return nil, errors.New("dispatcher: Deps.API is nil")
	}
	if deps.Publisher == nil {
		return nil, errors.New("dispatcher: Deps.Publisher is nil")
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dispatcher metrics: %w", err)
	}
	d := &Dispatcher{
		cfg:     cfg,
		api:     deps.API,
		pub:     deps.Publisher,
		tokens:  deps.Tokens,
		log:     deps.Logger,
		defers:  deps.Deferrals,
		metrics: m,
		slots:   make(chan struct{}, cfg.MaxInFlight),
		freed:   make(chan struct{}, 1),
		memory:  make(map[string]memo),

		rejectedTokens: make(map[string]time.Time),
		submitCh:       make(chan *request),
		doneCh:         make(chan *batchOutcome),
		stopping:       make(chan struct{}),
		loopDone:       make(chan struct{}),
		confs:          make(map[string]*conference),
		waiting:        make(map[*conference]struct{}),
		held:           make(map[*request]struct{}),
	}
	d.limiter = newLimiter(cfg.APIRate, m.rateLimit.Set)
	m.rateLimit.Set(max(cfg.APIRate, 0))
	d.breaker = newBreaker(cfg.BreakerThreshold, time.Second, cfg.BreakerMaxCooldown, func(open bool) {
		if open {
			m.breakerOpen.Set(1)
			d.log.Warn("meeting API failing every call: circuit breaker open, pulling paused")
		} else {
			m.breakerOpen.Set(0)
			d.log.Info("meeting API answering again: circuit breaker closed")
		}
		d.wake()
	})
	d.callCtx, d.cancelCalls = context.WithCancel(context.Background())
	d.pubCtx, d.cancelPub = context.WithCancel(context.Background())
	return d, nil
}

// Start starts the loop goroutine. ctx is not kept: Stop ends the loop.
func (d *Dispatcher) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateNew {
		return errors.New("dispatcher: already started")
	}
	d.state = stateRunning
	go d.loop()
	return nil
}

// Submit hands a job over. It blocks while MaxInFlight requests are held and
// returns ErrStopped once Stop has begun; the caller then still owns the
// message.
func (d *Dispatcher) Submit(ctx context.Context, job Job) error {
	return d.submit(ctx, newRequest(job, d.cfg.Now()))
}

// Capacity blocks until the dispatcher can take at least one more request
// and the circuit breaker is closed, and returns how many it can take. The
// consumer pulls no more than that, so that no message waits unattended
// in a client buffer.
func (d *Dispatcher) Capacity(ctx context.Context) (int, error) {
	for {
		changed := d.breaker.changes()
		free := cap(d.slots) - len(d.slots)
		if free > 0 && !d.breaker.isOpen() {
			return free, nil
		}
		// While the breaker is open, one request at a time is let in
		// when a probe is due, so that the probe has a call to make.
		wake := time.Hour
		if free > 0 {
			due, in := d.breaker.probeDue()
			if since := time.Since(d.probeAdmitted); due && since >= time.Second {
				d.probeAdmitted = time.Now()
				return 1, nil
			} else if due {
				in = time.Second - since
			}
			wake = in
		}
		t := time.NewTimer(wake)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-d.stopping:
			t.Stop()
			return 0, ErrStopped
		case <-d.freed:
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// wake signals Capacity.
func (d *Dispatcher) wake() {
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

// release frees the slot of a finished request.
func (d *Dispatcher) release() {
	<-d.slots
	d.wake()
}

// Fail hands over a job that must not be attempted, such as one delivered
// too often: every participant is reported failed, the dead letter carries
// reason and text, and the message is acked once both are published.
func (d *Dispatcher) Fail(ctx context.Context, job Job, reason schemas.DeadLetterReason, text string) error {
	r := newRequest(job, d.cfg.Now())
	r.failReason, r.failText = reason, text
	return d.submit(ctx, r)
}

// Reject hands over a message that is no valid request: dl, its dead
// letter, is published under msgID on the same path as outcomes, in a
// goroutine of the dispatcher's, and then msg is acked; if the publish
// fails, msg is handed back to be tried again a second later. Like Submit
// it holds a slot until then, blocks while MaxInFlight requests are held,
// and returns ErrStopped once Stop has begun.
func (d *Dispatcher) Reject(ctx context.Context, msg Message, dl *schemas.DeadLetter, msgID string) error {
	if msg == nil || dl == nil || msgID == "" {
		return errors.New("reject: msg, dead letter and message ID are required")
	}
	return d.submit(ctx, &request{job: Job{Msg: msg}, invalid: &invalidMessage{deadLetter: dl, msgID: msgID}})
}

func (d *Dispatcher) submit(ctx context.Context, r *request) error {
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	if st != stateRunning {
		return ErrStopped
	}
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopping:
		return ErrStopped
	}
	select {
	case d.submitCh <- r:
		return nil
	case <-d.stopping:
		d.release()
		return ErrStopped
	}
}

// Stop shuts the dispatcher down; it is idempotent and safe before Start.
// The order: refuse new jobs, send every open batch at once, let the calls
// in flight finish until ctx ends, publish the outcomes and ack. When ctx
// ends first, the calls in flight are cancelled and their requests are
// handed back to the server for redelivery: nothing is acked without an
// outcome. Stop returns ctx's error in that case.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	switch d.state {
	case stateNew:
		d.state = stateStopping
		close(d.stopping)
		close(d.loopDone)
		d.mu.Unlock()
		d.cancelCalls()
		d.cancelPub()
		return nil
	case stateRunning:
		d.state = stateStopping
		close(d.stopping)
	}
	d.mu.Unlock()

	var late error
	select {
	case <-d.loopDone:
	case <-ctx.Done():
		late = ctx.Err()
		d.cancelCalls()
		<-d.loopDone
	}
	finished := make(chan struct{})
	go func() {
		d.finishers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		late = ctx.Err()
		d.cancelPub()
		<-finished
	}
	d.calls.Wait()
	d.cancelCalls()
	d.cancelPub()
	return late
}

// loop owns the batching state. It ends when Stop has begun and every
// request held has been finalized.
func (d *Dispatcher) loop() {
	defer close(d.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	keep := time.NewTicker(d.cfg.KeepAlive)
	defer keep.Stop()
	stopping := d.stopping
	for {
		select {
		case r := <-d.submitCh:
			d.accept(r)
		case out := <-d.doneCh:
			d.complete(out)
		case <-timer.C:
		case <-keep.C:
			d.keepAlive()
		case <-stopping:
			d.flushing = true
			stopping = nil
		}
		next := d.dispatchReady(time.Now())
		d.metrics.held.Set(float64(len(d.held)))
		if d.flushing && len(d.held) == 0 && d.inFlightCalls == 0 {
			return
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
	}
}

// accept takes a new request into its conference's pending set.
func (d *Dispatcher) accept(r *request) {
	d.held[r] = struct{}{}
	if r.invalid != nil {
		d.finalize(r)
		return
	}
	req := r.job.Request
	if r.failReason != "" {
		rec := &callRecord{message: r.failText, err: errors.New(r.failText)}
		for _, id := range req.ParticipantIDs {
			r.remaining++
			r.record(id, &idOutcome{kind: idFailed, decidedBy: rec, reason: r.failReason})
		}
		d.finalize(r)
		return
	}
	if r.expiredAt(d.cfg.Now()) {
		r.expired = true
		d.finalize(r)
		return
	}
	c := d.confs[req.ConferenceID]
	if c == nil {
		c = &conference{id: req.ConferenceID, pending: make(map[string][]*request)}
		d.confs[req.ConferenceID] = c
	}
	if tok := r.job.Token; tok != "" {
		if _, rejected := d.rejectedTokens[tok]; !rejected {
			c.addToken(tok)
		}
	}
	if len(c.order) == 0 {
		c.firstAt = time.Now()
		d.waiting[c] = struct{}{}
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
// one falls due (zero if none waits on time).
func (d *Dispatcher) dispatchReady(now time.Time) time.Time {
	var next time.Time
	for c := range d.waiting {
		if c.inFlight {
			continue
		}
		due := c.firstAt.Add(d.cfg.Linger)
		if !d.flushing && len(c.order) < d.cfg.MaxBatch && now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		if d.inFlightCalls >= d.cfg.APIConcurrency {
			// A call completing wakes the loop again.
			return next
		}
		d.dropExpired(c)
		if len(c.order) == 0 {
			delete(d.waiting, c)
			d.forgetIfIdle(c)
			continue
		}
		// A batch answered from memory leaves the conference idle: send
		// the rest of its pending IDs now, not at the next event.
		for len(c.order) > 0 && !c.inFlight {
			d.send(c)
		}
	}
	return next
}

// dropExpired removes the pending IDs of requests whose expiresAt has
// passed; they are not sent.
func (d *Dispatcher) dropExpired(c *conference) {
	now := d.cfg.Now()
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
			d.finalize(r)
		}
	}
}

// send starts the call chain of the conference's next batch.
func (d *Dispatcher) send(c *conference) {
	n := min(d.cfg.MaxBatch, len(c.order))
	d.batchSeq++
	b := &batch{
		id:         d.batchID(d.batchSeq),
		conference: c.id,
		ids:        append([]string(nil), c.order[:n]...),
		waiters:    make(map[string][]*request, n),
		tokens:     append([]string(nil), c.tokens...),
	}
	noExpiry := false
	for _, id := range b.ids {
		b.waiters[id] = c.pending[id]
		delete(c.pending, id)
		for _, r := range b.waiters[id] {
			b.deliveries = max(b.deliveries, r.job.Source.Deliveries)
			if exp := r.job.Request.ExpiresAt; exp == nil {
				noExpiry = true
			} else if exp.After(b.expiresAt) {
				b.expiresAt = *exp
			}
		}
	}
	if noExpiry {
		b.expiresAt = time.Time{}
	}
	c.order = append([]string(nil), c.order[n:]...)
	if len(c.order) == 0 {
		delete(d.waiting, c)
	}
	if m, ok := d.memory[c.id]; ok && d.cfg.Now().Before(m.until) {
		d.metrics.remembered.Inc()
		out := &batchOutcome{batch: b, outcomes: make(map[string]*idOutcome, n)}
		o := *m.outcome
		o.carriedBy = nil
		if o.kind == idDeferred {
			o.delay = max(m.until.Sub(d.cfg.Now()), time.Second)
		}
		for _, id := range b.ids {
			out.outcomes[id] = &o
		}
		d.apply(c, out)
		return
	}
	c.inFlight = true
	d.inFlightCalls++
	d.calls.Add(1)
	go func() {
		defer d.calls.Done()
		d.doneCh <- d.execute(d.callCtx, b)
	}()
}

// complete applies the answers of a call chain to the requests waiting.
func (d *Dispatcher) complete(out *batchOutcome) {
	d.inFlightCalls--
	c := d.confs[out.batch.conference]
	c.inFlight = false
	for _, tok := range out.rejected {
		c.drop(tok)
		if len(d.rejectedTokens) >= rejectedTokenCap {
			clear(d.rejectedTokens)
		}
		d.rejectedTokens[tok] = d.cfg.Now()
	}
	if o := out.remember; o != nil && d.cfg.GoneMemory > 0 {
		until := d.cfg.Now().Add(d.cfg.GoneMemory)
		if o.kind == idDeferred {
			until = d.cfg.Now().Add(o.delay)
		}
		d.memory[c.id] = memo{until: until, outcome: o}
	}
	d.apply(c, out)
}

// apply records the outcome of each ID with the requests waiting for it.
func (d *Dispatcher) apply(c *conference, out *batchOutcome) {
	b := out.batch
	for _, id := range b.ids {
		o := out.outcomes[id]
		for _, r := range b.waiters[id] {
			r.record(id, o)
			if r.remaining == 0 {
				d.finalize(r)
			}
		}
	}
	d.forgetIfIdle(c)
}

// forgetIfIdle drops a conference's state once nothing waits on it.
func (d *Dispatcher) forgetIfIdle(c *conference) {
	if !c.inFlight && len(c.order) == 0 {
		delete(d.confs, c.id)
	}
}

// keepAlive marks every held message in progress. The publishes are
// buffered by the NATS connection, so the loop does not wait on the
// network here.
func (d *Dispatcher) keepAlive() {
	now := d.cfg.Now()
	for id, m := range d.memory {
		if !now.Before(m.until) {
			delete(d.memory, id)
		}
	}
	for tok, at := range d.rejectedTokens {
		if now.Sub(at) > rejectedTokenTTL {
			delete(d.rejectedTokens, tok)
		}
	}
	for r := range d.held {
		if err := r.job.Msg.InProgress(); err != nil {
			d.log.Debug("keep-alive", zap.String("requestID", r.job.Request.RequestID), zap.Error(err))
		}
	}
}

// finalize hands a decided request to its own goroutine, which publishes
// the outcome and acks.
func (d *Dispatcher) finalize(r *request) {
	delete(d.held, r)
	d.finishers.Add(1)
	go d.finish(r)
}

// finish publishes the outcome of r, then acks its message: the dead
// letter first (for a failed request), then the result, then the ack. A
// request whose call was cancelled by shutdown is handed back instead.
func (d *Dispatcher) finish(r *request) {
	defer d.finishers.Done()
	defer d.release()
	if r.invalid != nil {
		d.finishInvalid(r.job.Msg, r.invalid)
		return
	}
	req := r.job.Request
	log := d.log.With(zap.String("requestID", req.RequestID), zap.String("conferenceID", req.ConferenceID))
	if r.aborted {
		// Not the message's fault: the redelivery does not count towards
		// the delivery limit.
		r.deferDelay = 0
		d.handBack(r, log)
		log.Info("request handed back for redelivery: shutdown deadline passed during its call")
		return
	}
	now := d.cfg.Now()
	if r.deferDelay > 0 && !r.expired {
		waited := now.Sub(r.job.Source.ReceivedAt)
		if r.job.Source.ReceivedAt.IsZero() || waited < d.cfg.DeferMax {
			d.handBack(r, log)
			return
		}
		r.failText = fmt.Sprintf("handed back for later for %s, as the meeting was not ready or its control tokens were refused (last answer: %s); given up after the %s limit. Republish the request once the meeting is running and its credentials work.",
			waited.Round(time.Second), r.failedBy.message, d.cfg.DeferMax)
		r.giveUp()
	}
	// The result goes first: if the stream already holds one for this
	// request (decided before, the ack lost in a crash or a NATS restart),
	// that first result counts, and a dead letter follows only if it was
	// a failure. So a request never has a succeeded result and a dead
	// letter, and a crash between the two publishes is repaired by the
	// redelivery.
	res := r.result(now, d.cfg.WorkerID)
	var first *schemas.Result
	err := d.retryPublish(func(ctx context.Context) error {
		var err error
		first, err = d.pub.PublishResult(ctx, res)
		return err
	})
	if err != nil {
		log.Error("result not published; the message will be redelivered", zap.Error(err))
		return
	}
	if first != nil {
		log.Info("request was decided before; its first result stands",
			zap.String("firstStatus", string(first.Status)), zap.String("thisStatus", string(res.Status)))
		res = first
	}
	if res.Status == schemas.StatusFailed {
		dl := r.deadLetterFor(res, now, d.cfg.WorkerID)
		if err := d.retryPublish(func(ctx context.Context) error { return d.pub.PublishDeadLetter(ctx, dl, req.RequestID) }); err != nil {
			log.Error("dead letter not published; the message will be redelivered", zap.Error(err))
			return
		}
		d.metrics.deadLetters.WithLabelValues(string(dl.Reason)).Inc()
	}
	if err := d.retryPublish(r.job.Msg.DoubleAck); err != nil {
		log.Warn("ack not confirmed; a redelivery will find the outcome already published", zap.Error(err))
	}
	d.metrics.requests.WithLabelValues(string(res.Status)).Inc()
	if !res.ReceivedAt.IsZero() {
		d.metrics.latency.Observe(res.CompletedAt.Sub(res.ReceivedAt).Seconds())
	}
	log.Debug("request completed", zap.String("status", string(res.Status)),
		zap.Int("attempts", res.Attempts), zap.Strings("batchIDs", res.BatchIDs))
}

// finishInvalid publishes the dead letter of an invalid message, then
// acks it; if the publish fails the message is handed back to be tried
// again later.
func (d *Dispatcher) finishInvalid(msg Message, inv *invalidMessage) {
	dl := inv.deadLetter
	log := d.log.With(zap.String("subject", dl.Subject), zap.Uint64("streamSequence", dl.StreamSequence))
	err := d.retryPublish(func(ctx context.Context) error { return d.pub.PublishDeadLetter(ctx, dl, inv.msgID) })
	if err != nil {
		log.Error("dead letter not published; message handed back", zap.Error(err))
		if nerr := msg.NakWithDelay(time.Second); nerr != nil {
			log.Debug("hand back", zap.Error(nerr))
		}
		return
	}
	log.Info("invalid request dead-lettered", zap.String("error", dl.Error))
	if err := d.retryPublish(msg.DoubleAck); err != nil {
		log.Warn("ack not confirmed; a redelivery will be dead-lettered under the same message ID", zap.Error(err))
	}
}

// handBack releases a deferred request's message for redelivery after its
// delay, first recording the deferral so that it does not count as a
// failed delivery.
func (d *Dispatcher) handBack(r *request, log *zap.Logger) {
	src := r.job.Source
	if d.defers != nil && src.Stream != "" {
		ctx, cancel := context.WithTimeout(d.pubCtx, d.cfg.PublishTimeout)
		err := d.defers.Record(ctx, src.Stream, src.StreamSequence)
		cancel()
		if err != nil {
			log.Warn("deferral not recorded; this redelivery will count towards the delivery limit", zap.Error(err))
		}
	}
	if err := r.job.Msg.NakWithDelay(r.deferDelay); err != nil {
		log.Warn("hand back", zap.Error(err))
	}
	if r.deferDelay > 0 {
		d.metrics.deferred.Inc()
	}
	log.Debug("request handed back for later", zap.Duration("delay", r.deferDelay))
}

// retryPublish runs fn with outcome.Retry until the shutdown deadline.
func (d *Dispatcher) retryPublish(fn func(ctx context.Context) error) error {
	return outcome.Retry(d.pubCtx, d.cfg.PublishTimeout, fn)
}

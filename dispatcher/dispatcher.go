package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

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
	// FlowSignal tells the other workers of the deployment when this one
	// slows down because of the vendor's flow control, so that they call
	// Throttle. Optional.
	FlowSignal FlowSignal
	// Tracer receives the spans of the batches and of the vendor calls
	// (see tracing.go); nil or the no-op provider makes none. A request's
	// own span comes with it (Job.Span) either way.
	Tracer trace.TracerProvider
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

// probeAdmitInterval is the least time between two requests let in for a
// probe while the circuit breaker is open.
const probeAdmitInterval = time.Second

// Dispatcher turns jobs into batched hang-up calls and outcomes. It owns
// the lifecycle and the flow control: how many requests are held, and
// whether the consumer may pull more. The batching is its batcher's, the
// calls its caller's, the publishes and acks its finisher's.
type Dispatcher struct {
	cfg      Config
	log      *zap.Logger
	metrics  *metrics
	breaker  *breaker
	limiter  *limiter
	batcher  *batcher
	finisher *finisher
	relay    *flowRelay // nil without Deps.FlowSignal

	// shareMu makes each SetShare apply whole: concurrency, rate and gauge.
	shareMu sync.Mutex

	// slots holds one token per request from Submit until its message is
	// acked or handed back; its capacity is MaxInFlight, the most requests
	// held.
	slots chan struct{}
	// slotFreed gets a signal whenever a slot is released; Capacity waits
	// on it (and on the breaker's changes). A buffer of 1 keeps one
	// pending wake-up.
	slotFreed chan struct{}

	mu       sync.Mutex
	state    int
	started  bool          // Start started the batcher's loop
	stopping chan struct{} // closed when Stop begins

	// callCtx is given to the call chains; cancelCalls ends it when the
	// shutdown deadline passes.
	callCtx     context.Context
	cancelCalls context.CancelFunc
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
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dispatcher metrics: %w", err)
	}
	d := &Dispatcher{
		cfg:       cfg,
		log:       log,
		metrics:   m,
		slots:     make(chan struct{}, cfg.MaxInFlight),
		slotFreed: make(chan struct{}, 1),
		stopping:  make(chan struct{}),
	}
	_, perSecond := cfg.share(Share{Members: 1})
	lim := newLimiter(windowSafe(perSecond), cfg.Now, m.rateLimit.Set)
	m.rateLimit.Set(windowSafe(perSecond))
	if deps.FlowSignal != nil {
		d.relay = newFlowRelay(deps.FlowSignal)
		lim.onThrottle = d.relay.notify
	}
	d.limiter = lim
	d.breaker = newBreaker(cfg.BreakerThreshold, time.Second, cfg.BreakerMaxCooldown, probeAdmitInterval, cfg.Now, func(open bool) {
		if open {
			m.breakerOpen.Set(1)
			log.Warn("meeting API failing every call: circuit breaker open, pulling paused")
		} else {
			m.breakerOpen.Set(0)
			log.Info("meeting API answering again: circuit breaker closed")
		}
	})
	c := newCaller(cfg, deps.API, deps.Tokens, lim, d.breaker, m, log)
	c.tracing = newTracing(deps.Tracer)
	d.finisher = newFinisher(cfg, deps.Publisher, deps.Deferrals, m, log, d.release)
	d.batcher = newBatcher(cfg, c, d.finisher, m, log, d.stopping)
	d.callCtx, d.cancelCalls = context.WithCancel(context.Background())
	d.SetShare(Share{Members: 1})
	return d, nil
}

// Start starts the batcher's loop goroutine. ctx is not kept: Stop ends
// the loop.
func (d *Dispatcher) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateNew {
		return errors.New("dispatcher: already started")
	}
	d.state, d.started = stateRunning, true
	d.finisher.run()
	if d.relay != nil {
		go d.relay.run()
	}
	go d.batcher.run(d.callCtx)
	return nil
}

// Submit hands a job over. It blocks while MaxInFlight requests are held and
// returns ErrStopped once Stop has begun; the caller then still owns the
// message.
func (d *Dispatcher) Submit(ctx context.Context, job Job) error {
	return d.submit(ctx, newRequest(job))
}

// Fail hands over a job that must not be attempted, such as one delivered
// too often: every participant is reported failed, the dead letter carries
// reason and text, and the message is acked once both are published.
func (d *Dispatcher) Fail(ctx context.Context, job Job, reason schemas.DeadLetterReason, text string) error {
	r := newRequest(job)
	r.failReason, r.failText = reason, text
	return d.submit(ctx, r)
}

// Reject hands over a message that is no valid request: dl, its dead
// letter, is published under msgID on the same path as outcomes, in a
// goroutine of the dispatcher's, and then msg is acked; if the publish
// fails, msg is handed back to be tried again a second later. Like Submit
// it holds a slot until then, blocks while MaxInFlight requests are held,
// and returns ErrStopped once Stop has begun. The span in ctx, if any, is
// the message's (as Job.Span is a request's): the dead letter carries its
// trace context, and it is ended once msg is settled; on error the
// caller still owns it.
func (d *Dispatcher) Reject(ctx context.Context, msg Message, dl *schemas.DeadLetter, msgID string) error {
	if msg == nil || dl == nil || msgID == "" {
		return errors.New("reject: msg, dead letter and message ID are required")
	}
	return d.submit(ctx, &request{job: Job{Msg: msg, Span: spanFrom(ctx)}, invalid: &invalidMessage{deadLetter: dl, msgID: msgID}})
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
	d.breaker.submitted()
	if !d.batcher.take(r) {
		d.release()
		return ErrStopped
	}
	return nil
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
			admitted, in := d.breaker.admitProbe()
			if admitted {
				return 1, nil
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
		case <-d.slotFreed:
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// release frees the slot of a finished request and wakes Capacity.
func (d *Dispatcher) release() {
	<-d.slots
	select {
	case d.slotFreed <- struct{}{}:
	default:
	}
}

// Stop shuts the dispatcher down; it is idempotent and safe before Start.
// When ctx ends first, the calls in flight are cancelled and their
// requests are handed back to the server for redelivery: nothing is acked
// without an outcome. Stop returns ctx's error in that case.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	started := d.started
	if d.state != stateStopping {
		d.state = stateStopping
		close(d.stopping)
	}
	d.mu.Unlock()
	if !started {
		d.cancelCalls()
		d.finisher.cancel()
		d.finisher.stop()
		return nil
	}

	// The order: Submit refuses new jobs (the consumer has stopped
	// fetching); the batcher sends every open batch at once; the calls in
	// flight finish, or are cancelled when ctx ends; the batcher's loop
	// returns once every request is decided; the finisher publishes the
	// outcomes and then acks, until ctx ends; once the call chains have
	// returned, the last flow signal is delivered.
	var late error
	select {
	case <-d.batcher.done:
	case <-ctx.Done():
		late = ctx.Err()
		d.cancelCalls()
		<-d.batcher.done
	}
	if err := d.finisher.wait(ctx); err != nil {
		late = err
	}
	d.batcher.wait()
	if d.relay != nil {
		d.relay.stop()
	}
	d.cancelCalls()
	d.finisher.cancel()
	d.finisher.stop()
	return late
}

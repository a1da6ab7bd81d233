package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// Config says where to pull from and how much to hold.
type Config struct {
	// Stream is the request stream. Defaults to "DISCONNECT_REQUESTS".
	Stream string
	// Durable is the durable pull consumer on Stream. Defaults to
	// "hangup-worker".
	Durable string
	// SubjectPrefix: requests arrive on <prefix>.<conferenceID>. Defaults
	// to "meeting.disconnect.requests".
	SubjectPrefix string
	// MaxParticipants is the most participant IDs one request may carry.
	// Defaults to 500.
	MaxParticipants int
	// MaxDeliveries: a message whose delivery count reaches it is
	// dead-lettered with reason max_deliveries instead of being processed
	// again. Defaults to 5.
	MaxDeliveries int
	// FetchBatch is the most messages one pull asks for; a pull never asks
	// for more than the dispatcher can take at once, so no message waits
	// unattended in a client buffer. Defaults to 100.
	FetchBatch int
	// FetchWait is how long one pull waits for messages when the stream is
	// empty, and so about the longest Stop waits for a pull to end.
	// Defaults to 1s.
	FetchWait time.Duration
	// PublishTimeout bounds one publish of a dead letter and one ack.
	// Defaults to 10s.
	PublishTimeout time.Duration
	// WorkerID names this worker in dead letters. Required.
	WorkerID string
	// PriorityGroup is the priority group the partition consumers pin
	// their pulling client in. Defaults to "hangup".
	PriorityGroup string
	// ReleaseWait is how long a worker waits for the messages it pulled
	// from a partition reassigned to another worker to be settled before
	// it lifts the partition's pin; beyond it, the pin lapses on its own.
	// Defaults to 10s.
	ReleaseWait time.Duration
	// PartitionPrefix begins the subjects under which the request stream
	// stores partitioned requests: <PartitionPrefix>.<partition>.<conferenceID>
	// stands for <SubjectPrefix>.<conferenceID>. Defaults to
	// "hangup.partitioned".
	PartitionPrefix string
	// LagInterval is how often the consumers this worker pulls are asked
	// for their pending, ack-pending and redelivered counts, the
	// hangup_consumer_* gauges. Defaults to 10s.
	LagInterval time.Duration
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
}

// DefaultConfig returns the Config that New uses for a zero one: every
// default, written down once.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = schemas.DefaultRequestStream
	}
	if c.Durable == "" {
		c.Durable = "hangup-worker"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = schemas.DefaultRequestSubjectPrefix
	}
	if c.MaxParticipants == 0 {
		c.MaxParticipants = schemas.DefaultMaxParticipants
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = 5
	}
	if c.FetchBatch == 0 {
		c.FetchBatch = 100
	}
	if c.FetchWait == 0 {
		c.FetchWait = time.Second
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PriorityGroup == "" {
		c.PriorityGroup = "hangup"
	}
	if c.ReleaseWait == 0 {
		c.ReleaseWait = 10 * time.Second
	}
	if c.PartitionPrefix == "" {
		c.PartitionPrefix = "hangup.partitioned"
	}
	if c.LagInterval == 0 {
		c.LagInterval = 10 * time.Second
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.MaxParticipants < 1 || c.MaxParticipants > 10000 {
		errs = append(errs, fmt.Errorf("MaxParticipants: must be between 1 and 10000, got %d", c.MaxParticipants))
	}
	if c.MaxDeliveries < 2 {
		errs = append(errs, fmt.Errorf("MaxDeliveries: must be at least 2, got %d", c.MaxDeliveries))
	}
	if c.FetchBatch < 1 {
		errs = append(errs, fmt.Errorf("FetchBatch: must be at least 1, got %d", c.FetchBatch))
	}
	if c.FetchWait < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("FetchWait: must be at least 100ms, got %s", c.FetchWait))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, fmt.Errorf("PublishTimeout: must be positive, got %s", c.PublishTimeout))
	}
	if c.WorkerID == "" {
		errs = append(errs, errors.New("WorkerID: must not be empty"))
	}
	if c.LagInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("LagInterval: must be at least 100ms, got %s", c.LagInterval))
	}
	return errors.Join(errs...)
}

// Handler takes every message the consumer pulls; *dispatcher.Dispatcher
// satisfies it. It publishes and acks in goroutines of its own, so that the
// pull loop never waits on a publish.
type Handler interface {
	// Capacity blocks until the handler can take messages and says how
	// many.
	Capacity(ctx context.Context) (int, error)
	// Submit takes a valid request.
	Submit(ctx context.Context, job dispatcher.Job) error
	// Fail takes a valid request that must not be attempted.
	Fail(ctx context.Context, job dispatcher.Job, reason schemas.DeadLetterReason, text string) error
	// Reject takes a message that is no valid request, with its dead
	// letter and the Nats-Msg-Id to publish it under.
	Reject(ctx context.Context, msg dispatcher.Message, dl *schemas.DeadLetter, msgID string) error
}

// Deferrals counts the deliberate redeliveries of a message;
// *deferral.Ledger satisfies it.
type Deferrals interface {
	Count(ctx context.Context, stream string, seq uint64) (uint64, error)
}

// Deps are the parts a Consumer talks to.
type Deps struct {
	// JetStream is the connection's JetStream handle. Required.
	JetStream jetstream.JetStream
	// Handler takes valid requests. Required.
	Handler Handler
	// Deferrals, when set, keeps deliberate redeliveries out of the
	// delivery count check. Optional.
	Deferrals Deferrals
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Assignment names the partition consumers to pull from besides the
	// shared durable, and says when they change. Optional: without it,
	// only the durable is pulled from.
	Assignment Assignment
	// Tracer receives the span of each message taken (SpanRequest), handed
	// to the Handler with it; nil or the no-op provider makes none.
	Tracer trace.TracerProvider
}

// Consumer pulls requests and hands them on.
type Consumer struct {
	cfg     Config
	deps    Deps
	log     *zap.Logger
	decode  schemas.DecodeOptions
	metrics *metrics
	tracing tracing
	// backlog sums the pullers' pending counts (see Backlog).
	backlog atomic.Int64

	// mu guards the state transitions below and nothing else: it is never
	// held across a network call or a wait.
	mu       sync.Mutex
	starting bool // Start is binding to the durable
	started  bool // the pull loops were started
	stopped  bool
	// owned are the partition consumers pulled from last; Unpin lets
	// them go.
	owned []string
	// stopping is closed when Stop begins: the loop finishes the pull in
	// hand and ends. stopCtx ends with it, so that a wait for the
	// dispatcher's capacity (or a Start's bind) ends too.
	stopping   chan struct{}
	stopCtx    context.Context
	stopCancel context.CancelFunc
	// ctx is cancelled when Stop's deadline passes, so that a pull or a
	// hand-over in progress gives up.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// lagDone is closed when the lag poller has ended.
	lagDone chan struct{}
}

// New validates cfg and returns a Consumer that is not yet started.
func New(cfg Config, deps Deps) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("consumer config: %w", err)
	}
	if deps.JetStream == nil || deps.Handler == nil {
		return nil, errors.New("consumer: Deps.JetStream and Deps.Handler are required")
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("consumer metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopCtx, stopCancel := context.WithCancel(ctx)
	return &Consumer{
		stopCtx:    stopCtx,
		stopCancel: stopCancel,
		cfg:        cfg,
		deps:       deps,
		log:        deps.Logger,
		decode:     schemas.DecodeOptions{SubjectPrefix: cfg.SubjectPrefix, MaxParticipants: cfg.MaxParticipants},
		metrics:    m,
		tracing:    newTracing(deps.Tracer),
		stopping:   make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		lagDone:    make(chan struct{}),
	}, nil
}

// Start binds to the shared durable consumer and starts pulling from it
// and from the partition consumers the Assignment names. A Stop
// that begins meanwhile ends the bind; Start then returns an error and
// starts nothing. A Start that failed may be tried again.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.starting || c.started || c.stopped {
		c.mu.Unlock()
		return errors.New("consumer: already started or stopped")
	}
	c.starting = true
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.stopCtx, cancel)()
	shared, err := c.deps.JetStream.Consumer(ctx, c.cfg.Stream, c.cfg.Durable)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.starting = false
	switch {
	case c.stopped:
		return errors.New("consumer: stopped while starting")
	case err != nil:
		return fmt.Errorf("bind consumer %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	c.started = true
	go c.supervise(shared)
	go c.pollLag()
	return nil
}

// Stop stops pulling: the pulls in progress end (within FetchWait) and
// their messages are handed to the dispatcher (or back to the server when the
// dispatcher no longer takes them). It returns when the pull loop and the
// lag poller have ended; it is idempotent and safe before Start.
func (c *Consumer) Stop(ctx context.Context) error {
	c.mu.Lock()
	started := c.started
	if c.stopped {
		c.mu.Unlock()
		if started {
			<-c.done
			<-c.lagDone
		}
		return nil
	}
	c.stopped = true
	close(c.stopping)
	c.stopCancel()
	c.mu.Unlock()
	if !started {
		c.cancel()
		return nil
	}
	// The poller's calls end with stopCtx: waiting for it is short.
	select {
	case <-c.done:
		c.cancel()
		<-c.lagDone
		return nil
	case <-ctx.Done():
		c.cancel()
		<-c.done
		<-c.lagDone
		return ctx.Err()
	}
}

// handle takes one message to its owner: the dispatcher, or the dead-letter
// stream.
func (c *Consumer) handle(msg jetstream.Msg, track *tracker) {
	subject := c.publishedSubject(msg.Subject())
	src := outcome.Source{Subject: subject, Payload: msg.Data(), Headers: msg.Headers()}
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack or dead-letter.
		c.log.Error("message without JetStream metadata", zap.String("subject", msg.Subject()), zap.Error(err))
		return
	}
	src.Stream, src.StreamSequence, src.Deliveries, src.ReceivedAt = md.Stream, md.Sequence.Stream, md.NumDelivered, md.Timestamp
	c.metrics.received.Inc()
	if md.NumDelivered > 1 {
		c.metrics.redeliveries.Inc()
	}

	span := c.tracing.startRequest(msg, subject, md)
	req, token, err := c.decodeMessage(subject, msg)
	if err != nil {
		c.metrics.invalid.Inc()
		c.deadLetterInvalid(track.wrap(msg), src, md, err, span)
		return
	}
	describeRequest(span, req)
	job := dispatcher.Job{Request: req, Token: token, Msg: track.wrap(msg), Source: src, Span: span}
	if c.deliveriesExhausted(md) {
		c.metrics.maxDeliveries.Inc()
		text := fmt.Sprintf("delivered %d times without an outcome (max deliveries %d, deliberate redeliveries not counted); not attempted again. A worker may have crashed or stalled on it: check the worker's logs for request %s before republishing.",
			md.NumDelivered, c.cfg.MaxDeliveries, req.RequestID)
		c.log.Warn("max deliveries reached", zap.String("requestID", req.RequestID),
			zap.String("conferenceID", req.ConferenceID), zap.Uint64("deliveries", md.NumDelivered))
		err = c.deps.Handler.Fail(c.ctx, job, schemas.ReasonMaxDeliveries, text)
	} else {
		err = c.deps.Handler.Submit(c.ctx, job)
	}
	if err != nil {
		// The dispatcher is stopping: hand the message back at once.
		endNotTaken(span)
		if nerr := job.Msg.NakWithDelay(0); nerr != nil {
			c.log.Debug("hand back", zap.Error(nerr))
		}
	}
}

// deliveriesExhausted reports whether the message has been delivered
// MaxDeliveries times, not counting the deliberate redeliveries recorded
// in the deferral ledger. When the ledger cannot be read, the message is
// processed once more rather than dead-lettered.
func (c *Consumer) deliveriesExhausted(md *jetstream.MsgMetadata) bool {
	limit := uint64(c.cfg.MaxDeliveries)
	if md.NumDelivered < limit {
		return false
	}
	if c.deps.Deferrals == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PublishTimeout)
	defer cancel()
	deferred, err := c.deps.Deferrals.Count(ctx, md.Stream, md.Sequence.Stream)
	if err != nil {
		c.log.Warn("deferral count unavailable; processing the message again", zap.Uint64("streamSequence", md.Sequence.Stream), zap.Error(err))
		return false
	}
	return md.NumDelivered-min(deferred, md.NumDelivered) >= limit
}

// decodeMessage validates the payload and the token header.
func (c *Consumer) decodeMessage(subject string, msg jetstream.Msg) (*schemas.Request, string, error) {
	req, err := schemas.DecodeRequest(subject, msg.Data(), c.decode)
	if err != nil {
		return nil, "", err
	}
	var token string
	if h := msg.Headers(); h != nil {
		values := h.Values(schemas.TokenHeader)
		switch {
		case len(values) > 1:
			return nil, "", &schemas.ValidationError{Field: "header " + schemas.TokenHeader, Problem: "appears " + strconv.Itoa(len(values)) + " times; send one token"}
		case len(values) == 1:
			token = values[0]
			if err := schemas.ValidateToken(token); err != nil {
				return nil, "", err
			}
		}
	}
	return req, token, nil
}

// deadLetterInvalid hands an invalid message to the handler with its dead
// letter (and its span, in the context); the handler publishes it and
// acks. If the handler is stopping, the message is handed back at once.
func (c *Consumer) deadLetterInvalid(msg dispatcher.Message, src outcome.Source, md *jetstream.MsgMetadata, cause error, span trace.Span) {
	text := "invalid request: " + cause.Error()
	dl := src.DeadLetter(schemas.ReasonInvalidRequest, text, c.cfg.Now(), c.cfg.WorkerID)
	dl.RequestID, dl.ConferenceID = bestEffortIDs(src, c.cfg.SubjectPrefix)
	msgID := outcome.InvalidMsgID(md.Stream, md.Sequence.Stream)
	traceInvalid(span, cause)
	if err := c.deps.Handler.Reject(withSpan(c.ctx, span), msg, dl, msgID); err != nil {
		endNotTaken(span)
		if nerr := msg.NakWithDelay(0); nerr != nil {
			c.log.Debug("hand back", zap.Error(nerr))
		}
	}
}

// bestEffortIDs recovers the request and conference IDs of an invalid
// message where they are themselves valid, so that the dead letter can be
// found by them. The conference ID must also be the subject's last token:
// it names the dead letter's subject.
func bestEffortIDs(src outcome.Source, prefix string) (requestID, conferenceID string) {
	if conf, ok := schemas.ConferenceIDFromSubject(src.Subject, prefix); ok && schemas.ValidateConferenceID(conf) == nil {
		conferenceID = conf
	}
	var probe struct {
		RequestID any `json:"requestID"`
	}
	if len(src.Payload) <= schemas.MaxPayloadBytes && json.Unmarshal(src.Payload, &probe) == nil {
		if s, ok := probe.RequestID.(string); ok && schemas.ValidateRequestID(s) == nil {
			requestID = s
		}
	}
	return requestID, conferenceID
}

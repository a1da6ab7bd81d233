package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/internal/worker"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// Pipeline names a pipeline under test.
type Pipeline string

// The pipelines, in the order they run.
const (
	PipelineLimit  Pipeline = "limit"
	PipelinePlain  Pipeline = "plain"
	PipelineHangup Pipeline = "hangup"
)

// AllPipelines are the pipelines in the order they run.
var AllPipelines = []Pipeline{PipelineLimit, PipelinePlain, PipelineHangup}

// ParsePipelines parses a comma-separated subset of "limit,plain,hangup";
// the result keeps the running order and names each pipeline once.
func ParsePipelines(s string) ([]Pipeline, error) {
	want := map[Pipeline]bool{}
	for _, f := range strings.Split(s, ",") {
		p := Pipeline(strings.ToLower(strings.TrimSpace(f)))
		if p == "" {
			continue
		}
		switch p {
		case PipelineLimit, PipelinePlain, PipelineHangup:
			want[p] = true
		case "all":
			for _, q := range AllPipelines {
				want[q] = true
			}
		default:
			return nil, fmt.Errorf("pipeline %q: want limit, plain or hangup", f)
		}
	}
	var out []Pipeline
	for _, p := range AllPipelines {
		if want[p] {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("pipelines: name at least one of limit, plain, hangup")
	}
	return out, nil
}

// runner is one pipeline under test. start begins draining the request
// stream; stop ends it, lets what is in flight finish within ctx, and drains
// the NATS connection the runner was given.
type runner interface {
	start(ctx context.Context) error
	stop(ctx context.Context) error
}

// resultFor is the result event of a request that a reference pipeline
// publishes: same shape as hangup's.
func resultFor(req *schemas.Request, receivedAt time.Time, workerID string) *schemas.Result {
	return &schemas.Result{
		RequestID:      req.RequestID,
		ConferenceID:   req.ConferenceID,
		ParticipantIDs: req.ParticipantIDs,
		ReceivedAt:     receivedAt.UTC(),
		WorkerID:       workerID,
	}
}

// limitRunner is the broker's limit: decode, publish the result
// asynchronously, and ack each request once its result's PubAck is in. One
// goroutine consumes and publishes, one waits for the PubAcks in order and
// acks; up to the consumer's MaxAckPending requests are in flight.
type limitRunner struct {
	nc   *nats.Conn
	topo topology.Config

	cc   jetstream.ConsumeContext
	mu   sync.RWMutex // guards shut and the send on pending
	shut bool
	// pending carries published results to the acker. Its buffer is larger
	// than the consumer's MaxAckPending, so the consuming callback never
	// waits on the acker.
	pending    chan pendingAck
	ackerDone  chan struct{}
	pubErrors  atomic.Int64
	decodeErrs atomic.Int64
}

type pendingAck struct {
	msg jetstream.Msg
	fut jetstream.PubAckFuture
}

func newLimitRunner(nc *nats.Conn, topo topology.Config) *limitRunner {
	return &limitRunner{nc: nc, topo: topo}
}

func (l *limitRunner) start(ctx context.Context) error {
	inFlight := l.topo.MaxAckPending + 1024
	js, err := jetstream.New(l.nc, jetstream.WithPublishAsyncMaxPending(inFlight),
		// A PubAck that never comes fails the future, so the acker never
		// waits forever.
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, l.topo.RequestStream, l.topo.Durable)
	if err != nil {
		return fmt.Errorf("limit: consumer: %w", err)
	}
	l.pending = make(chan pendingAck, inFlight)
	l.ackerDone = make(chan struct{})
	go l.ack()
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		l.mu.RLock()
		defer l.mu.RUnlock()
		if l.shut {
			return // left unacked: redelivered to whoever comes next
		}
		// A plain decode, not the contract's strict validation: the limit
		// measures the broker, not the decoder.
		var req schemas.Request
		if err := json.Unmarshal(msg.Data(), &req); err != nil || req.RequestID == "" || req.ConferenceID == "" {
			l.decodeErrs.Add(1)
			_ = msg.Term()
			return
		}
		var receivedAt time.Time
		if md, err := msg.Metadata(); err == nil {
			receivedAt = md.Timestamp
		}
		res := resultFor(&req, receivedAt, "bench-limit")
		res.Status = schemas.StatusSucceeded
		res.Disconnected = req.ParticipantIDs
		res.CompletedAt = time.Now().UTC()
		data, err := json.Marshal(res)
		if err != nil {
			l.pubErrors.Add(1)
			_ = msg.Nak()
			return
		}
		out := nats.NewMsg(l.topo.ResultSubjectPrefix + "." + req.ConferenceID)
		out.Data = data
		out.Header.Set(schemas.MsgIDHeader, req.RequestID)
		fut, err := js.PublishMsgAsync(out)
		if err != nil {
			l.pubErrors.Add(1)
			_ = msg.Nak()
			return
		}
		l.pending <- pendingAck{msg: msg, fut: fut}
	}, jetstream.PullMaxMessages(1000))
	if err != nil {
		l.mu.Lock()
		l.shut = true
		close(l.pending)
		l.mu.Unlock()
		<-l.ackerDone
		return fmt.Errorf("limit: consume: %w", err)
	}
	l.cc = cc
	return nil
}

// ack acks each request once its result is stored, in publishing order.
func (l *limitRunner) ack() {
	defer close(l.ackerDone)
	for p := range l.pending {
		select {
		case <-p.fut.Ok():
			_ = p.msg.Ack()
		case <-p.fut.Err():
			l.pubErrors.Add(1)
			_ = p.msg.Nak()
		}
	}
}

// stop: stop pulling and let the buffered messages through the callback,
// then let the acker finish the PubAcks in flight, then drain the
// connection, which flushes the acks.
func (l *limitRunner) stop(ctx context.Context) error {
	var errs []error
	if l.cc != nil {
		l.cc.Drain()
		select {
		case <-l.cc.Closed():
		case <-ctx.Done():
			l.cc.Stop()
			errs = append(errs, fmt.Errorf("limit: drain consumer: %w", ctx.Err()))
		}
		l.mu.Lock()
		l.shut = true
		close(l.pending)
		l.mu.Unlock()
		<-l.ackerDone
	}
	errs = append(errs, worker.Drain(ctx, l.nc))
	if n := l.pubErrors.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("limit: %d result publishes failed", n))
	}
	if n := l.decodeErrs.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("limit: %d requests did not decode", n))
	}
	return errors.Join(errs...)
}

// plainRunner is a plain handler: Handlers goroutines, each taking one
// request at a time, making one hang-up call with all its IDs (retried with
// backoff while the error is retryable), publishing the result (waiting for
// the PubAck) and acking.
type plainRunner struct {
	nc       *nats.Conn
	topo     topology.Config
	apiURL   string
	handlers int

	api    *meetingclient.Client
	cc     jetstream.ConsumeContext
	cancel context.CancelFunc
	mu     sync.RWMutex // guards shut and the send on work
	shut   bool
	work   chan jetstream.Msg
	wg     sync.WaitGroup
	errs   atomic.Int64
}

func newPlainRunner(nc *nats.Conn, topo topology.Config, apiURL string, handlers int) *plainRunner {
	return &plainRunner{nc: nc, topo: topo, apiURL: apiURL, handlers: handlers}
}

func (p *plainRunner) start(ctx context.Context) error {
	js, err := jetstream.New(p.nc)
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, p.topo.RequestStream, p.topo.Durable)
	if err != nil {
		return fmt.Errorf("plain: consumer: %w", err)
	}
	pub, err := outcome.NewPublisher(outcome.Config{
		ResultStream:            p.topo.ResultStream,
		ResultSubjectPrefix:     p.topo.ResultSubjectPrefix,
		DeadLetterSubjectPrefix: p.topo.DeadLetterSubjectPrefix,
	}, js)
	if err != nil {
		return err
	}
	if p.api, err = meetingclient.New(meetingclient.Config{BaseURL: p.apiURL}); err != nil {
		return err
	}
	// The handlers outlive start: their context ends with the run's, or
	// when stop runs out of time.
	runCtx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	p.work = make(chan jetstream.Msg)
	for range p.handlers {
		p.wg.Go(func() {
			for msg := range p.work {
				if err := p.handle(runCtx, pub, msg); err != nil {
					p.errs.Add(1)
				}
			}
		})
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		p.mu.RLock()
		defer p.mu.RUnlock()
		if !p.shut {
			p.work <- msg
		}
	})
	if err != nil {
		p.cancel()
		p.closeWork(context.Background())
		return fmt.Errorf("plain: consume: %w", err)
	}
	p.cc = cc
	return nil
}

// closeWork ends the handlers once they have finished what they hold; when
// ctx ends first, their calls and publishes are cancelled.
func (p *plainRunner) closeWork(ctx context.Context) {
	p.mu.Lock()
	if !p.shut {
		p.shut = true
		close(p.work)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.wg.Wait()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.cancel()
		<-done
	}
	p.cancel()
	p.api.Close()
}

// handle does one request: call, publish, ack.
func (p *plainRunner) handle(ctx context.Context, pub *outcome.Publisher, msg jetstream.Msg) error {
	req, verr := schemas.DecodeRequest(msg.Subject(), msg.Data(), schemas.DecodeOptions{SubjectPrefix: p.topo.RequestSubjectPrefix})
	if verr != nil {
		_ = msg.Term()
		return verr
	}
	var receivedAt time.Time
	if md, err := msg.Metadata(); err == nil {
		receivedAt = md.Timestamp
	}
	token := msg.Headers().Get(schemas.TokenHeader)
	res := resultFor(req, receivedAt, "bench-plain")
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(10*time.Second),
		backoff.WithMaxElapsedTime(2*time.Minute),
	)
	var resp meetingclient.Response
	err := backoff.Retry(func() error {
		res.Attempts++
		var err error
		resp, err = p.api.HangUp(ctx, req.ConferenceID, token, req.ParticipantIDs)
		if err != nil && !meetingclient.ClassOf(err).Retryable() {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx))
	res.HTTPStatus, res.APIRequestID = resp.Status, resp.RequestID
	if err != nil {
		res.Status = schemas.StatusFailed
		res.FailedParticipantIDs = req.ParticipantIDs
		if ae, ok := errors.AsType[*meetingclient.APIError](err); ok {
			res.ErrorCode, res.ErrorMessage = ae.Code, ae.Message
		}
	} else {
		res.Status = schemas.StatusSucceeded
		res.Disconnected = req.ParticipantIDs
	}
	res.CompletedAt = time.Now().UTC()
	if _, err := pub.PublishResult(ctx, res); err != nil {
		_ = msg.Nak()
		return err
	}
	return msg.Ack()
}

// stop: stop pulling, let the handlers finish what they hold, then drain
// the connection.
func (p *plainRunner) stop(ctx context.Context) error {
	var errs []error
	if p.cc != nil {
		p.cc.Drain()
		select {
		case <-p.cc.Closed():
		case <-ctx.Done():
			p.cc.Stop()
			errs = append(errs, fmt.Errorf("plain: drain consumer: %w", ctx.Err()))
		}
		p.closeWork(ctx)
	}
	errs = append(errs, worker.Drain(ctx, p.nc))
	if n := p.errs.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("plain: %d requests not handled", n))
	}
	return errors.Join(errs...)
}

// hangupRunner is the real worker, or several sharing the work.
type hangupRunner struct {
	ws []*worker.Worker
}

// newHangupRunner makes n workers; the first uses nc, the others dial url
// (each worker drains its connection at its stop).
func newHangupRunner(nc *nats.Conn, url string, cfg worker.Config, n int, log *zap.Logger) (*hangupRunner, error) {
	h := &hangupRunner{}
	for i := range n {
		c, conn := cfg, nc
		if n > 1 {
			c.WorkerID = fmt.Sprintf("%s-%d", cfg.WorkerID, i+1)
		}
		if i > 0 {
			var err error
			if conn, err = nats.Connect(url, nats.Name("hangup bench "+c.WorkerID)); err != nil {
				return nil, errors.Join(err, h.stop(context.Background()))
			}
		}
		w, err := worker.New(c, worker.Deps{Conn: conn, Logger: log})
		if err != nil {
			conn.Close()
			return nil, errors.Join(err, h.stop(context.Background()))
		}
		h.ws = append(h.ws, w)
	}
	return h, nil
}

// start starts the workers and, when there are several, waits until each
// sees all of them, so that the partitions are shared out.
func (h *hangupRunner) start(ctx context.Context) error {
	for _, w := range h.ws {
		if err := w.Start(ctx); err != nil {
			return err
		}
	}
	if len(h.ws) == 1 {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		agreed := true
		for _, w := range h.ws {
			agreed = agreed && w.Members() == len(h.ws)
		}
		if agreed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %d workers did not see each other within 30s", len(h.ws))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop is the workers' own graceful stop, which drains their connections.
func (h *hangupRunner) stop(ctx context.Context) error {
	errs := make([]error, len(h.ws))
	var wg sync.WaitGroup
	for i, w := range h.ws {
		wg.Go(func() { errs[i] = w.Stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

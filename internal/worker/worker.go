package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/consumer"
	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/deferral"
	"github.com/hangup-dev/hangup/internal/membership"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/outcome"
)

// Deps are what a Worker may be given instead of making it.
type Deps struct {
	// Conn is an open NATS connection; when nil the worker dials
	// Config.NATS.URL and closes the connection at Stop. A given Conn is
	// drained at Stop too (acks are flushed by the drain).
	Conn *nats.Conn
	// Tokens supplies control tokens from stored credentials. Optional.
	Tokens dispatcher.TokenSource
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// Registry receives the metrics; when nil the worker makes its own.
	Registry *prometheus.Registry
	// TracerProvider receives the spans; when nil the worker sets one up
	// from the OTEL_* variables (tracing.go), which exports nothing unless
	// they ask for it, and flushes it at Stop.
	TracerProvider trace.TracerProvider
}

// Worker is one running hangup worker.
type Worker struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
	reg  *prometheus.Registry

	// mu guards the state transitions below and nothing else: it is never
	// held across a network call or a wait.
	mu      sync.Mutex
	started bool
	stopped bool
	// cancelStart ends the network calls of a Start in progress.
	cancelStart context.CancelFunc
	// parts is what Start assembled; nil until Start succeeds, and when it
	// failed (it then shut down what it had made).
	parts *parts
	// httpAddr is the address the HTTP endpoint listens on, once it does.
	httpAddr string
	// startDone is closed when Start has set parts or given up.
	startDone chan struct{}
	// stopDone is closed when the first Stop has ended.
	stopDone chan struct{}
}

// parts are what one Start assembles and Stop shuts down.
type parts struct {
	nc       *nats.Conn
	group    *membership.Group
	api      *meetingclient.Client
	disp     *dispatcher.Dispatcher
	cons     *consumer.Consumer
	http     *http.Server
	httpDone chan struct{}
	tracing  *tracing
}

// New validates cfg and returns a Worker that is not yet started.
func New(cfg Config, deps Deps) (*Worker, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	w := &Worker{
		cfg: cfg, deps: deps, log: deps.Logger, reg: reg,
		startDone: make(chan struct{}),
		stopDone:  make(chan struct{}),
	}
	if err := reg.Register(w.newReadyGauge()); err != nil {
		return nil, fmt.Errorf("register hangup_ready: %w", err)
	}
	return w, nil
}

// errStoppedWhileStarting: Stop began while Start was still assembling the
// worker; Stop shuts down what Start made.
var errStoppedWhileStarting = errors.New("worker: stopped while starting")

// Start serves the HTTP endpoint, connects, provisions the streams when
// asked, and starts pulling. Each step that talks to NATS is retried with
// backoff until it succeeds (startup.go): Start waits for NATS as long as
// ctx lets it, and returns early only on an error retrying cannot cure,
// such as refused credentials. On error everything started so far is
// stopped again. A Stop that begins meanwhile ends Start's network calls
// and waits; Start then returns an error.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	if w.started || w.stopped {
		w.mu.Unlock()
		return errors.New("worker: already started or stopped")
	}
	w.started = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.cancelStart = cancel
	w.mu.Unlock()

	p, err := w.assemble(ctx)
	w.mu.Lock()
	w.parts = p
	stopped := w.stopped
	w.mu.Unlock()
	close(w.startDone)
	switch {
	case err != nil:
		return err
	case stopped:
		return errStoppedWhileStarting
	}
	w.log.Info("worker started", zap.String("workerID", w.cfg.WorkerID),
		zap.String("nats", p.nc.ConnectedUrlRedacted()), zap.String("api", w.cfg.APIBaseURL),
		zap.String("stream", w.cfg.Topology.RequestStream), zap.String("durable", w.cfg.Topology.Durable))
	return nil
}

// assemble makes and starts the parts in order. On error it shuts down
// what it made and returns nil parts.
func (w *Worker) assemble(ctx context.Context) (_ *parts, err error) {
	p := &parts{}
	defer func() {
		if err != nil {
			_ = p.shutdown(context.Background())
		}
	}()
	if p.tracing, err = w.startTracing(ctx); err != nil {
		return nil, err
	}
	// The HTTP endpoint is up before anything else, so that /healthz
	// answers and /readyz says "starting" while NATS is awaited.
	if err := w.startHTTP(p); err != nil {
		return nil, err
	}
	if p.nc, err = w.connectStep(ctx); err != nil {
		return nil, err
	}
	js, err := jetstream.New(p.nc)
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	var ledger *deferral.Ledger
	if err := w.retryStep(ctx, p.nc, w.ledgerStep(), func(ctx context.Context) (err error) {
		ledger, err = w.deferralLedger(ctx, js)
		return err
	}); err != nil {
		return nil, err
	}
	p.api, err = meetingclient.New(meetingclient.Config{
		BaseURL: w.cfg.APIBaseURL,
		CAFile:  w.cfg.APICAFile,
		Timeout: w.cfg.APITimeout,

		TracePropagation: w.cfg.APITracePropagation,
	})
	if err != nil {
		return nil, fmt.Errorf("meeting API client: %w", err)
	}
	pub, err := outcome.NewPublisher(outcome.Config{
		ResultStream:            w.cfg.Topology.ResultStream,
		ResultSubjectPrefix:     w.cfg.Topology.ResultSubjectPrefix,
		DeadLetterSubjectPrefix: w.cfg.Topology.DeadLetterSubjectPrefix,
	}, js)
	if err != nil {
		return nil, err
	}
	tokens := w.deps.Tokens
	if tokens == nil && w.cfg.CredentialsBucket != "" {
		if err := w.retryStep(ctx, p.nc, "open the credentials and token buckets", func(ctx context.Context) (err error) {
			tokens, err = w.credentialStore(ctx, js, p.api)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if err := w.retryStep(ctx, p.nc, "open the members bucket and list the partitions", func(ctx context.Context) (err error) {
		p.group, err = w.membership(ctx, js, p)
		return err
	}); err != nil {
		return nil, err
	}
	p.disp, err = dispatcher.New(w.cfg.dispatcherConfig(),
		dispatcher.Deps{API: p.api, Publisher: pub, Tokens: tokens, Deferrals: ledger, Logger: w.log, Registerer: w.reg, FlowSignal: p.group,
			Tracer: p.tracing.provider})
	if err != nil {
		return nil, err
	}
	p.cons, err = consumer.New(w.cfg.consumerConfig(),
		consumer.Deps{JetStream: js, Handler: p.disp, Deferrals: ledger, Logger: w.log, Registerer: w.reg, Assignment: p.group,
			Tracer: p.tracing.provider})
	if err != nil {
		return nil, err
	}
	if err := p.disp.Start(ctx); err != nil {
		return nil, err
	}
	if err := w.retryStep(ctx, p.nc, "join the members", p.group.Start); err != nil {
		return nil, err
	}
	if err := w.retryStep(ctx, p.nc, "bind the consumers", p.cons.Start); err != nil {
		return nil, err
	}
	return p, nil
}

// membership opens (or, when provisioning, creates) the members bucket and
// returns this worker's membership, which shares out the partitions found
// on the request stream and tells the dispatcher its share of the vendor
// budget and the other workers' flow control. Its hooks reach p.disp,
// which is made next and started before the group.
func (w *Worker) membership(ctx context.Context, js jetstream.JetStream, p *parts) (*membership.Group, error) {
	ttl := w.cfg.MemberTTL
	var kv jetstream.KeyValue
	var err error
	if w.cfg.Provision {
		kv, err = membership.EnsureBucket(ctx, js, w.cfg.MembersBucket, ttl, w.cfg.Topology.Replicas)
	} else if kv, err = js.KeyValue(ctx, w.cfg.MembersBucket); err != nil {
		err = fmt.Errorf("members bucket %s: %w (create it, or start one worker with --provision)", w.cfg.MembersBucket, err)
	}
	if err != nil {
		return nil, err
	}
	partitions, err := topology.PartitionConsumers(ctx, js, w.cfg.Topology)
	if err != nil {
		return nil, err
	}
	return membership.New(membership.Config{Name: w.cfg.WorkerID, TTL: ttl, Partitions: partitions}, kv, w.log, membership.Hooks{
		OnThrottle: func() { p.disp.Throttle() },
		OnView:     func(v membership.View) { p.disp.SetShare(shareOf(v)) },
		Raises:     func(prev, next membership.View) bool { return shareOf(prev).Raises(shareOf(next)) },
		Held:       func() int { return p.disp.Held() },
		Load:       func() int { return p.disp.Held() + p.cons.Backlog() },
	})
}

// shareOf is the dispatcher's view of what membership knows.
func shareOf(v membership.View) dispatcher.Share {
	return dispatcher.Share{Members: v.Members, IdleOthers: v.IdleOthers, Idle: v.Idle, Load: v.Load, OthersLoad: v.OthersLoad}
}

// connect returns Deps.Conn, or dials Config.NATS.URL once; an error
// retrying cannot cure is a *natsconn.RefusedError that names the settings
// to check.
func (w *Worker) connect() (*nats.Conn, error) {
	if w.deps.Conn != nil {
		return w.deps.Conn, nil
	}
	opts := []nats.Option{
		nats.Name("hangup-worker " + w.cfg.WorkerID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil && !nc.IsClosed() && !nc.IsDraining() {
				w.log.Warn("NATS disconnected; reconnecting", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			w.log.Info("NATS reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
	}
	auth, err := w.cfg.NATS.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(w.cfg.NATS.URL, append(opts, auth...)...)
	if err != nil {
		return nil, w.cfg.NATS.Refused(err)
	}
	return nc, nil
}

// deferralLedger provisions the streams and the deferral ledger when asked,
// or opens the ledger.
func (w *Worker) deferralLedger(ctx context.Context, js jetstream.JetStream) (*deferral.Ledger, error) {
	if !w.cfg.Provision {
		ledger, err := deferral.Open(ctx, js, deferral.DefaultBucket)
		if err != nil {
			return nil, fmt.Errorf("%w (create it, or start one worker with --provision)", err)
		}
		return ledger, nil
	}
	if err := topology.Ensure(ctx, js, w.cfg.Topology); err != nil {
		return nil, err
	}
	// Entries outlive the longest a request may be deferred.
	return deferral.Ensure(ctx, js, deferral.DefaultBucket, 2*w.cfg.DeferMax, w.cfg.Topology.Replicas)
}

func (w *Worker) startHTTP(p *parts) error {
	if w.cfg.HTTPAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", w.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTPAddr: listen on %s: %w", w.cfg.HTTPAddr, err)
	}
	w.mu.Lock()
	w.httpAddr = ln.Addr().String()
	w.mu.Unlock()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", serveHealth)
	mux.HandleFunc("/readyz", w.serveReady)
	if w.cfg.PProf {
		handlePProf(mux)
	}
	p.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	p.httpDone = make(chan struct{})
	go func() {
		defer close(p.httpDone)
		if err := p.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.log.Error("HTTP endpoint", zap.Error(err))
		}
	}()
	return nil
}

// Members is how many live workers this worker sees, itself included; 0
// before Start.
func (w *Worker) Members() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.parts == nil || w.parts.group == nil {
		return 0
	}
	return w.parts.group.Members()
}

// Addr is the address the HTTP endpoint listens on (with the port the
// system chose for port 0), from early in Start on; "" when it is off or
// Start has not yet reached it.
func (w *Worker) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.httpAddr
}

// Stop shuts the worker down within ctx; idempotent, safe before Start and
// while Start is in progress (Start's network calls are ended, and what it
// made is shut down here). A second Stop waits for the first one to end,
// or for its own ctx.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		select {
		case <-w.stopDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// From here on the worker is not ready: /readyz answers 503 and
	// hangup_ready is 0 while it drains.
	w.stopped = true
	started, cancelStart := w.started, w.cancelStart
	w.mu.Unlock()
	defer close(w.stopDone)
	if !started {
		return nil
	}
	// Start's network calls honour its context, and connecting is bounded
	// by the NATS client's own timeout: this wait is short.
	cancelStart()
	<-w.startDone
	w.mu.Lock()
	p := w.parts
	w.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.shutdown(ctx)
}

// shutdown runs the stop order:
//  1. stop pulling; the messages already buffered are handed to the dispatcher;
//  2. the dispatcher sends every open batch at once, lets the calls in
//     flight finish until ctx ends, publishes the outcomes (waiting for the
//     streams' confirmation) and acks; what could not finish is handed back
//     unacked and is redelivered;
//  3. drain the NATS connection, which flushes the acks;
//  4. flush the spans (ended with the outcomes) to the trace exporter;
//  5. close the HTTP endpoint and the API client's idle connections.
//
// It shuts down only the parts that were made.
func (p *parts) shutdown(ctx context.Context) error {
	var errs []error
	if p.cons != nil {
		if err := p.cons.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop consumer: %w", err))
		}
	}
	if p.disp != nil {
		if err := p.disp.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop dispatcher: %w", err))
		}
	}
	// Every message is settled: let the partitions go at once, and leave
	// the group, so that the other workers take over without waiting out
	// the pinned TTL and the member TTL.
	if p.cons != nil {
		if err := p.cons.Unpin(ctx); err != nil {
			errs = append(errs, fmt.Errorf("unpin partitions: %w", err))
		}
	}
	if p.group != nil {
		if err := p.group.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if p.nc != nil {
		if err := Drain(ctx, p.nc); err != nil {
			errs = append(errs, err)
		}
	}
	p.tracing.shutdown()
	if p.http != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = p.http.Shutdown(shutCtx)
		cancel()
		<-p.httpDone
	}
	if p.api != nil {
		p.api.Close()
	}
	return errors.Join(errs...)
}

// Drain drains nc and waits until it is closed or ctx ends; then, or if
// draining fails, the connection is closed.
func Drain(ctx context.Context, nc *nats.Conn) error {
	if nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("drain NATS connection: %w", ctx.Err())
	}
}

// Run starts a worker, waits for ctx to end, and stops it within
// cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	w, err := New(cfg, deps)
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	w.log.Info("stopping", zap.Duration("deadline", w.cfg.ShutdownTimeout))
	stopCtx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
	defer cancel()
	return w.Stop(stopCtx)
}

// credentialStore opens (or, when provisioning, creates) the bucket of
// host passwords and the token cache bucket, and returns the token store
// that reads them.
func (w *Worker) credentialStore(ctx context.Context, js jetstream.JetStream, api *meetingclient.Client) (dispatcher.TokenSource, error) {
	var creds, tokens jetstream.KeyValue
	var err error
	if w.cfg.Provision {
		creds, err = credentials.EnsureBucket(ctx, js, w.cfg.CredentialsBucket, w.cfg.Topology.Replicas)
		if err == nil {
			tokens, err = credentials.EnsureTokenBucket(ctx, js, w.cfg.TokenBucket, w.cfg.Topology.Replicas)
		}
	} else {
		creds, err = credentials.OpenBucket(ctx, js, w.cfg.CredentialsBucket)
		if err == nil {
			tokens, err = credentials.OpenTokenBucket(ctx, js, w.cfg.TokenBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	store, err := credentials.New(credentials.Config{
		Bucket:      w.cfg.CredentialsBucket,
		TokenBucket: w.cfg.TokenBucket,
		Holder:      w.cfg.WorkerID,
	}, credentials.Deps{Credentials: creds, Tokens: tokens, JetStream: js, API: api, Logger: w.log})
	if err != nil {
		return nil, err
	}
	return store, nil
}

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
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/consumer"
	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/deferral"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/outcome"
)

// Deps are what a Worker may be given instead of making it.
type Deps struct {
	// Conn is an open NATS connection; when nil the worker dials
	// Config.NATSURL and closes the connection at Stop. A given Conn is
	// drained at Stop too (acks are flushed by the drain).
	Conn *nats.Conn
	// Tokens supplies control tokens from stored credentials. Optional.
	Tokens dispatcher.TokenSource
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// Registry receives the metrics; when nil the worker makes its own.
	Registry *prometheus.Registry
}

// Worker is one running hangup worker.
type Worker struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
	reg  *prometheus.Registry

	mu       sync.Mutex
	started  bool
	stopped  bool
	nc       *nats.Conn
	api      *meetingclient.Client
	disp     *dispatcher.Dispatcher
	cons     *consumer.Consumer
	http     *http.Server
	httpDone chan struct{}
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
	return &Worker{cfg: cfg, deps: deps, log: deps.Logger, reg: reg}, nil
}

// Start connects, provisions the streams when asked, and starts pulling.
// On error everything started so far is stopped again.
func (w *Worker) Start(ctx context.Context) (err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.stopped {
		return errors.New("worker: already started or stopped")
	}
	w.started = true
	defer func() {
		if err != nil {
			w.shutdown(context.Background())
		}
	}()

	w.nc = w.deps.Conn
	if w.nc == nil {
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
		if w.cfg.NATSCredsFile != "" {
			opts = append(opts, nats.UserCredentials(w.cfg.NATSCredsFile))
		}
		if w.nc, err = nats.Connect(w.cfg.NATSURL, opts...); err != nil {
			return fmt.Errorf("connect to NATS: %w", err)
		}
	}
	js, err := jetstream.New(w.nc)
	if err != nil {
		return fmt.Errorf("JetStream: %w", err)
	}
	var ledger *deferral.Ledger
	if w.cfg.Provision {
		if err := topology.Ensure(ctx, js, w.cfg.Topology); err != nil {
			return err
		}
		// Entries outlive the longest a request may be deferred.
		if ledger, err = deferral.Ensure(ctx, js, deferral.DefaultBucket, 2*w.cfg.DeferMax, w.cfg.Topology.Replicas); err != nil {
			return err
		}
	} else if ledger, err = deferral.Open(ctx, js, deferral.DefaultBucket); err != nil {
		return fmt.Errorf("%w (create it, or start one worker with --provision)", err)
	}
	w.api, err = meetingclient.New(meetingclient.Config{
		BaseURL: w.cfg.APIBaseURL,
		CAFile:  w.cfg.APICAFile,
		Timeout: w.cfg.APITimeout,
	})
	if err != nil {
		return fmt.Errorf("meeting API client: %w", err)
	}
	pub, err := outcome.NewPublisher(outcome.Config{
		ResultStream:            w.cfg.Topology.ResultStream,
		ResultSubjectPrefix:     w.cfg.Topology.ResultSubjectPrefix,
		DeadLetterSubjectPrefix: w.cfg.Topology.DeadLetterSubjectPrefix,
	}, js)
	if err != nil {
		return err
	}
	tokens := w.deps.Tokens
	if tokens == nil && w.cfg.CredentialsBucket != "" {
		if tokens, err = w.credentialStore(ctx, js); err != nil {
			return err
		}
	}
	w.disp, err = dispatcher.New(dispatcher.Config{
		MaxBatch:         w.cfg.MaxBatch,
		Linger:           w.cfg.Linger,
		APIConcurrency:   w.cfg.APIConcurrency,
		MaxInFlight:      w.cfg.MaxInFlight,
		RetryInitial:     w.cfg.RetryInitial,
		RetryMaxInterval: w.cfg.RetryMaxInterval,
		RetryMaxElapsed:  w.cfg.RetryMaxElapsed,
		KeepAlive:        w.cfg.keepAlive(),
		APIRate:          w.cfg.APIRate,
		BreakerThreshold: w.cfg.BreakerThreshold,
		DeferMax:         w.cfg.DeferMax,
		DeferInitial:     w.cfg.DeferInitial,
		WorkerID:         w.cfg.WorkerID,
	}, dispatcher.Deps{API: w.api, Publisher: pub, Tokens: tokens, Deferrals: ledger, Logger: w.log, Registerer: w.reg})
	if err != nil {
		return err
	}
	w.cons, err = consumer.New(consumer.Config{
		Stream:          w.cfg.Topology.RequestStream,
		Durable:         w.cfg.Topology.Durable,
		SubjectPrefix:   w.cfg.Topology.RequestSubjectPrefix,
		MaxParticipants: w.cfg.MaxParticipants,
		MaxDeliveries:   w.cfg.MaxDeliveries,
		WorkerID:        w.cfg.WorkerID,
	}, consumer.Deps{JetStream: js, Handler: w.disp, Deferrals: ledger, Logger: w.log, Registerer: w.reg})
	if err != nil {
		return err
	}
	if err := w.startHTTP(); err != nil {
		return err
	}
	if err := w.disp.Start(ctx); err != nil {
		return err
	}
	if err := w.cons.Start(ctx); err != nil {
		return err
	}
	w.log.Info("worker started", zap.String("workerID", w.cfg.WorkerID),
		zap.String("nats", w.nc.ConnectedUrlRedacted()), zap.String("api", w.cfg.APIBaseURL),
		zap.String("stream", w.cfg.Topology.RequestStream), zap.String("durable", w.cfg.Topology.Durable))
	return nil
}

func (w *Worker) startHTTP() error {
	if w.cfg.HTTPAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", w.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTPAddr: listen on %s: %w", w.cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusOK)
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if w.nc == nil || !w.nc.IsConnected() {
			http.Error(rw, "NATS not connected", http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("ready\n"))
	})
	w.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	w.httpDone = make(chan struct{})
	go func() {
		defer close(w.httpDone)
		if err := w.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.log.Error("HTTP endpoint", zap.Error(err))
		}
	}()
	return nil
}

// Addr is the address the HTTP endpoint listens on, or "" when it is off.
func (w *Worker) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.http == nil {
		return ""
	}
	return w.cfg.HTTPAddr
}

// Stop shuts the worker down within ctx; idempotent, safe before Start.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return nil
	}
	w.stopped = true
	return w.shutdown(ctx)
}

// shutdown runs the stop order:
//  1. stop pulling; the messages already buffered are handed to the dispatcher;
//  2. the dispatcher sends every open batch at once, lets the calls in
//     flight finish until ctx ends, publishes the outcomes (waiting for the
//     streams' confirmation) and acks; what could not finish is handed back
//     unacked and is redelivered;
//  3. drain the NATS connection, which flushes the acks;
//  4. close the HTTP endpoint and the API client's idle connections.
func (w *Worker) shutdown(ctx context.Context) error {
	var errs []error
	if w.cons != nil {
		if err := w.cons.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop consumer: %w", err))
		}
	}
	if w.disp != nil {
		if err := w.disp.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop dispatcher: %w", err))
		}
	}
	if w.nc != nil {
		if err := drain(ctx, w.nc); err != nil {
			errs = append(errs, err)
		}
	}
	if w.http != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = w.http.Shutdown(shutCtx)
		cancel()
		<-w.httpDone
	}
	if w.api != nil {
		w.api.Close()
	}
	return errors.Join(errs...)
}

// drain drains nc and waits until it is closed or ctx ends.
func drain(ctx context.Context, nc *nats.Conn) error {
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
func (w *Worker) credentialStore(ctx context.Context, js jetstream.JetStream) (dispatcher.TokenSource, error) {
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
	}, credentials.Deps{Credentials: creds, Tokens: tokens, JetStream: js, API: w.api, Logger: w.log})
	if err != nil {
		return nil, err
	}
	return store, nil
}

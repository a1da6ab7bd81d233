// Command meetingsim serves the in-memory Huawei Cloud Meeting control API
// simulator of package meetingsim over HTTP or HTTPS, for demos and soak
// tests of the hangup worker. Faults, the hang-up mode and the token
// settings (-token-lifetime, -token-mode) can be set by flags at start and
// changed at run time through the /_sim/ admin API.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hangup-dev/hangup/internal/buildinfo"
	"github.com/hangup-dev/hangup/internal/meetingsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	code := 0
	if err != nil {
		fmt.Fprintln(os.Stderr, "meetingsim:", err)
		code = 1
	}
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	listen          string
	mode            string
	tokenLifetime   time.Duration
	tokenMode       string
	seed            uint64
	meetings        int
	participants    int
	password        string
	latency, jitter time.Duration
	spikeRate       float64
	spikeLatency    time.Duration
	errorRate       float64
	flowControlRate float64
	retryAfter      time.Duration
	maxRecords      int
	tlsCert, tlsKey string
	accessLog       bool
	logLevel        zapcore.Level
	shutdownGrace   time.Duration
}

// parseFlags parses args; it returns flag.ErrHelp after printing usage for
// -h.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("meetingsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8090", "address to listen on")
	fs.StringVar(&o.mode, "mode", "lenient", "what a hang-up does with IDs not online: lenient (ignore) or strict (reject the call)")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", meetingsim.DefaultTokenLifetime, "lifetime of control tokens")
	fs.StringVar(&o.tokenMode, "token-mode", "many", "what a new token does to the earlier tokens of its meeting: many (they stay valid) or one-live (they end)")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of fault injection")
	fs.IntVar(&o.meetings, "meetings", 1, "running meetings to create: conf-0001, conf-0002, ...")
	fs.IntVar(&o.participants, "participants", 10, "participants online in each meeting: p-0001, p-0002, ...")
	fs.StringVar(&o.password, "password", "host-secret", "host password of the created meetings")
	fs.DurationVar(&o.latency, "latency", 0, "latency added to every vendor call")
	fs.DurationVar(&o.jitter, "jitter", 0, "uniform random latency in [0, jitter) added to every vendor call")
	fs.Float64Var(&o.spikeRate, "spike-rate", 0, "probability of a latency spike per vendor call")
	fs.DurationVar(&o.spikeLatency, "spike-latency", 0, "extra latency of a spike")
	fs.Float64Var(&o.errorRate, "error-rate", 0, "probability that a hang-up answers 500 "+meetingsim.CodeServiceError)
	fs.Float64Var(&o.flowControlRate, "flow-control-rate", 0, "probability that a hang-up answers 429 "+meetingsim.CodeFlowControl)
	fs.DurationVar(&o.retryAfter, "retry-after", 0, "Retry-After sent with flow control answers (0: none)")
	fs.IntVar(&o.maxRecords, "max-records", 100000, "newest calls and disconnects kept for /_sim/calls and /_sim/disconnects (0: all)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate file; with -tls-key, serve HTTPS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file; with -tls-cert, serve HTTPS")
	fs.BoolVar(&o.accessLog, "access-log", true, "log every request")
	fs.TextVar(&o.logLevel, "log-level", zapcore.InfoLevel, "log level: debug, info, warn, error")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 5*time.Second, "how long in-flight requests may finish on shutdown")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, errors.New("-tls-cert and -tls-key go together")
	}
	if o.meetings < 0 || o.participants < 0 {
		return o, errors.New("-meetings and -participants must not be negative")
	}
	return o, nil
}

// simConfig turns the flags into the simulator's configuration.
func (o options) simConfig() (meetingsim.Config, error) {
	mode, err := meetingsim.ParseMode(o.mode)
	if err != nil {
		return meetingsim.Config{}, fmt.Errorf("-mode: %w", err)
	}
	tokenMode, err := meetingsim.ParseTokenMode(o.tokenMode)
	if err != nil {
		return meetingsim.Config{}, fmt.Errorf("-token-mode: %w", err)
	}
	cfg := meetingsim.Config{
		TokenLifetime: o.tokenLifetime,
		TokenMode:     tokenMode,
		Mode:          mode,
		Seed:          o.seed,
		MaxRecords:    o.maxRecords,
		Faults: meetingsim.Faults{
			LatencyBase:     o.latency,
			LatencyJitter:   o.jitter,
			SpikeRate:       o.spikeRate,
			SpikeLatency:    o.spikeLatency,
			FlowControlRate: o.flowControlRate,
			RetryAfter:      o.retryAfter,
		},
	}
	if o.errorRate != 0 {
		cfg.Faults.Errors = []meetingsim.ErrorFault{{Rate: o.errorRate, Status: http.StatusInternalServerError, Code: meetingsim.CodeServiceError}}
	}
	return cfg, nil
}

// run serves the simulator until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg, err := o.simConfig()
	if err != nil {
		return err
	}
	sim, err := meetingsim.New(cfg)
	if err != nil {
		return err
	}
	for _, m := range meetingsim.GenerateMeetings(o.meetings, o.participants, o.password) {
		if err := sim.AddMeeting(m); err != nil {
			return err
		}
	}

	log := zap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.Lock(zapcore.AddSync(stderr)),
		o.logLevel,
	))
	defer func() { _ = log.Sync() }()

	handler := sim.Handler()
	if o.accessLog {
		handler = accessLog(log, handler)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	scheme := "http"
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	// serveErr has room for Serve's one result, so that the goroutine
	// never blocks on it.
	serveErr := make(chan error, 1)
	go func() {
		if scheme == "https" {
			serveErr <- srv.ServeTLS(ln, "", "")
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	url := scheme + "://" + ln.Addr().String()
	log.Info("meetingsim listening",
		zap.String("url", url),
		zap.String("version", buildinfo.Version()),
		zap.Stringer("mode", cfg.Mode),
		zap.Stringer("token_mode", cfg.TokenMode),
		zap.Duration("token_lifetime", sim.TokenLifetime()),
		zap.Int("meetings", o.meetings),
		zap.Int("participants", o.participants),
		zap.Uint64("seed", o.seed),
	)
	fmt.Fprintf(stdout, "meetingsim listening on %s\n", url)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Shutdown order: stop accepting, let in-flight calls finish within the
	// grace period, then close whatever is left (closing a connection
	// cancels its request, which ends injected latency).
	log.Info("meetingsim shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	if shutdownErr != nil {
		_ = srv.Close()
	}
	<-serveErr // http.ErrServerClosed once Shutdown or Close has begun
	st := sim.Stats()
	log.Info("meetingsim stopped",
		zap.Int("calls", st.Calls),
		zap.Int("disconnects", st.Disconnects),
		zap.Int("tokens_issued", st.TokensIssued),
	)
	if shutdownErr != nil {
		return fmt.Errorf("shut down: %w", shutdownErr)
	}
	return nil
}

// accessLog logs every request with its answer's status and request ID.
func accessLog(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			log.Info("request",
				zap.String("method", r.Method),
				zap.String("path", r.URL.Path),
				zap.String("conference_id", r.URL.Query().Get("conferenceID")),
				zap.Int("status", sw.status),
				zap.String("request_id", w.Header().Get(meetingsim.HeaderRequestID)),
				zap.Duration("duration", time.Since(start)),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status written; 0 if none was (a dropped
// connection or a client that left).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection, which an
// outage with dropped connections hijacks.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

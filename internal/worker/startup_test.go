package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/schemas"
)

// freePort finds a free TCP port on 127.0.0.1 for a server started later.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// runNATS starts a JetStream server with opts (host, port -1 unless set,
// a store directory) for t.
func runNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.NoLog, opts.NoSigs, opts.JetStream = "127.0.0.1", true, true, true
	if opts.Port == 0 {
		opts.Port = -1
	}
	opts.StoreDir = t.TempDir()
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "NATS server ready")
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// status GETs url and returns the status code and body.
func status(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// observed is a logger that keeps what it logs.
func observed(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core).With(zap.String("test", t.Name())), logs
}

// logText is every entry of logs as text, fields included.
func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

// retries counts the logged failed attempts of steps whose name has step
// in it.
func retries(logs *observer.ObservedLogs, step string) int {
	n := 0
	for _, e := range logs.FilterMessage("start-up step failed; retrying").All() {
		if s, _ := e.ContextMap()["step"].(string); strings.Contains(s, step) {
			n++
		}
	}
	return n
}

// startAsync starts w in a goroutine; the channel receives Start's error.
func startAsync(ctx context.Context, w *Worker) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx) }()
	return done
}

// wait waits for Start's error.
func wait(t *testing.T, started <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-started:
		return err
	case <-time.After(within):
		t.Fatalf("Start has not returned within %v", within)
		return nil
	}
}

// requireNotReturned fails when Start has returned.
func requireNotReturned(t *testing.T, started <-chan error) {
	t.Helper()
	select {
	case err := <-started:
		t.Fatalf("Start returned while it should still wait: %v", err)
	default:
	}
}

// stopAtEnd stops w when the test ends.
func stopAtEnd(t *testing.T, w *Worker) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
}

// A worker started before its NATS server exists waits for it, serving
// /healthz and a /readyz that says 503 meanwhile, logs its attempts
// without the password of the URL, and becomes ready and works once the
// server is there.
func TestStartWaitsForNATSThenBecomesReady(t *testing.T) {
	const secret = "s3cret-nats-password"
	port := freePort(t)
	sim, err := meetingsim.New(meetingsim.Config{})
	require.NoError(t, err)
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	log, logs := observed(t)
	reg := prometheus.NewRegistry()
	w, err := New(Config{
		NATS:       natsconn.Config{URL: fmt.Sprintf("nats://hangup:%s@127.0.0.1:%d", secret, port)},
		APIBaseURL: api.URL, Provision: true, WorkerID: "early", HTTPAddr: "127.0.0.1:0",
		Linger: 10 * time.Millisecond, ShutdownTimeout: 10 * time.Second,
	}, Deps{Logger: log, Registry: reg})
	require.NoError(t, err)
	stopAtEnd(t, w)
	started := startAsync(context.Background(), w)

	require.Eventually(t, func() bool { return w.Addr() != "" }, 10*time.Second, 5*time.Millisecond, "HTTP endpoint up")
	base := "http://" + w.Addr()
	code, _ := status(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	code, body := status(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "starting")
	require.Zero(t, gauge(t, reg, "hangup_ready"))
	require.Eventually(t, func() bool { return retries(logs, "connect to NATS") >= 2 }, 30*time.Second, 10*time.Millisecond,
		"failed attempts are logged")
	requireNotReturned(t, started)
	code, _ = status(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "still not ready")

	runNATS(t, &server.Options{Port: port, Username: "hangup", Password: secret})
	require.NoError(t, wait(t, started, 60*time.Second))
	code, body = status(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, 1.0, gauge(t, reg, "hangup_ready"))

	// It works: a request gets its result.
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), nats.UserInfo("hangup", secret))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, sim.AddMeeting(meetingsim.Meeting{ID: "c1", HostPassword: "pw", Participants: []string{"p1"}}))
	tok, err := sim.IssueToken("c1")
	require.NoError(t, err)
	data, err := json.Marshal(schemas.Request{RequestID: "r1", ConferenceID: "c1", ParticipantIDs: []string{"p1"}})
	require.NoError(t, err)
	msg := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + ".c1")
	msg.Data = data
	msg.Header.Set(schemas.TokenHeader, tok)
	_, err = js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := js.Stream(context.Background(), schemas.DefaultResultStream)
		return err == nil && st.CachedInfo().State.Msgs == 1
	}, 30*time.Second, 20*time.Millisecond, "the request's result is published")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, w.Stop(ctx), "stopped while its server runs")
	text := logText(logs)
	require.NotContains(t, text, secret, "the password never reaches the log")
	require.Contains(t, text, fmt.Sprintf("nats://hangup:xxxxx@127.0.0.1:%d", port), "attempts name the redacted URL")
}

// A caller that wants to fail fast gives Start a deadline.
func TestStartWithADeadlineGivesUpWhileNATSIsDown(t *testing.T) {
	log, logs := observed(t)
	w, err := New(Config{NATS: natsconn.Config{URL: fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))}, WorkerID: "w"}, Deps{Logger: log})
	require.NoError(t, err)
	stopAtEnd(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = w.Start(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "connect to NATS at nats://127.0.0.1:")
	require.ErrorContains(t, err, "no servers available", "the last failure is named")
	require.Positive(t, retries(logs, "connect to NATS"))
}

// blockingAPI is the simulator behind a front whose hang-up calls wait
// until release is closed; called receives a value as each arrives.
func blockingAPI(t *testing.T, sim *meetingsim.Simulator) (url string, called <-chan struct{}, release func()) {
	t.Helper()
	calls := make(chan struct{}, 100) // more than the test's calls: the front never blocks on it
	gate := make(chan struct{})
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == meetingsim.PathHangUp {
			calls <- struct{}{}
			<-gate
		}
		sim.Handler().ServeHTTP(rw, r)
	}))
	rel := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(front.Close)
	t.Cleanup(rel)
	return front.URL, calls, rel
}

// /readyz and hangup_ready turn to not ready the moment Stop begins,
// while the worker still finishes what it holds.
func TestReadyzTurnsUnavailableWhenStopBegins(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	url, called, release := blockingAPI(t, h.sim)
	tok := h.meeting("c1", "p1", "p2")
	reg := prometheus.NewRegistry()
	cfg := h.config()
	cfg.APIBaseURL, cfg.HTTPAddr = url, "127.0.0.1:0"
	w, err := New(cfg, Deps{Logger: h.log, Registry: reg})
	require.NoError(t, err)
	stopAtEnd(t, w)
	require.NoError(t, w.Start(context.Background()))
	base := "http://" + w.Addr()
	code, _ := status(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1.0, gauge(t, reg, "hangup_ready"))

	h.request("r1", "c1", tok, "p1", "p2")
	select {
	case <-called:
	case <-time.After(30 * time.Second):
		t.Fatal("the hang-up call did not arrive")
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- w.Stop(ctx)
	}()
	require.Eventually(t, func() bool {
		code, _ := status(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	}, 10*time.Second, 5*time.Millisecond, "/readyz says 503 from the moment Stop begins")
	code, body := status(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "stopping")
	require.Zero(t, gauge(t, reg, "hangup_ready"))
	code, _ = status(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code, "the process still runs")
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned before the call in flight ended: %v", err)
	default:
	}
	release()
	require.NoError(t, <-stopped)
	h.audit()
}

// /readyz follows the NATS connection: 503 while it is cut off, 200 again
// once it has reconnected.
func TestReadyzFollowsTheNATSConnection(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	proxies := natstest.NewProxies(t, h.srv.ClientURL())
	reg := prometheus.NewRegistry()
	cfg := h.config()
	cfg.NATS.URL, cfg.HTTPAddr = proxies.URLs(), "127.0.0.1:0"
	w, err := New(cfg, Deps{Logger: h.log, Registry: reg})
	require.NoError(t, err)
	stopAtEnd(t, w)
	require.NoError(t, w.Start(context.Background()))
	readyz := "http://" + w.Addr() + "/readyz"
	code, _ := status(t, readyz)
	require.Equal(t, http.StatusOK, code)

	proxies.Cut()
	require.Eventually(t, func() bool {
		code, _ := status(t, readyz)
		return code == http.StatusServiceUnavailable
	}, 30*time.Second, 10*time.Millisecond, "503 while disconnected")
	_, body := status(t, readyz)
	require.Contains(t, body, "NATS not connected")
	require.Zero(t, gauge(t, reg, "hangup_ready"))

	proxies.Restore()
	require.Eventually(t, func() bool {
		code, _ := status(t, readyz)
		return code == http.StatusOK
	}, 30*time.Second, 10*time.Millisecond, "200 once reconnected")
	require.Equal(t, 1.0, gauge(t, reg, "hangup_ready"))
}

func TestPProfIsServedOnlyWhenAsked(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	for _, on := range []bool{false, true} {
		w := h.start(func(c *Config) { c.HTTPAddr, c.PProf, c.WorkerID = "127.0.0.1:0", on, fmt.Sprint("pprof-", on) })
		code, body := status(t, "http://"+w.Addr()+"/debug/pprof/")
		if !on {
			require.Equal(t, http.StatusNotFound, code)
			continue
		}
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "goroutine")
		code, _ = status(t, "http://"+w.Addr()+"/debug/pprof/cmdline")
		require.Equal(t, http.StatusOK, code)
	}
	_, err := New(Config{PProf: true, WorkerID: "w"}, Deps{})
	require.ErrorContains(t, err, "PProf: needs HTTPAddr")
}

// A stream that exists with a configuration the worker's cannot replace
// stops Start at once, naming the stream, instead of retrying for ever.
func TestIncompatibleStreamStopsStart(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: schemas.DefaultResultStream, Subjects: []string{schemas.DefaultResultSubjectPrefix + ".>"},
		Storage: jetstream.MemoryStorage, // the worker's is on file, and storage cannot change
	})
	require.NoError(t, err)
	w, err := New(Config{NATS: natsconn.Config{URL: srv.ClientURL()}, Provision: true, WorkerID: "w"}, Deps{})
	require.NoError(t, err)
	stopAtEnd(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = w.Start(ctx)
	require.Error(t, err)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "stopped by the error, not by the deadline")
	require.ErrorContains(t, err, "provision the streams")
	require.ErrorContains(t, err, schemas.DefaultResultStream)
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	require.False(t, transient(err))
}

// Workers that do not provision wait for one that does.
func TestWithoutProvisionStartWaitsForTheStreams(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	// The harness made the streams; the buckets are missing until a
	// provisioning worker makes them.
	log, logs := observed(t)
	cfg := h.config()
	cfg.Provision, cfg.WorkerID = false, "follower"
	follower, err := New(cfg, Deps{Logger: log})
	require.NoError(t, err)
	stopAtEnd(t, follower)
	started := startAsync(context.Background(), follower)
	require.Eventually(t, func() bool { return retries(logs, "open the deferral bucket") >= 1 }, 30*time.Second, 10*time.Millisecond)
	requireNotReturned(t, started)
	require.Contains(t, logText(logs), "start one worker with --provision", "the log says what is missing")

	h.start(func(c *Config) { c.WorkerID = "provisioner" })
	require.NoError(t, wait(t, started, 60*time.Second))
	tok := h.meeting("c1", "p1")
	h.request("r1", "c1", tok, "p1")
	h.audit()
}

func TestTransientClassifiesOnce(t *testing.T) {
	api := func(code int, errCode jetstream.ErrorCode) error {
		return fmt.Errorf("create or update stream S: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: "x"})
	}
	cases := map[string]struct {
		err       error
		transient bool
	}{
		"jetstream default timeout":   {fmt.Errorf("create or update stream DISCONNECT_REQUESTS: %w", context.DeadlineExceeded), true},
		"no responders":               {fmt.Errorf("members bucket b: %w", nats.ErrNoResponders), true},
		"JetStream not enabled":       {fmt.Errorf("deferral bucket b: %w", jetstream.ErrJetStreamNotEnabled), true},
		"request timeout":             {nats.ErrTimeout, true},
		"no servers":                  {nats.ErrNoServers, true},
		"connection refused":          {&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		"stream not found":            {fmt.Errorf("stream S: %w", jetstream.ErrStreamNotFound), true},
		"bucket not found":            {fmt.Errorf("deferral bucket b: %w", jetstream.ErrBucketNotFound), true},
		"no stream response":          {jetstream.ErrNoStreamResponse, true},
		"no suitable peers":           {api(400, 10005), true},
		"insufficient resources":      {api(503, 10023), true},
		"cluster not available":       {api(503, 10008), true},
		"stream name in use (race)":   {api(400, 10058), true},
		"raft error":                  {api(500, 10041), true},
		"invalid stream config":       {api(500, 10052), false},
		"replicas on a single server": {api(500, 10074), false},
		"subjects overlap":            {api(400, 10065), false},
		"not enabled for the account": {fmt.Errorf("x: %w", jetstream.ErrJetStreamNotEnabledForAccount), false},
		"authorization violation":     {&natsconn.RefusedError{Err: nats.ErrAuthorization, Check: "--nats-token"}, false},
		"permissions violation":       {nats.ErrPermissionViolation, false},
		"marked as configuration":     {&configError{errors.New("x")}, false},
		"the worker's own check":      {errors.New("credentials: token cache bucket t: it must allow per-entry TTLs"), false},
		"a part's config":             {errors.New("membership config: Name: must not be empty"), false},
	}
	for name, tc := range cases {
		require.Equal(t, tc.transient, transient(tc.err), name)
	}
}

func TestRetryLogFalls(t *testing.T) {
	var l retryLog
	now := time.Now()
	var logged []int
	for attempt := 1; attempt <= 25; attempt++ {
		if l.due(attempt, now) {
			logged = append(logged, attempt)
		}
	}
	require.Equal(t, []int{1, 2, 3, 10, 20}, logged)
	require.False(t, l.due(21, now.Add(59*time.Second)))
	require.True(t, l.due(22, now.Add(61*time.Second)), "at least once a minute")
}

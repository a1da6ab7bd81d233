package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/internal/embedded"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/worker"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// Config shapes the load and the simulated API.
type Config struct {
	// Requests to publish. Defaults to 5000.
	Requests int
	// Conferences to spread them over. Defaults to 200.
	Conferences int
	// Participants online in each conference. Defaults to 100.
	Participants int
	// MaxIDsPerRequest: each request names 1 to this many participants.
	// Defaults to 5.
	MaxIDsPerRequest int
	// Invalid malformed messages mixed in. Defaults to 0.
	Invalid int
	// ErrorRate of hang-up calls that the simulator fails with HTTP 500.
	// Defaults to 0.
	ErrorRate float64
	// Latency of each simulated API call. Defaults to 0.
	Latency time.Duration
	// Strict makes the simulator reject whole calls that name someone not
	// online.
	Strict bool
	// Seed of the load generator and the simulator's faults. Defaults to 1.
	Seed uint64
	// Timeout ends the run if the outcomes have not all arrived. Defaults
	// to 5m.
	Timeout time.Duration
	// Worker is the worker's tuning; NATS URL, API URL and provisioning are
	// set by the demo.
	Worker worker.Config
	// Out receives progress and the summary. Required.
	Out io.Writer
	// Logger receives the worker's logs. Defaults to a no-op logger.
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.Requests == 0 {
		c.Requests = 5000
	}
	if c.Conferences == 0 {
		c.Conferences = 200
	}
	if c.Participants == 0 {
		c.Participants = 100
	}
	if c.MaxIDsPerRequest == 0 {
		c.MaxIDsPerRequest = 5
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Requests < 1 {
		errs = append(errs, fmt.Errorf("Requests: must be at least 1, got %d", c.Requests))
	}
	if c.Conferences < 1 || c.Conferences > 9999 {
		errs = append(errs, fmt.Errorf("Conferences: must be between 1 and 9999, got %d", c.Conferences))
	}
	if c.Participants < 1 || c.Participants > 9999 {
		errs = append(errs, fmt.Errorf("Participants: must be between 1 and 9999, got %d", c.Participants))
	}
	if c.MaxIDsPerRequest < 1 || c.MaxIDsPerRequest > c.Participants || c.MaxIDsPerRequest > schemas.DefaultMaxParticipants {
		errs = append(errs, fmt.Errorf("MaxIDsPerRequest: must be between 1 and min(Participants, 500), got %d", c.MaxIDsPerRequest))
	}
	if c.Invalid < 0 {
		errs = append(errs, fmt.Errorf("Invalid: must not be negative, got %d", c.Invalid))
	}
	if c.ErrorRate < 0 || c.ErrorRate > 0.9 {
		errs = append(errs, fmt.Errorf("ErrorRate: must be between 0 and 0.9, got %g", c.ErrorRate))
	}
	if c.Out == nil {
		errs = append(errs, errors.New("Out: must not be nil"))
	}
	return errors.Join(errs...)
}

// Summary is what a run found.
type Summary struct {
	Report    *audit.Report
	APICalls  int
	IDsPerOK  float64 // participant IDs per successful call
	Elapsed   time.Duration
	Published int
	// Exact reports whether the simulator disconnected exactly the
	// requested participants: everyone asked for, no one else.
	Exact bool
}

const password = "demo-host-password"

// Run runs the demo and prints progress and the summary to cfg.Out.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "hangup-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Options{StoreDir: dir, InProcessOnly: true})
	if err != nil {
		return nil, err
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()

	faults := meetingsim.Faults{LatencyBase: cfg.Latency}
	if cfg.ErrorRate > 0 {
		faults.Errors = []meetingsim.ErrorFault{{Rate: cfg.ErrorRate, Status: 500, Code: "MMC.111070003", Message: "SERVICE_ERROR"}}
	}
	mode := meetingsim.ModeLenient
	if cfg.Strict {
		mode = meetingsim.ModeStrict
	}
	sim, err := meetingsim.New(meetingsim.Config{Mode: mode, Seed: cfg.Seed, Faults: faults})
	if err != nil {
		return nil, err
	}
	meetings := meetingsim.GenerateMeetings(cfg.Conferences, cfg.Participants, password)
	for _, m := range meetings {
		if err := sim.AddMeeting(m); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	httpSrv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		_ = httpSrv.Serve(ln)
	}()
	defer func() {
		_ = httpSrv.Close()
		<-httpDone
	}()
	apiURL := "http://" + ln.Addr().String()
	fmt.Fprintf(cfg.Out, "hangup demo: embedded JetStream, meeting API simulator at %s (%s mode), %d conferences x %d participants\n",
		apiURL, mode, cfg.Conferences, cfg.Participants)

	tokens, err := obtainTokens(ctx, apiURL, meetings)
	if err != nil {
		return nil, err
	}

	wcfg := cfg.Worker
	wcfg.NATS.URL = srv.ClientURL()
	if wcfg.NATS.URL == "" {
		wcfg.NATS.URL = "nats://in-process:4222"
	}
	wcfg.APIBaseURL = apiURL
	wcfg.Provision = true
	if wcfg.WorkerID == "" {
		wcfg.WorkerID = "demo-worker"
	}
	workerConn, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("hangup demo worker"))
	if err != nil {
		return nil, err
	}
	w, err := worker.New(wcfg, worker.Deps{Conn: workerConn, Logger: cfg.Logger})
	if err != nil {
		workerConn.Close()
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	workerStopped := false
	stopWorker := func() error {
		if workerStopped {
			return nil
		}
		workerStopped = true
		stopCtx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		return w.Stop(stopCtx)
	}
	defer func() { _ = stopWorker() }()

	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("hangup demo load"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	gen := newGenerator(cfg, meetings, tokens)
	if err := gen.publish(ctx, js); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "published %d requests and %d invalid messages in %s\n", len(gen.sent), cfg.Invalid, time.Since(start).Round(time.Millisecond))

	if err := waitForOutcomes(ctx, js, cfg.Out, len(gen.sent), cfg.Invalid); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	if err := stopWorker(); err != nil {
		return nil, fmt.Errorf("stop worker: %w", err)
	}

	snap, err := audit.Read(ctx, js, schemas.DefaultResultStream, schemas.DefaultDeadLetterStream)
	if err != nil {
		return nil, err
	}
	removed := map[string]map[string]bool{}
	for _, d := range sim.Disconnects() {
		if removed[d.ConferenceID] == nil {
			removed[d.ConferenceID] = map[string]bool{}
		}
		removed[d.ConferenceID][d.ParticipantID] = true
	}
	secrets := append([]string{password}, values(tokens)...)
	rep := audit.Check(snap, audit.Expect{Valid: gen.sent, Invalid: cfg.Invalid, Disconnected: removed, Secrets: secrets})

	sum := &Summary{Report: rep, Elapsed: elapsed, Published: len(gen.sent)}
	okCalls, okIDs := 0, 0
	for _, c := range sim.Calls() {
		sum.APICalls++
		if c.Status == http.StatusOK {
			okCalls++
			okIDs += len(c.ParticipantIDs)
		}
	}
	if okCalls > 0 {
		sum.IDsPerOK = float64(okIDs) / float64(okCalls)
	}
	sum.Exact = rep.OK() && rep.NotRequested == 0 && rep.Disconnected == rep.Requested
	printSummary(cfg.Out, cfg, sum)
	return sum, nil
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// obtainTokens gets a control token for every meeting from the token API,
// as a producer holding the host passwords would.
func obtainTokens(ctx context.Context, apiURL string, meetings []meetingsim.Meeting) (map[string]string, error) {
	client, err := meetingclient.New(meetingclient.Config{BaseURL: apiURL})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	tokens := make(map[string]string, len(meetings))
	for _, m := range meetings {
		tok, err := client.CreateConfToken(ctx, m.ID, m.HostPassword)
		if err != nil {
			return nil, fmt.Errorf("token for %s: %w", m.ID, err)
		}
		tokens[m.ID] = tok.Token
	}
	return tokens, nil
}

// generator makes the load: requests over the conferences, each naming a
// few random participants, so that requests overlap within a conference.
type generator struct {
	cfg      Config
	meetings []meetingsim.Meeting
	tokens   map[string]string
	rng      *rand.Rand
	sent     map[string]audit.Sent
}

func newGenerator(cfg Config, meetings []meetingsim.Meeting, tokens map[string]string) *generator {
	return &generator{cfg: cfg, meetings: meetings, tokens: tokens,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), sent: map[string]audit.Sent{}}
}

func (g *generator) publish(ctx context.Context, js jetstream.JetStream) error {
	invalidEvery := 0
	if g.cfg.Invalid > 0 {
		invalidEvery = max(1, g.cfg.Requests/g.cfg.Invalid)
	}
	invalid := 0
	for i := 0; i < g.cfg.Requests; i++ {
		m := g.meetings[g.rng.IntN(len(g.meetings))]
		n := 1 + g.rng.IntN(g.cfg.MaxIDsPerRequest)
		ids := make([]string, 0, n)
		seen := map[string]bool{}
		for len(ids) < n {
			p := m.Participants[g.rng.IntN(len(m.Participants))]
			if !seen[p] {
				seen[p] = true
				ids = append(ids, p)
			}
		}
		req := schemas.Request{
			RequestID: fmt.Sprintf("demo-%06d", i), ConferenceID: m.ID, ParticipantIDs: ids,
			Reason: "demo: policy violation", RequestedBy: "hangup-demo",
		}
		data, err := json.Marshal(req)
		if err != nil {
			return err
		}
		msg := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + "." + m.ID)
		msg.Data = data
		msg.Header.Set(schemas.MsgIDHeader, req.RequestID)
		msg.Header.Set(schemas.TokenHeader, g.tokens[m.ID])
		if _, err := js.PublishMsgAsync(msg); err != nil {
			return fmt.Errorf("publish %s: %w", req.RequestID, err)
		}
		g.sent[req.RequestID] = audit.Sent{ConferenceID: m.ID, ParticipantIDs: ids}
		if invalidEvery > 0 && i%invalidEvery == 0 && invalid < g.cfg.Invalid {
			bad := malformed[invalid%len(malformed)]
			if _, err := js.PublishAsync(schemas.DefaultRequestSubjectPrefix+"."+m.ID, []byte(bad)); err != nil {
				return fmt.Errorf("publish invalid message: %w", err)
			}
			invalid++
		}
	}
	for ; invalid < g.cfg.Invalid; invalid++ {
		if _, err := js.PublishAsync(schemas.DefaultRequestSubjectPrefix+".conf-0001", []byte(malformed[invalid%len(malformed)])); err != nil {
			return fmt.Errorf("publish invalid message: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// malformed are the invalid messages the demo mixes in.
var malformed = []string{
	`not json at all`,
	`{"requestID":"x"}`,
	`{"requestID":"bad id with spaces","conferenceID":"conf-0001","participantIDs":["p-0001"]}`,
	`{"requestID":"wrong-conf","conferenceID":"someone-else","participantIDs":["p-0001"]}`,
	`{"requestID":"no-ids","conferenceID":"conf-0001","participantIDs":[]}`,
	`{"requestID":"dry","conferenceID":"conf-0001","participantIDs":["p-0001"],"dryRun":true}`,
}

// waitForOutcomes shows progress until every request has a result and
// every invalid message a dead letter.
func waitForOutcomes(ctx context.Context, js jetstream.JetStream, out io.Writer, results, invalid int) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	for {
		r, err := streamMsgs(ctx, js, schemas.DefaultResultStream)
		if err != nil {
			return err
		}
		d, err := streamMsgs(ctx, js, schemas.DefaultDeadLetterStream)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("  outcomes: %d/%d results, %d dead letters", r, results, d)
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		if r >= uint64(results) && d >= uint64(invalid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for outcomes: %w (%d of %d results)", ctx.Err(), r, results)
		case <-tick.C:
		}
	}
}

func streamMsgs(ctx context.Context, js jetstream.JetStream, name string) (uint64, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

func printSummary(out io.Writer, cfg Config, s *Summary) {
	rep := s.Report
	var b strings.Builder
	fmt.Fprintf(&b, "\nsummary\n")
	fmt.Fprintf(&b, "  requests published      %d valid, %d invalid\n", s.Published, cfg.Invalid)
	fmt.Fprintf(&b, "  results                 %d (%s)\n", rep.Results, joinCounts(rep.ByStatus))
	fmt.Fprintf(&b, "  dead letters            %d (%s)\n", rep.DeadLetters, joinCounts(rep.ByReason))
	fmt.Fprintf(&b, "  API calls               %d (%.1f participant IDs per successful call)\n", s.APICalls, s.IDsPerOK)
	fmt.Fprintf(&b, "  outcome latency         p50 %s, p99 %s (stream arrival to outcome)\n",
		rep.LatencyMedian.Round(time.Millisecond), rep.LatencyP99.Round(time.Millisecond))
	fmt.Fprintf(&b, "  elapsed                 %s (%.0f requests/s)\n", s.Elapsed.Round(time.Millisecond), float64(s.Published)/s.Elapsed.Seconds())
	fmt.Fprintf(&b, "  participants            %d requested, %d disconnected, %d disconnected without a request\n",
		rep.Requested, rep.Disconnected, rep.NotRequested)
	verdict := "yes"
	if !s.Exact {
		verdict = "NO"
	}
	fmt.Fprintf(&b, "  exactly the requested participants disconnected: %s\n", verdict)
	if len(rep.Violations) > 0 {
		fmt.Fprintf(&b, "  invariant violations:\n")
		for _, v := range rep.Violations {
			fmt.Fprintf(&b, "    - %s\n", v)
		}
	} else {
		fmt.Fprintf(&b, "  invariant (one result per request, one dead letter per failure or invalid message): holds\n")
	}
	_, _ = io.WriteString(out, b.String())
}

func joinCounts[K ~string](m map[K]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[K(k)])
	}
	return strings.Join(parts, ", ")
}

package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// TestMain checks that no goroutine outlives the tests, with nothing
// ignored: every test and example closes what it opened (the API client's
// idle connections, the httptest servers, the NATS connections and the
// embedded servers), so a goroutine left parked on a socket is a leak.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// concurrency wraps the simulator and records the most hang-up calls in
// flight at once, overall and per conference.
type concurrency struct {
	next    http.Handler
	mu      sync.Mutex
	now     int
	max     int
	perConf map[string]int
	maxConf int
}

func (c *concurrency) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conf := r.URL.Query().Get("conferenceID")
	c.mu.Lock()
	c.now++
	c.perConf[conf]++
	c.max = max(c.max, c.now)
	c.maxConf = max(c.maxConf, c.perConf[conf])
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.now--
		c.perConf[conf]--
		c.mu.Unlock()
	}()
	c.next.ServeHTTP(w, r)
}

func (c *concurrency) peaks() (overall, perConference int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max, c.maxConf
}

type env struct {
	t      *testing.T
	js     jetstream.JetStream
	sim    *meetingsim.Simulator
	conc   *concurrency
	client *meetingclient.Client
	pub    *outcome.Publisher
	stream jetstream.Stream
	// cons are the request stream's consumers: the shared durable and,
	// when the topology partitions the stream, one per partition.
	cons   []jetstream.Consumer
	tokens map[string]string
}

func newEnv(t *testing.T, simCfg meetingsim.Config, ackWait time.Duration) *env {
	t.Helper()
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	topo := topology.Config{AckWait: ackWait}
	topo.SetDefaults()
	require.NoError(t, topology.Ensure(context.Background(), js, topo))
	stream, err := js.Stream(context.Background(), topo.RequestStream)
	require.NoError(t, err)
	names := stream.ConsumerNames(context.Background())
	var cons []jetstream.Consumer
	for name := range names.Name() {
		c, err := stream.Consumer(context.Background(), name)
		require.NoError(t, err)
		cons = append(cons, c)
	}
	require.NoError(t, names.Err())
	sim, err := meetingsim.New(simCfg)
	require.NoError(t, err)
	conc := &concurrency{next: sim.Handler(), perConf: map[string]int{}}
	api := httptest.NewServer(conc)
	t.Cleanup(api.Close)
	client, err := meetingclient.New(meetingclient.Config{BaseURL: api.URL, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(client.Close)
	pub, err := outcome.NewPublisher(outcome.Config{}, js)
	require.NoError(t, err)
	return &env{t: t, js: js, sim: sim, conc: conc, client: client, pub: pub, stream: stream, cons: cons, tokens: map[string]string{}}
}

func (e *env) meeting(id string, n int) {
	e.t.Helper()
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("p%d", i)
	}
	require.NoError(e.t, e.sim.AddMeeting(meetingsim.Meeting{ID: id, HostPassword: "pw", Participants: ps}))
	tok, err := e.sim.IssueToken(id)
	require.NoError(e.t, err)
	e.tokens[id] = tok
}

func (e *env) dispatcher(cfg dispatcher.Config) *dispatcher.Dispatcher {
	e.t.Helper()
	if cfg.WorkerID == "" {
		cfg.WorkerID = "w"
	}
	d, err := dispatcher.New(cfg, dispatcher.Deps{API: e.client, Publisher: e.pub, Logger: zaptest.NewLogger(e.t)})
	require.NoError(e.t, err)
	require.NoError(e.t, d.Start(context.Background()))
	e.t.Cleanup(func() { _ = d.Stop(context.Background()) })
	return d
}

// jobs publishes requests and pulls them back as real JetStream messages.
func (e *env) jobs(reqs ...schemas.Request) []dispatcher.Job {
	e.t.Helper()
	for _, r := range reqs {
		data, err := json.Marshal(r)
		require.NoError(e.t, err)
		_, err = e.js.Publish(context.Background(), schemas.DefaultRequestSubjectPrefix+"."+r.ConferenceID, data)
		require.NoError(e.t, err)
	}
	var out []dispatcher.Job
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < len(reqs) {
		require.True(e.t, time.Now().Before(deadline), "%d of %d requests pulled", len(out), len(reqs))
		out = append(out, e.pull()...)
	}
	return out
}

// pull fetches what each consumer of the request stream holds, in the
// priority group of the consumers that have one.
func (e *env) pull() []dispatcher.Job {
	var out []dispatcher.Job
	for _, c := range e.cons {
		info, err := c.Info(context.Background())
		require.NoError(e.t, err)
		if info.NumPending == 0 {
			continue
		}
		opts := []jetstream.FetchOpt{jetstream.FetchMaxWait(5 * time.Second)}
		if groups := info.Config.PriorityGroups; len(groups) > 0 {
			opts = append(opts, jetstream.FetchPriorityGroup(groups[0]))
		}
		batch, err := c.Fetch(int(info.NumPending), opts...)
		require.NoError(e.t, err)
		for msg := range batch.Messages() {
			// A partitioned stream stores the request under another
			// subject; it ends with the conference ID all the same.
			stored := msg.Subject()
			subject := schemas.DefaultRequestSubjectPrefix + "." + stored[strings.LastIndexByte(stored, '.')+1:]
			req, err := schemas.DecodeRequest(subject, msg.Data(), schemas.DecodeOptions{})
			require.NoError(e.t, err)
			md, err := msg.Metadata()
			require.NoError(e.t, err)
			out = append(out, dispatcher.Job{Request: req, Token: e.tokens[req.ConferenceID], Msg: msg,
				Source: outcome.Source{Subject: subject, StreamSequence: md.Sequence.Stream, Deliveries: md.NumDelivered, Payload: msg.Data(), ReceivedAt: md.Timestamp}})
		}
	}
	return out
}

// requestsLeft is how many requests are not yet acked: the request
// stream is a work queue, which drops a message once it is acked.
func (e *env) requestsLeft() uint64 {
	info, err := e.stream.Info(context.Background())
	require.NoError(e.t, err)
	return info.State.Msgs
}

// deliveries sums the deliveries and redeliveries of the request stream's
// consumers.
func (e *env) deliveries() (delivered, redelivered uint64) {
	for _, c := range e.cons {
		info, err := c.Info(context.Background())
		require.NoError(e.t, err)
		delivered += info.Delivered.Consumer
		redelivered += uint64(info.NumRedelivered)
	}
	return delivered, redelivered
}

func req(id, conf string, ids ...string) schemas.Request {
	return schemas.Request{RequestID: id, ConferenceID: conf, ParticipantIDs: ids}
}

func TestOneCallPerConferenceAndAConcurrencyCap(t *testing.T) {
	e := newEnv(t, meetingsim.Config{Faults: meetingsim.Faults{LatencyBase: 30 * time.Millisecond}}, 30*time.Second)
	var reqs []schemas.Request
	for c := 0; c < 8; c++ {
		conf := fmt.Sprintf("c%d", c)
		e.meeting(conf, 20)
		for i := 0; i < 10; i++ {
			reqs = append(reqs, req(fmt.Sprintf("%s-r%d", conf, i), conf, fmt.Sprintf("p%d", i), fmt.Sprintf("p%d", i+10)))
		}
	}
	d := e.dispatcher(dispatcher.Config{MaxBatch: 4, Linger: time.Millisecond, APIConcurrency: 3, ConferenceCalls: 1})
	for _, j := range e.jobs(reqs...) {
		require.NoError(t, d.Submit(context.Background(), j))
	}
	require.Eventually(t, func() bool { return e.requestsLeft() == 0 }, 30*time.Second, 10*time.Millisecond)
	overall, perConf := e.conc.peaks()
	require.Equal(t, 1, perConf, "at most one call per conference in flight")
	require.LessOrEqual(t, overall, 3, "at most APIConcurrency calls in flight")
	require.Greater(t, overall, 1, "conferences are served in parallel")
	require.Len(t, e.sim.Disconnects(), 160)
}

// A conference with a backlog of full batches gets up to ConferenceCalls
// calls at once; a partial batch waits for the call in flight.
func TestFullBatchesOfOneConferenceGoInParallel(t *testing.T) {
	e := newEnv(t, meetingsim.Config{Faults: meetingsim.Faults{LatencyBase: 30 * time.Millisecond}}, 30*time.Second)
	e.meeting("c", 82)
	var reqs []schemas.Request
	for i := 0; i < 41; i++ {
		reqs = append(reqs, req(fmt.Sprintf("r%d", i), "c", fmt.Sprintf("p%d", 2*i), fmt.Sprintf("p%d", 2*i+1)))
	}
	d := e.dispatcher(dispatcher.Config{MaxBatch: 10, Linger: time.Millisecond, APIConcurrency: 8, ConferenceCalls: 3})
	for _, j := range e.jobs(reqs...) {
		require.NoError(t, d.Submit(context.Background(), j))
	}
	require.Eventually(t, func() bool { return e.requestsLeft() == 0 }, 30*time.Second, 10*time.Millisecond)
	_, perConf := e.conc.peaks()
	require.Equal(t, 3, perConf, "full batches of one conference go in parallel, up to ConferenceCalls")
	require.Len(t, e.sim.Disconnects(), 82)
	require.LessOrEqual(t, len(e.sim.Calls()), 10, "82 IDs in batches of 10 take 9 calls, with one more for a batch split by arrival")
}

func TestSubmitBlocksAtMaxInFlight(t *testing.T) {
	e := newEnv(t, meetingsim.Config{Faults: meetingsim.Faults{LatencyBase: 300 * time.Millisecond}}, 30*time.Second)
	e.meeting("c", 4)
	d := e.dispatcher(dispatcher.Config{MaxInFlight: 1, Linger: time.Millisecond})
	jobs := e.jobs(req("a", "c", "p0"), req("b", "c", "p1"))
	require.NoError(t, d.Submit(context.Background(), jobs[0]))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, d.Submit(ctx, jobs[1]), context.DeadlineExceeded, "the second request waits for the first")
	require.NoError(t, d.Submit(context.Background(), jobs[1]), "and is taken once the first is acked")
	require.Eventually(t, func() bool { return e.requestsLeft() == 0 }, 10*time.Second, 10*time.Millisecond)
}

func TestKeepAliveOutlastsAckWaitDuringRetries(t *testing.T) {
	e := newEnv(t, meetingsim.Config{Faults: meetingsim.Faults{
		Errors: []meetingsim.ErrorFault{{Rate: 1, Status: 500}},
	}}, 2*time.Second)
	e.meeting("c", 2)
	d := e.dispatcher(dispatcher.Config{KeepAlive: 300 * time.Millisecond, RetryInitial: 100 * time.Millisecond,
		RetryMaxInterval: 200 * time.Millisecond, Linger: time.Millisecond, BreakerThreshold: -1})
	jobs := e.jobs(req("a", "c", "p0"))
	require.NoError(t, d.Submit(context.Background(), jobs[0]))
	// Fail for three AckWaits; without keep-alives the server would
	// redeliver the message.
	require.Eventually(t, func() bool {
		calls := e.sim.Calls()
		return len(calls) > 1 && calls[len(calls)-1].Time.Sub(calls[0].Time) > 6*time.Second
	}, 15*time.Second, 50*time.Millisecond)
	_, redelivered := e.deliveries()
	require.Zero(t, redelivered, "no redelivery while the request is held")
	e.sim.SetFaults(meetingsim.Faults{})
	require.Eventually(t, func() bool { return e.requestsLeft() == 0 }, 10*time.Second, 10*time.Millisecond)
	delivered, _ := e.deliveries()
	require.EqualValues(t, 1, delivered, "delivered once")
}

func TestStopIsIdempotentAndSafeBeforeStart(t *testing.T) {
	e := newEnv(t, meetingsim.Config{}, 30*time.Second)
	d, err := dispatcher.New(dispatcher.Config{WorkerID: "w"}, dispatcher.Deps{API: e.client, Publisher: e.pub})
	require.NoError(t, err)
	require.NoError(t, d.Stop(context.Background()))
	require.NoError(t, d.Stop(context.Background()))
	require.Error(t, d.Start(context.Background()))
	require.ErrorIs(t, d.Submit(context.Background(), dispatcher.Job{}), dispatcher.ErrStopped)

	d2 := e.dispatcher(dispatcher.Config{})
	require.NoError(t, d2.Stop(context.Background()))
	require.NoError(t, d2.Stop(context.Background()))
	require.ErrorIs(t, d2.Submit(context.Background(), dispatcher.Job{}), dispatcher.ErrStopped)
}

func TestConfigErrorsNameTheField(t *testing.T) {
	e := newEnv(t, meetingsim.Config{}, 30*time.Second)
	cases := map[string]dispatcher.Config{
		"MaxBatch":             {WorkerID: "w", MaxBatch: -1},
		"APIConcurrency":       {WorkerID: "w", APIConcurrency: -2},
		"RetryMaxInterval":     {WorkerID: "w", RetryInitial: time.Minute, RetryMaxInterval: time.Second},
		"WorkerID":             {},
		"APIRate":              {WorkerID: "w", APIRate: -1},
		"WorkerAPIConcurrency": {WorkerID: "w", WorkerAPIConcurrency: -1},
		"WorkerAPIRate":        {WorkerID: "w", WorkerAPIRate: -0.5},
	}
	for field, cfg := range cases {
		_, err := dispatcher.New(cfg, dispatcher.Deps{API: e.client, Publisher: e.pub})
		require.ErrorContains(t, err, field)
	}
	_, err := dispatcher.New(dispatcher.Config{WorkerID: "w"}, dispatcher.Deps{Publisher: e.pub})
	require.ErrorContains(t, err, "API")
}

package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/schemas"
)

// clusterEnv is a 3-node JetStream cluster with streams of 3 replicas,
// one simulator, and workers that each reach NATS through proxies of
// their own (to be cut off) and the simulator through a front that names
// them in its records.
type clusterEnv struct {
	t       *testing.T
	cl      *natstest.Cluster
	js      jetstream.JetStream
	sim     *meetingsim.Simulator
	log     *zap.Logger
	confs   []string
	tokens  map[string]string
	next    map[string]int // next participant per conference
	sent    map[string]audit.Sent
	budget  Config      // the cluster-wide vendor budget
	mu      sync.Mutex  // guards events
	events  []time.Time // membership changes and faults: hand-over windows start here
	workers map[string]*clusterWorker
}

type clusterWorker struct {
	w       *Worker
	proxies *natstest.Proxies
	api     *httptest.Server
}

// The test's member and pinned TTLs, shorter than the defaults to keep
// the test short; handOver is how long after a membership change two
// workers may both call for one conference: a beat to see the change, the
// pinned TTL, and the calls in flight.
const (
	testMemberTTL = 3 * time.Second
	testPinnedTTL = 2 * time.Second
	handOver      = testMemberTTL/3 + testPinnedTTL + 2*time.Second
)

func newClusterEnv(t *testing.T, conferences int) *clusterEnv {
	t.Helper()
	cl := natstest.RunCluster(t, 3)
	nc, err := nats.Connect(cl.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	sim, err := meetingsim.New(meetingsim.Config{})
	require.NoError(t, err)
	sim.SetFaults(meetingsim.Faults{LatencyBase: 20 * time.Millisecond})
	e := &clusterEnv{
		t: t, cl: cl, js: js, sim: sim, log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		tokens: map[string]string{}, next: map[string]int{}, sent: map[string]audit.Sent{},
		workers: map[string]*clusterWorker{},
		budget:  Config{APIConcurrency: 6, APIRate: 150},
	}
	for i := range conferences {
		conf := fmt.Sprintf("conf%d", i)
		require.NoError(t, sim.AddMeeting(meetingsim.Meeting{ID: conf, HostPassword: "pw", Participants: participants("p", 3000)}))
		tok, err := sim.IssueToken(conf)
		require.NoError(t, err)
		e.confs, e.tokens[conf] = append(e.confs, conf), tok
	}
	return e
}

func (e *clusterEnv) event() {
	e.mu.Lock()
	e.events = append(e.events, time.Now())
	e.mu.Unlock()
}

// start starts a worker named name.
func (e *clusterEnv) start(name string) {
	e.t.Helper()
	proxies := natstest.NewProxies(e.t, e.cl.URLs())
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set(meetingsim.HeaderCaller, name)
		e.sim.Handler().ServeHTTP(w, r)
	}))
	e.t.Cleanup(front.Close)
	cfg := Config{
		NATS: natsconn.Config{URL: proxies.URLs()}, APIBaseURL: front.URL, APITimeout: 2 * time.Second,
		Linger: 20 * time.Millisecond, RetryInitial: 10 * time.Millisecond, RetryMaxInterval: 100 * time.Millisecond,
		RetryMaxElapsed: 20 * time.Second, ShutdownTimeout: 10 * time.Second, Provision: true, WorkerID: name,
		APIConcurrency: e.budget.APIConcurrency, APIRate: e.budget.APIRate, AckWait: 10 * time.Second,
	}
	cfg.Topology.Replicas = 3
	cfg.Topology.PinnedTTL = testPinnedTTL
	cfg.MemberTTL = testMemberTTL
	w, err := New(cfg, Deps{Logger: e.log.With(zap.String("worker", name))})
	require.NoError(e.t, err)
	e.event()
	require.NoError(e.t, w.Start(context.Background()))
	e.workers[name] = &clusterWorker{w: w, proxies: proxies, api: front}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
}

// stop stops the worker named name gracefully.
func (e *clusterEnv) stop(name string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	e.event()
	require.NoError(e.t, e.workers[name].w.Stop(ctx))
	delete(e.workers, name)
	e.event()
}

// settle waits until every running worker sees them all, then out the
// hand-over that follows, so that what comes next is steady state.
func (e *clusterEnv) settle() {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		for _, cw := range e.workers {
			if cw.w.Members() != len(e.workers) {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "workers agree on the membership")
	e.event()
	time.Sleep(handOver)
}

// publish publishes n requests in bursts of 5 per conference, each with
// 1 or 2 participants not requested before, retrying through leader
// elections; the Nats-Msg-Id makes a retry harmless.
func (e *clusterEnv) publish(wave string, n int) {
	e.t.Helper()
	for i := range n {
		conf := e.confs[(i/5)%len(e.confs)]
		k := 1 + i%2
		ids := make([]string, k)
		for j := range ids {
			e.next[conf]++
			ids[j] = fmt.Sprintf("p-%d", e.next[conf])
		}
		req := schemas.Request{RequestID: fmt.Sprintf("%s-%d", wave, i), ConferenceID: conf, ParticipantIDs: ids}
		data, err := json.Marshal(req)
		require.NoError(e.t, err)
		msg := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + "." + conf)
		msg.Data = data
		msg.Header.Set(schemas.MsgIDHeader, req.RequestID)
		msg.Header.Set(schemas.TokenHeader, e.tokens[conf])
		var last error
		for range 100 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, last = e.js.PublishMsg(ctx, msg)
			cancel()
			if last == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(e.t, last, "publish %s", req.RequestID)
		e.sent[req.RequestID] = audit.Sent{ConferenceID: conf, ParticipantIDs: ids}
	}
}

// drained waits until the request stream is empty.
func (e *clusterEnv) drained() {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := e.js.Stream(ctx, schemas.DefaultRequestStream)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, 90*time.Second, 50*time.Millisecond, "request stream not drained")
}

// inHandOver reports whether t falls in a hand-over window.
func (e *clusterEnv) inHandOver(t time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.events {
		if !t.Before(ev.Add(-time.Second)) && t.Before(ev.Add(handOver)) {
			return true
		}
	}
	return false
}

// checkCalls checks the simulator's record: outside hand-over windows, no
// conference had calls from two workers at once, no more than the
// budget's concurrency was in flight, and no second saw more calls than
// the budget's rate allows.
func (e *clusterEnv) checkCalls() {
	e.t.Helper()
	calls := e.sim.Calls()
	byConf := map[string][]meetingsim.Call{}
	for _, c := range calls {
		byConf[c.ConferenceID] = append(byConf[c.ConferenceID], c)
	}
	var overlaps []string
	for conf, cs := range byConf {
		for i, a := range cs {
			for _, b := range cs[i+1:] {
				if a.Caller != b.Caller && a.Time.Before(b.Answered) && b.Time.Before(a.Answered) &&
					!e.inHandOver(a.Time) && !e.inHandOver(b.Time) {
					overlaps = append(overlaps, fmt.Sprintf("%s: %s at %s and %s at %s", conf, a.Caller, a.Time.Format(time.StampMilli), b.Caller, b.Time.Format(time.StampMilli)))
				}
			}
		}
	}
	require.Empty(e.t, overlaps, "calls from two workers at once for one conference, outside hand-overs")

	perSecond := map[int64]int{}
	peak := 0
	for i, a := range calls {
		if e.inHandOver(a.Time) {
			continue
		}
		perSecond[a.Time.Unix()]++
		inFlight := 1
		for j, b := range calls {
			if j != i && !b.Time.After(a.Time) && b.Answered.After(a.Time) {
				inFlight++
			}
		}
		peak = max(peak, inFlight)
	}
	require.LessOrEqual(e.t, peak, e.budget.APIConcurrency, "calls in flight at once over all workers")
	busiest := 0
	for _, n := range perSecond {
		busiest = max(busiest, n)
	}
	// A second may hold one second's calls and each worker's burst.
	require.LessOrEqual(e.t, float64(busiest), e.budget.APIRate*1.1+3, "calls in one second over all workers")
}

// audit checks the invariant from the outcome streams and the simulator.
func (e *clusterEnv) audit() *audit.Report {
	e.t.Helper()
	var s *audit.Snapshot
	var err error
	for range 20 { // the streams' leaders may still be settling after the faults
		if s, err = audit.Read(context.Background(), e.js, schemas.DefaultResultStream, schemas.DefaultDeadLetterStream); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.NoError(e.t, err)
	removed := map[string]map[string]bool{}
	for _, d := range e.sim.Disconnects() {
		if removed[d.ConferenceID] == nil {
			removed[d.ConferenceID] = map[string]bool{}
		}
		removed[d.ConferenceID][d.ParticipantID] = true
	}
	rep := audit.Check(s, audit.Expect{Valid: e.sent, Disconnected: removed})
	require.Empty(e.t, rep.Violations)
	require.Zero(e.t, rep.NotRequested, "nobody removed who was not requested")
	require.Equal(e.t, len(e.sent), rep.ByStatus[schemas.StatusSucceeded])
	return rep
}

// Three workers on a 3-node cluster, through a leader kill, a worker cut
// off longer than the hand-over, a rolling restart, and a scale from 3 to
// 1 to 3: every request has one result, nobody is removed who was not
// requested, and outside hand-overs no conference is called by two
// workers at once and the cluster-wide budget holds.
func TestScaleOutOnAClusterKeepsOneOwnerPerConference(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster and a minute of faults")
	}
	e := newClusterEnv(t, 24)
	for _, name := range []string{"w1", "w2", "w3"} {
		e.start(name)
	}
	e.settle()
	e.publish("steady", 300)
	e.drained()

	// The request stream's leader dies mid-load.
	leader := e.cl.StreamLeader(t, schemas.DefaultRequestStream)
	done := make(chan struct{})
	go func() { defer close(done); e.publish("leader", 300) }()
	time.Sleep(200 * time.Millisecond)
	e.event()
	e.cl.Stop(leader)
	e.cl.WaitForStreamLeader(t, schemas.DefaultRequestStream, 30*time.Second)
	<-done
	e.drained()
	e.cl.Restart(leader)
	e.settle()

	// w3 is cut off for longer than the hand-over, then let back.
	e.event()
	e.workers["w3"].proxies.Cut()
	e.publish("cut", 300)
	time.Sleep(2*testMemberTTL + testPinnedTTL)
	e.workers["w3"].proxies.Restore()
	e.event()
	e.drained()
	e.settle()
	e.publish("after-cut", 200)
	e.drained()

	// Rolling restart.
	for i, name := range []string{"w1", "w2", "w3"} {
		e.stop(name)
		e.start(fmt.Sprintf("w%d-b", i+1))
		e.publish(fmt.Sprintf("roll%d", i), 100)
	}
	e.drained()

	// Scale 3 → 1 → 3.
	e.stop("w1-b")
	e.stop("w2-b")
	e.settle()
	e.publish("one", 200)
	e.drained()
	e.start("w4")
	e.start("w5")
	e.settle()
	e.publish("three", 300)
	e.drained()

	rep := e.audit()
	e.checkCalls()
	callers := map[string]int{}
	outside := 0
	for _, c := range e.sim.Calls() {
		callers[c.Caller]++
		if !e.inHandOver(c.Time) {
			outside++
		}
	}
	t.Logf("%d requests, %d calls (%d outside hand-overs), calls by worker %v", rep.Results, len(e.sim.Calls()), outside, callers)
	require.Positive(t, callers["w4"], "a worker that joins takes partitions")
	require.Positive(t, callers["w5"], "a worker that joins takes partitions")
}

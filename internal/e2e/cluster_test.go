package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/schemas"
)

// The cluster test's setup: three NATS nodes, three workers, and
// clusterMeetings meetings with clusterParticipants online in each.
const (
	clusterName         = "hangup-e2e"
	clusterMeetings     = 24
	clusterParticipants = 200
	clusterSimLatency   = 20 * time.Millisecond
	// clusterPartitions is the worker's default --partitions.
	clusterPartitions = 16
	// The member and pinned TTLs are shorter than the defaults to keep
	// the test short, as in internal/worker's cluster test.
	clusterMemberTTL = 3 * time.Second
	clusterPinnedTTL = 2 * time.Second
	// clusterHandOver is how long after the workers agree on the
	// membership two of them may still both work one conference: a beat,
	// the pinned TTL, and the calls in flight.
	clusterHandOver = clusterMemberTTL/3 + clusterPinnedTTL + 2*time.Second
	// membersBucket is the worker's default --members-bucket.
	membersBucket = "hangup_workers"
)

var (
	clusterNodes   = []string{"n1", "n2", "n3"}
	clusterWorkers = []string{"w1", "w2", "w3"}
)

// TestWorkersOnAThreeNodeNATSClusterInContainers runs three workers on a
// three-node JetStream cluster (R3 streams), all in containers, and takes
// it through the faults an operator sees: the request stream's leader node
// stops mid-load and comes back, a worker stops gracefully and comes back.
// From outside it checks the invariant (one result per request, nobody
// removed who was not requested, no dead letters) and, for every phase in
// steady state, that each conference's results came from a single worker
// and that the simulator never had calls for one conference from two
// workers at once.
func TestWorkersOnAThreeNodeNATSClusterInContainers(t *testing.T) {
	p := requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()

	natsImg := buildImage(ctx, t, p, natsImage)
	simImg := buildImage(ctx, t, p, simImage)
	workerImg := buildImage(ctx, t, p, workerImage)
	t.Logf("images built in %s", time.Since(began).Round(time.Second))

	nw, err := network.New(ctx)
	testcontainers.CleanupNetwork(t, nw)
	require.NoError(t, err)

	e := &clusterEnv{
		t: t, ctx: ctx,
		nodes: map[string]*testcontainers.DockerContainer{}, workers: map[string]*testcontainers.DockerContainer{},
		running: map[string]bool{}, next: map[string]int{}, sent: map[string]audit.Sent{},
	}
	up := time.Now()
	for _, name := range clusterNodes {
		e.nodes[name] = startNATSNode(ctx, t, nw, natsImg, name)
	}
	e.js = e.connectCluster()
	e.waitForMetaLeader()
	t.Logf("cluster of %d nodes up in %s", len(clusterNodes), time.Since(up).Round(100*time.Millisecond))

	simC := run(ctx, t, "meetingsim", simImg,
		onNetwork(nw, simAlias),
		exposeOnLoopback("8090/tcp"),
		testcontainers.WithCmd("--listen", "0.0.0.0:8090",
			"--meetings", strconv.Itoa(clusterMeetings), "--participants", strconv.Itoa(clusterParticipants),
			"--password", hostPassword, "--latency", clusterSimLatency.String(), "--access-log=false"),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/_sim/state").
			WithPort("8090/tcp").WithStartupTimeout(30*time.Second)),
	)
	e.simURL = httpURL(ctx, t, simC, "8090/tcp")
	e.tokens = controlTokens(ctx, t, e.simURL, clusterMeetings)
	for m := 1; m <= clusterMeetings; m++ {
		e.confs = append(e.confs, fmt.Sprintf("conf-%04d", m))
	}

	// One after the other: the first provisions the R3 streams.
	for _, id := range clusterWorkers {
		e.workers[id] = startWorker(ctx, t, nw, workerImg, id, testcontainers.WithCmd(clusterWorkerArgs(id)...))
		e.running[id] = true
	}
	e.settle()
	e.steadyPhase("steady", 300)

	// The request stream's leader node stops mid-load, then comes back.
	// The wave is paced (at least 3s) so that the node is gone while it is
	// still being published.
	leader := e.streamLeader("")
	from := time.Now()
	var published atomic.Int64
	done := make(chan error, 1)
	var leaderSent map[string]audit.Sent
	go func() {
		var err error
		leaderSent, err = e.publish("leader", 300, 10*time.Millisecond, &published)
		done <- err
	}()
	require.Eventually(t, func() bool { return published.Load() >= 50 }, 60*time.Second, 10*time.Millisecond,
		"the second wave was not being published")
	atStop := published.Load()
	timeout := 10 * time.Second
	require.NoError(t, e.nodes[leader].Stop(ctx, &timeout), "docker stop %s", leader)
	stopped := published.Load()
	require.Less(t, stopped, int64(300), "the second wave was published before %s stopped: the test no longer stops it mid-load", leader)
	newLeader := e.streamLeader(leader)
	t.Logf("request stream leader %s stopped after %d (stop began at %d) of 300 requests of the second wave; new leader %s",
		leader, stopped, atStop, newLeader)
	require.NoError(t, <-done, "publish the second wave")
	t.Logf("second wave published in %s", time.Since(from).Round(100*time.Millisecond))
	e.drained()
	e.record("leader", leaderSent, from, false)
	require.NoError(t, e.nodes[leader].Start(ctx), "docker start %s", leader)
	e.waitForNodeHealth(leader)
	e.settle()
	e.steadyPhase("after-leader", 150)

	// w3 stops gracefully; the others take its partitions.
	timeout = stopTimeout
	require.NoError(t, e.workers["w3"].Stop(ctx, &timeout), "docker stop w3")
	state, err := e.workers["w3"].State(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, state.ExitCode, "w3 did not stop gracefully (137 is a SIGKILL after %s)", stopTimeout)
	e.running["w3"] = false
	e.settle()
	e.steadyPhase("two", 200)

	// w3 comes back and takes partitions again.
	require.NoError(t, e.workers["w3"].Start(ctx), "docker start w3")
	e.running["w3"] = true
	waitReady(ctx, t, e.workers["w3"], "w3")
	e.settle()
	e.steadyPhase("three-again", 200)

	e.check()
	t.Logf("took %s", time.Since(began).Round(time.Second))
}

// clusterEnv is the cluster test's state.
type clusterEnv struct {
	t       *testing.T
	ctx     context.Context
	nodes   map[string]*testcontainers.DockerContainer // by server name
	workers map[string]*testcontainers.DockerContainer // by worker ID
	running map[string]bool                            // worker IDs not stopped
	js      jetstream.JetStream
	simURL  string
	tokens  map[string]string
	confs   []string
	next    map[string]int // next participant per conference
	sent    map[string]audit.Sent
	phases  []clusterPhase
}

// clusterPhase is one wave of requests: published from `from`, drained
// by `to`. A steady phase ran with the membership settled throughout.
type clusterPhase struct {
	name     string
	requests map[string]audit.Sent
	workers  []string // running during a steady phase
	from, to time.Time
	steady   bool
}

// startNATSNode runs the nats-server image as node name of the cluster:
// deploy/nats/nats-server.conf, with the server name and the cluster
// given by flags (which override the file), routes to every node by its
// network alias.
func startNATSNode(ctx context.Context, t *testing.T, nw *testcontainers.DockerNetwork, image, name string) *testcontainers.DockerContainer {
	t.Helper()
	routes := make([]string, 0, len(clusterNodes))
	for _, n := range clusterNodes {
		routes = append(routes, "nats://"+n+":6222")
	}
	return run(ctx, t, "nats-server "+name, image,
		onNetwork(nw, name),
		exposeOnLoopback("4222/tcp", "8222/tcp"),
		testcontainers.WithCmd("--config", "/etc/nats/nats-server.conf",
			"--name", name, "--cluster_name", clusterName,
			"--cluster", "nats://0.0.0.0:6222", "--routes", strings.Join(routes, ",")),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/healthz?js-enabled-only=true").
			WithPort("8222/tcp").WithStartupTimeout(30*time.Second)),
	)
}

// clusterWorkerArgs are the arguments of worker id.
func clusterWorkerArgs(id string) []string {
	urls := make([]string, 0, len(clusterNodes))
	for _, n := range clusterNodes {
		urls = append(urls, "nats://"+n+":4222")
	}
	return []string{"run",
		"--nats-url", strings.Join(urls, ","),
		"--api-base-url", "http://" + simAlias + ":8090",
		"--log-format", "console",
		"--worker-id", id,
		"--replicas", "3",
		"--partitions", strconv.Itoa(clusterPartitions),
		"--member-ttl", clusterMemberTTL.String(),
		"--pinned-ttl", clusterPinnedTTL.String(),
		"--api-concurrency", "6",
		"--api-timeout", "2s",
		"--ack-wait", "10s",
		"--retry-max-elapsed", "20s",
		"--shutdown-timeout", shutdownTimeout.String(),
	}
}

// connectCluster connects the test process to every node's mapped port.
// The nodes advertise addresses of the Docker network, which the test may
// not reach, so it keeps to its own list.
func (e *clusterEnv) connectCluster() jetstream.JetStream {
	e.t.Helper()
	urls := make([]string, 0, len(clusterNodes))
	for _, n := range clusterNodes {
		u, err := e.nodes[n].PortEndpoint(e.ctx, "4222/tcp", "nats")
		require.NoError(e.t, err)
		urls = append(urls, u)
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("hangup e2e cluster test"),
		nats.IgnoreDiscoveredServers(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(e.t, err, "connect to %v", urls)
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(e.t, err)
	return js
}

// waitForMetaLeader waits until JetStream answers for the account (the
// cluster has a meta leader) and every node is current with it.
func (e *clusterEnv) waitForMetaLeader() {
	e.t.Helper()
	eventually(e.t, 60*time.Second, "JetStream has no meta leader", func() error {
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		defer cancel()
		_, err := e.js.AccountInfo(ctx)
		return err
	})
	for _, n := range clusterNodes {
		e.waitForNodeHealth(n)
	}
}

// waitForNodeHealth waits until node's /healthz answers 200: in a cluster,
// its JetStream is current with the meta leader and its streams.
func (e *clusterEnv) waitForNodeHealth(node string) {
	e.t.Helper()
	eventually(e.t, 90*time.Second, node+" is not healthy", func() error {
		u, err := e.nodes[node].PortEndpoint(e.ctx, "8222/tcp", "http")
		if err != nil {
			return err
		}
		status, body, err := httpGet(e.ctx, u+"/healthz", nil)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("/healthz: %d %s", status, trimmed(body))
		}
		return err
	})
}

// streamLeader waits until the request stream has a leader other than
// not, and returns its server name.
func (e *clusterEnv) streamLeader(not string) string {
	e.t.Helper()
	var leader string
	eventually(e.t, 60*time.Second, fmt.Sprintf("the request stream has no leader (other than %q)", not), func() error {
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		defer cancel()
		s, err := e.js.Stream(ctx, schemas.DefaultRequestStream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster == nil {
			return errors.New("no cluster info")
		}
		leader = info.Cluster.Leader
		if leader == "" || leader == not {
			return fmt.Errorf("leader %q", leader)
		}
		return nil
	})
	require.Contains(e.t, e.nodes, leader)
	return leader
}

// runningWorkers are the IDs of the workers not stopped, sorted.
func (e *clusterEnv) runningWorkers() []string {
	var ids []string
	for id, ok := range e.running {
		if ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// settle waits until the members bucket lists exactly the running workers
// and they share out the partitions between them (each owns its even
// share, and the shares add up, which they do only when all see the same
// members), then out the hand-over that follows, so that what comes next
// is steady state.
func (e *clusterEnv) settle() {
	e.t.Helper()
	ids := e.runningWorkers()
	n := len(ids)
	var owned map[string]int
	eventually(e.t, 60*time.Second, fmt.Sprintf("workers %v do not agree on the membership", ids), func() error {
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		defer cancel()
		kv, err := e.js.KeyValue(ctx, membersBucket)
		if err != nil {
			return err
		}
		keys, err := kv.Keys(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			return err
		}
		members := 0
		for _, k := range keys {
			if strings.HasPrefix(k, "member.") {
				members++
			}
		}
		if members != n {
			return fmt.Errorf("%d members in %s, %d workers running: %v", members, membersBucket, n, keys)
		}
		sum := 0
		owned = map[string]int{}
		for _, id := range ids {
			u, err := e.workers[id].PortEndpoint(ctx, "9090/tcp", "http")
			if err != nil {
				return err
			}
			k, err := partitionsOwned(ctx, u)
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			owned[id] = k
			sum += k
		}
		for _, k := range owned {
			if k < clusterPartitions/n || k > (clusterPartitions+n-1)/n || sum != clusterPartitions {
				return fmt.Errorf("partitions owned %v", owned)
			}
		}
		return nil
	})
	e.t.Logf("settled: partitions owned %v", owned)
	time.Sleep(clusterHandOver)
}

// partitionsOwned is the worker's hangup_partitions_owned gauge.
func partitionsOwned(ctx context.Context, baseURL string) (int, error) {
	status, body, err := httpGet(ctx, baseURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d %s", status, trimmed(body))
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "hangup_partitions_owned "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, errors.New("/metrics has no hangup_partitions_owned")
}

// waitReady waits until a worker's /readyz answers 200; its port is
// mapped anew on each start.
func waitReady(ctx context.Context, t *testing.T, c *testcontainers.DockerContainer, id string) {
	t.Helper()
	eventually(t, 30*time.Second, id+": /readyz never answered 200", func() error {
		u, err := c.PortEndpoint(ctx, "9090/tcp", "http")
		if err != nil {
			return err
		}
		status, body, err := httpGet(ctx, u+"/readyz", nil)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("/readyz: %d %s", status, trimmed(body))
		}
		return err
	})
}

// eventually polls cond every 100ms until it returns nil, and fails t with
// what and cond's last error when that does not happen within timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// steadyPhase publishes n requests and waits until they are drained, with
// the membership settled.
func (e *clusterEnv) steadyPhase(wave string, n int) {
	e.t.Helper()
	from := time.Now()
	sent, err := e.publish(wave, n, 0, nil)
	require.NoError(e.t, err, "publish wave %s", wave)
	e.t.Logf("wave %s published in %s", wave, time.Since(from).Round(100*time.Millisecond))
	e.drained()
	e.record(wave, sent, from, true)
}

// record adds a phase and its requests.
func (e *clusterEnv) record(wave string, sent map[string]audit.Sent, from time.Time, steady bool) {
	e.t.Helper()
	for id, s := range sent {
		e.sent[id] = s
	}
	e.phases = append(e.phases, clusterPhase{
		name: wave, requests: sent, workers: e.runningWorkers(), from: from, to: time.Now(), steady: steady,
	})
	e.t.Logf("phase %s: %d requests in %s", wave, len(sent), time.Since(from).Round(100*time.Millisecond))
}

// publish publishes n requests in bursts of 5 per conference, each with 1
// or 2 participants not requested before, retrying through leader
// elections; the Nats-Msg-Id makes a retry harmless. It waits pace after
// each request and counts what it published in count, if given. It may run
// on another goroutine than the test's, so it returns its error.
func (e *clusterEnv) publish(wave string, n int, pace time.Duration, count *atomic.Int64) (map[string]audit.Sent, error) {
	sent := map[string]audit.Sent{}
	for i := range n {
		conf := e.confs[(i/5)%len(e.confs)]
		ids := make([]string, 1+i%2)
		for j := range ids {
			e.next[conf]++
			ids[j] = fmt.Sprintf("p-%04d", e.next[conf])
		}
		if e.next[conf] > clusterParticipants {
			return sent, fmt.Errorf("%s has only %d participants", conf, clusterParticipants)
		}
		req := schemas.Request{
			RequestID:      fmt.Sprintf("%s-%04d", wave, i),
			ConferenceID:   conf,
			ParticipantIDs: ids,
			Reason:         "end-to-end cluster test",
		}
		data, err := json.Marshal(req)
		if err != nil {
			return sent, err
		}
		msg := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + "." + conf)
		msg.Data = data
		msg.Header.Set(schemas.MsgIDHeader, req.RequestID)
		msg.Header.Set(schemas.TokenHeader, e.tokens[conf])
		var last error
		for range 300 {
			ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
			_, last = e.js.PublishMsg(ctx, msg)
			cancel()
			if last == nil || e.ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if last != nil {
			return sent, fmt.Errorf("publish %s: %w", req.RequestID, last)
		}
		sent[req.RequestID] = audit.Sent{ConferenceID: conf, ParticipantIDs: ids}
		if count != nil {
			count.Add(1)
		}
		time.Sleep(pace)
	}
	return sent, nil
}

// drained waits until the request stream is empty: every request has its
// result stored and is acked.
func (e *clusterEnv) drained() {
	e.t.Helper()
	eventually(e.t, 90*time.Second, "request stream not drained", func() error {
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		defer cancel()
		st, err := e.js.Stream(ctx, schemas.DefaultRequestStream)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d messages left", info.State.Msgs)
		}
		return nil
	})
}

// simCall is an entry of the simulator's GET /_sim/calls: one hang-up call.
type simCall struct {
	Time         time.Time `json:"time"`
	Answered     time.Time `json:"answered"`
	ConferenceID string    `json:"conferenceID"`
	RequestID    string    `json:"requestID"`
	Status       int       `json:"status"`
}

// simCalls is every hang-up call the simulator answered.
func simCalls(ctx context.Context, t *testing.T, simURL string) []simCall {
	t.Helper()
	status, body, err := httpGet(ctx, simURL+"/_sim/calls", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, trimmed(body))
	var list []simCall
	require.NoError(t, json.Unmarshal(body, &list), trimmed(body))
	return list
}

// check verifies the invariant over all phases, and in each steady phase
// one worker per conference: by the results, and by the simulator's calls
// (each attributed to the worker whose result names the call's
// X-Request-Id as the one that decided it).
func (e *clusterEnv) check() {
	t := e.t
	t.Helper()
	var snap *audit.Snapshot
	var err error
	for range 20 { // a stream leader may still be settling
		if snap, err = audit.Read(e.ctx, e.js, schemas.DefaultResultStream, schemas.DefaultDeadLetterStream); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.NoError(t, err)
	disconnects := simDisconnects(e.ctx, t, e.simURL)
	removed := map[string]map[string]bool{}
	for _, d := range disconnects {
		if removed[d.ConferenceID] == nil {
			removed[d.ConferenceID] = map[string]bool{}
		}
		removed[d.ConferenceID][d.ParticipantID] = true
	}
	secrets := make([]string, 0, len(e.tokens))
	for _, tok := range e.tokens {
		secrets = append(secrets, tok)
	}
	rep := audit.Check(snap, audit.Expect{Valid: e.sent, Disconnected: removed, Secrets: secrets})
	require.Empty(t, rep.Violations)
	require.Zero(t, rep.NotRequested, "nobody removed who was not requested")
	require.Equal(t, len(e.sent), rep.ByStatus[schemas.StatusSucceeded], "succeeded results; by status: %v", rep.ByStatus)
	require.Len(t, snap.Results, len(e.sent))
	require.Empty(t, snap.DeadLetters)
	require.Equal(t, requested(e.sent), removed, "the simulator removed someone else, or missed someone")
	require.Equal(t, rep.Requested, len(disconnects), "someone was removed twice")

	byRequest := map[string]schemas.Result{}
	byCall := map[string]string{} // vendor X-Request-Id → worker
	for _, r := range snap.Results {
		byRequest[r.RequestID] = r
		if r.APIRequestID != "" {
			byCall[r.APIRequestID] = r.WorkerID
		}
	}
	calls := simCalls(e.ctx, t, e.simURL)
	for _, ph := range e.phases {
		byWorker := map[string]int{}
		owners := map[string]map[string]bool{}
		for id := range ph.requests {
			r := byRequest[id]
			byWorker[r.WorkerID]++
			if owners[r.ConferenceID] == nil {
				owners[r.ConferenceID] = map[string]bool{}
			}
			owners[r.ConferenceID][r.WorkerID] = true
		}
		if !ph.steady {
			t.Logf("phase %s (hand-overs): results by worker %v", ph.name, byWorker)
			continue
		}
		var shared []string
		for conf, ws := range owners {
			if len(ws) > 1 {
				shared = append(shared, fmt.Sprintf("%s: %v", conf, slices.Sorted(maps.Keys(ws))))
			}
		}
		slices.Sort(shared)
		require.Empty(t, shared, "phase %s: conferences whose results came from several workers", ph.name)
		for w := range byWorker {
			require.Contains(t, ph.workers, w, "phase %s: a result from a worker not running", ph.name)
		}
		require.Len(t, byWorker, len(ph.workers), "phase %s: every running worker owns some of the conferences; results by worker %v", ph.name, byWorker)

		// The calls of the phase, attributed to workers: no two workers
		// call for one conference at the same time.
		var inPhase []simCall
		attributed := 0
		for _, c := range calls {
			if c.Time.Before(ph.from) || c.Time.After(ph.to) {
				continue
			}
			inPhase = append(inPhase, c)
			if byCall[c.RequestID] != "" {
				attributed++
			}
		}
		var overlaps []string
		for i, a := range inPhase {
			for _, b := range inPhase[i+1:] {
				wa, wb := byCall[a.RequestID], byCall[b.RequestID]
				if a.ConferenceID == b.ConferenceID && wa != "" && wb != "" && wa != wb &&
					a.Time.Before(b.Answered) && b.Time.Before(a.Answered) {
					overlaps = append(overlaps, fmt.Sprintf("%s: %s at %s and %s at %s", a.ConferenceID,
						wa, a.Time.Format(time.StampMilli), wb, b.Time.Format(time.StampMilli)))
				}
			}
		}
		require.Empty(t, overlaps, "phase %s: calls from two workers at once for one conference", ph.name)
		t.Logf("phase %s: results by worker %v; %d calls, %d attributed to a worker", ph.name, byWorker, len(inPhase), attributed)
	}
	t.Logf("%d requests, %d participants removed, %d calls; latency median %s, p99 %s",
		rep.Results, len(disconnects), len(calls), rep.LatencyMedian, rep.LatencyP99)
}

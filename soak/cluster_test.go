//go:build unix

package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hangup-dev/hangup/schemas"
)

// clusterSize is the number of nats-server nodes with -soak.cluster, and
// the replicas of every stream and bucket then.
const clusterSize = 3

// clusterName is the nats-server --cluster_name of the soak's cluster.
const clusterName = "soak"

// natsNode is one node of the cluster; restarting it keeps its ports, name
// and store directory.
type natsNode struct {
	name                         string
	port, routePort, monitorPort int
	storeDir                     string
	starts                       int
	cur                          *proc
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

func (n *natsNode) routeURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.routePort) }

// natsCluster is a JetStream cluster of nats-server child processes on
// 127.0.0.1 (-soak.cluster).
type natsCluster struct {
	ps    *procs
	bin   string
	http  *http.Client
	nodes []*natsNode
}

// newNATSCluster allocates the ports and store directories of the nodes
// n1..n<size>; it starts nothing.
func newNATSCluster(t *testing.T, ps *procs, bin, dir string, size int, client *http.Client) *natsCluster {
	t.Helper()
	c := &natsCluster{ps: ps, bin: bin, http: client}
	for i := 1; i <= size; i++ {
		name := fmt.Sprintf("n%d", i)
		c.nodes = append(c.nodes, &natsNode{
			name: name, port: freePort(t), routePort: freePort(t), monitorPort: freePort(t),
			storeDir: filepath.Join(dir, "jetstream-"+name),
		})
	}
	return c
}

// urls are the client URLs of every node, comma-separated.
func (c *natsCluster) urls() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.url())
	}
	return strings.Join(urls, ",")
}

// routes are the route URLs of every node, the node's own included (a
// node ignores the route to itself).
func (c *natsCluster) routes() string {
	var routes []string
	for _, n := range c.nodes {
		routes = append(routes, n.routeURL())
	}
	return strings.Join(routes, ",")
}

// node returns the node named name, or nil.
func (c *natsCluster) node(name string) *natsNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// down lists the nodes not running.
func (c *natsCluster) down() []string {
	var out []string
	for _, n := range c.nodes {
		if n.cur == nil || n.cur.exited() {
			out = append(out, n.name)
		}
	}
	return out
}

// launch starts n's process and waits until it accepts clients. A node
// whose port was taken in the meantime (by an outgoing connection's
// ephemeral port, while it was down) exits at once; it is tried again a
// few times.
func (c *natsCluster) launch(ctx context.Context, n *natsNode) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		n.starts++
		var p *proc
		p, err = c.ps.start(fmt.Sprintf("nats-%s-%d", n.name, n.starts), c.bin,
			"-a", "127.0.0.1", "-js", "-sd", n.storeDir,
			"-p", fmt.Sprint(n.port), "-m", fmt.Sprint(n.monitorPort),
			"--cluster_name", clusterName, "--cluster", n.routeURL(), "--routes", c.routes(),
			"-n", n.name)
		if err != nil {
			return err
		}
		n.cur = p
		err = poll(ctx, 30*time.Second, 50*time.Millisecond, func(context.Context) error {
			if p.exited() {
				return fmt.Errorf("nats-server %s exited: %v; log: %s", n.name, p.exitErr, strings.Join(p.tail(5), "\n"))
			}
			nc, err := nats.Connect(n.url(), nats.Timeout(time.Second), nats.NoReconnect())
			if err != nil {
				return err
			}
			nc.Close()
			return nil
		})
		if err == nil || !p.exited() {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// start starts every node, waits for a JetStream meta leader (until
// $JS.API.INFO answers through a connection to all of them) and then
// until every node reports itself healthy.
func (c *natsCluster) start(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := c.launch(ctx, n); err != nil {
			return err
		}
	}
	err := poll(ctx, 60*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		for _, n := range c.nodes {
			if n.cur.exited() {
				return fmt.Errorf("nats-server %s exited: %v; log: %s", n.name, n.cur.exitErr, strings.Join(n.cur.tail(5), "\n"))
			}
		}
		return jetStreamAnswers(ctx, c.urls())
	})
	if err != nil {
		return fmt.Errorf("no JetStream meta leader: %w", err)
	}
	return c.healthy(ctx, 60*time.Second, c.nodes...)
}

// healthy waits until each of nodes answers /healthz with 200: JetStream
// is current, and so are the streams and consumers it holds.
func (c *natsCluster) healthy(ctx context.Context, timeout time.Duration, nodes ...*natsNode) error {
	return poll(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) error {
		for _, n := range nodes {
			if n.cur.exited() {
				return fmt.Errorf("nats-server %s exited: %v", n.name, n.cur.exitErr)
			}
			var body struct {
				Status string `json:"status"`
				Error  string `json:"error"`
			}
			code, err := c.getJSON(ctx, n, "/healthz", &body)
			if err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
			if code != http.StatusOK {
				return fmt.Errorf("%s: healthz %d %s %s", n.name, code, body.Status, body.Error)
			}
		}
		return nil
	})
}

// metaLeader asks the running nodes for the JetStream meta leader's name.
func (c *natsCluster) metaLeader(ctx context.Context) string {
	for _, n := range c.nodes {
		if n.cur == nil || n.cur.exited() {
			continue
		}
		var jsz struct {
			Meta *struct {
				Leader string `json:"leader"`
			} `json:"meta_cluster"`
		}
		if code, err := c.getJSON(ctx, n, "/jsz", &jsz); err == nil && code == http.StatusOK && jsz.Meta != nil && jsz.Meta.Leader != "" {
			return jsz.Meta.Leader
		}
	}
	return ""
}

// getJSON reads path of n's monitoring endpoint into out and returns the
// HTTP status.
func (c *natsCluster) getJSON(ctx context.Context, n *natsNode, path string, out any) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", n.monitorPort, path), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s: %w: %.200s", path, err, body)
	}
	return resp.StatusCode, nil
}

// nodeChaos is the state of the cluster chaos: which node is down and
// since when, and what was done.
type nodeChaos struct {
	downNode  *natsNode
	downSince time.Time
	// health reports, once, whether the node restarted last became
	// healthy; nil when nothing is awaited.
	health chan error
	// kills describes each node kill: the node, why it was chosen, when
	// and for how long it was down.
	kills []string
}

// victim picks the node to kill: the request stream's leader the first
// time, the meta leader the second, by turns after that; a node drawn at
// random when the leader is not known.
func (c *chaos) victim(ctx context.Context) (*natsNode, string) {
	var name, why string
	if len(c.nodeChaos.kills)%2 == 0 {
		why = "request stream leader"
		if st, err := c.js.Stream(ctx, schemas.DefaultRequestStream); err == nil {
			if info, err := st.Info(ctx); err == nil && info.Cluster != nil {
				name = info.Cluster.Leader
			}
		}
	} else {
		why = "meta leader"
		name = c.cluster.metaLeader(ctx)
	}
	if n := c.cluster.node(name); n != nil {
		return n, why
	}
	return c.cluster.nodes[c.rng.IntN(len(c.cluster.nodes))], "drawn at random"
}

// killNode waits until every node is healthy (so that the streams keep
// their quorum without the victim), then SIGKILLs one node.
func (c *chaos) killNode(ctx context.Context) error {
	if c.nodeChaos.downNode != nil {
		return fmt.Errorf("node %s is still down", c.nodeChaos.downNode.name)
	}
	if err := c.awaitNodeHealth(); err != nil {
		return err
	}
	if err := c.cluster.healthy(ctx, 60*time.Second, c.cluster.nodes...); err != nil {
		return fmt.Errorf("the cluster is not healthy before a node kill: %w", err)
	}
	n, why := c.victim(ctx)
	c.nodeChaos.downNode, c.nodeChaos.downSince = n, time.Now()
	n.cur.kill()
	c.nodeChaos.kills = append(c.nodeChaos.kills, n.name+" ("+why+")")
	c.note("SIGKILL NATS node %s (%s)", n.name, why)
	return nil
}

// restartNode starts the node killed last on its ports and store
// directory. It returns once the node accepts clients, and waits in the
// background until it is healthy again, so that the chaos goes on
// meanwhile; the next node kill and the end of the chaos wait for that
// (awaitNodeHealth).
func (c *chaos) restartNode(ctx context.Context) error {
	n := c.nodeChaos.downNode
	if n == nil {
		return fmt.Errorf("no node is down")
	}
	from := c.nodeChaos.downSince
	err := c.cluster.launch(ctx, n)
	up := time.Now()
	c.nodeChaos.downNode = nil
	c.note("NATS node %s back after %s", n.name, up.Sub(from).Round(time.Millisecond))
	done := func(err error) error {
		to := time.Now()
		c.mu.Lock()
		c.natsDown = append(c.natsDown, window{from: from, to: to})
		c.natsRestarts++
		last := len(c.nodeChaos.kills) - 1
		c.nodeChaos.kills[last] += fmt.Sprintf(" at %.1fs, down %s, healthy %s after its restart",
			from.Sub(c.start).Seconds(), up.Sub(from).Round(time.Millisecond), to.Sub(up).Round(time.Millisecond))
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("NATS node %s restarted: %w", n.name, err)
		}
		c.note("NATS node %s healthy %s after its restart", n.name, to.Sub(up).Round(time.Millisecond))
		return nil
	}
	if err != nil {
		return done(err)
	}
	health := make(chan error, 1) // one result; the goroutine never blocks
	c.nodeChaos.health = health
	go func() { health <- done(c.cluster.healthy(ctx, 60*time.Second, n)) }()
	return nil
}

// awaitNodeHealth waits until the node restarted last is healthy, and
// returns the error if it did not become so.
func (c *chaos) awaitNodeHealth() error {
	if c.nodeChaos.health == nil {
		return nil
	}
	err := <-c.nodeChaos.health
	c.nodeChaos.health = nil
	return err
}

// distinctWorkers counts the workers named in the results.
func distinctWorkers(results []schemas.Result) int {
	seen := map[string]bool{}
	for _, r := range results {
		if r.WorkerID != "" {
			seen[r.WorkerID] = true
		}
	}
	return len(seen)
}

// surgeWait is how long a worker kill waits for the workers wanted, its
// replacement among them, to run; after it the kill goes ahead anyway.
const surgeWait = 20 * time.Second

// pendingKill is a worker kill waiting for its replacement.
type pendingKill struct {
	replacement *worker
	since       time.Time
}

// surgeKill starts the replacement of a worker about to be killed; the
// kill itself follows (resolveSurge) once the workers wanted, the
// replacement among them, have started, so that the fleet never runs
// short because of a kill. A worker that starts while a node is down can
// take long to provision, or fail to; the kill waits for the one that
// replaces it.
func (c *chaos) surgeKill() error {
	c.fleet.setSurge(1)
	c.fleet.reap()
	w, err := c.fleet.start()
	if err != nil {
		return err
	}
	c.pending = &pendingKill{replacement: w, since: time.Now()}
	return c.resolveSurge()
}

// resolveSurge carries out the pending kill once every worker wanted runs
// (or surgeWait has passed): one worker other than the replacement is
// SIGKILLed, the surge ends and, at random, the number wanted switches.
func (c *chaos) resolveSurge() error {
	p := c.pending
	if p == nil {
		return nil
	}
	up, wanted := c.fleet.upCount(), c.fleet.wanted()
	waited := time.Since(p.since)
	if up < wanted && waited < surgeWait {
		return nil
	}
	c.pending = nil
	c.fleet.setSurge(0)
	victim := c.fleet.killOneExcept(c.rng, p.replacement)
	if c.rng.Float64() < c.sched.pTwo {
		c.fleet.toggleDesired()
	}
	name := "none"
	if victim != nil {
		name = victim.id
	}
	c.note("SIGKILL %s, %s after its replacement %s was started (%d of %d wanted running); %d wanted",
		name, waited.Round(100*time.Millisecond), p.replacement.id, up, wanted, c.fleet.wanted())
	return c.fleet.reconcile()
}

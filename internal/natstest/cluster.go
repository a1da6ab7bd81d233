package natstest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// globalAccount is the account of clients on a server without accounts
// configured, the one the streams of the tests live in.
const globalAccount = "$G"

// clusterTimeout bounds every wait for the cluster to form or heal. Route
// formation and the first meta-leader election take a few seconds, more
// on a slow machine under -race.
const clusterTimeout = 30 * time.Second

// pollInterval is how often the cluster waits look again.
const pollInterval = 50 * time.Millisecond

// Cluster is an in-process JetStream cluster of nats-server nodes for one
// test, so that tests can stop and restart nodes under clients that keep
// running. Node i (0-based) is named n<i+1>.
type Cluster struct {
	t     testing.TB
	name  string
	nodes []*clusterNode

	mu sync.Mutex // guards the srv of each node
}

// clusterNode is what a node keeps across restarts: its name, its ports
// and its store directory, so that a restart finds its streams and its
// peers find it at the same address.
type clusterNode struct {
	name      string
	port      int
	routePort int
	storeDir  string
	srv       *server.Server // nil while stopped
}

// RunCluster starts n JetStream nodes routed to each other, waits until
// they agree on a meta leader and all are current, and stops them when t
// ends. Stop and Restart fail t on error, so call them from t's goroutine.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest cluster: need at least one node, got %d", n)
	}
	ports := reservePorts(t, 2*n)
	c := &Cluster{t: t, name: fmt.Sprintf("natstest-%d", ports[0])}
	for i := range n {
		c.nodes = append(c.nodes, &clusterNode{
			name:      fmt.Sprintf("n%d", i+1),
			port:      ports[2*i],
			routePort: ports[2*i+1],
			storeDir:  t.TempDir(),
		})
	}
	t.Cleanup(c.stopAll)
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.nodes {
		c.waitConnectable(i)
	}
	c.waitFormed()
	return c
}

// URLs are the client URLs of all nodes, comma-separated, as nats.Connect
// takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// URL is the client URL of node i; it stays the same across restarts.
func (c *Cluster) URL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].port)
}

// Server is the running server of node i, nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Stop shuts node i down and waits until it is gone. Stopping a stopped
// node does nothing. The shutdown is graceful: the node hands the
// leadership of its Raft groups over before it leaves.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts the stopped node i again with its ports and store
// directory, and waits until it has rejoined: the meta leader counts every
// running node as a peer again and all of them are current.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Server(i) != nil {
		c.t.Fatalf("natstest cluster: restart %s: still running", c.nodes[i].name)
	}
	if err := c.start(i); err != nil {
		c.t.Fatal(err)
	}
	c.waitConnectable(i)
	c.waitFormed()
}

// StreamLeader is the index of the node that leads stream (in the global
// account) right now; it fails t when no single node does.
func (c *Cluster) StreamLeader(t testing.TB, stream string) int {
	t.Helper()
	i := c.streamLeader(stream)
	if i < 0 {
		t.Fatalf("natstest cluster: stream %q has no leader now", stream)
	}
	return i
}

// WaitForStreamLeader waits up to timeout until exactly one running node
// leads stream, for instance after the old leader was stopped, and returns
// its index.
func (c *Cluster) WaitForStreamLeader(t testing.TB, stream string, timeout time.Duration) int {
	t.Helper()
	leader := -1
	ok := poll(timeout, func() bool {
		leader = c.streamLeader(stream)
		return leader >= 0
	})
	if !ok {
		t.Fatalf("natstest cluster: stream %q has no leader after %v", stream, timeout)
	}
	return leader
}

// streamLeader is the index of the only running node that leads stream,
// or -1 when none or (briefly, during an election) several claim it.
func (c *Cluster) streamLeader(stream string) int {
	leader := -1
	for i := range c.nodes {
		s := c.Server(i)
		if s == nil || !s.JetStreamIsStreamLeader(globalAccount, stream) {
			continue
		}
		if leader >= 0 {
			return -1
		}
		leader = i
	}
	return leader
}

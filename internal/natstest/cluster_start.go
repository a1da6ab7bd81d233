package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// start creates and starts the server of node i from its kept config.
func (c *Cluster) start(i int) error {
	s, err := server.NewServer(c.options(i))
	if err != nil {
		return fmt.Errorf("natstest cluster: new server %s: %w", c.nodes[i].name, err)
	}
	c.mu.Lock()
	c.nodes[i].srv = s
	c.mu.Unlock()
	go s.Start()
	return nil
}

// options builds fresh server options for node i; the server changes the
// options it is given, so a restart must not reuse them.
func (c *Cluster) options(i int) *server.Options {
	n := c.nodes[i]
	return &server.Options{
		ServerName: n.name,
		Host:       "127.0.0.1",
		Port:       n.port,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   n.storeDir,
		// As internal/embedded: tests publish large payloads on purpose.
		MaxPayload: 1 << 20,
		Cluster: server.ClusterOpts{
			Name: c.name,
			Host: "127.0.0.1",
			Port: n.routePort,
			// Clients must only know the URLs they were given: a client
			// behind a Proxy would otherwise learn the real addresses of
			// the nodes and reconnect around a Cut.
			NoAdvertise: true,
		},
		Routes: c.routes(i),
	}
}

// routes are the route URLs of every node but i.
func (c *Cluster) routes(i int) []*url.URL {
	var routes []*url.URL
	for j, n := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{
				Scheme: "nats",
				Host:   fmt.Sprintf("127.0.0.1:%d", n.routePort),
			})
		}
	}
	return routes
}

// waitConnectable waits until node i accepts clients and routes.
func (c *Cluster) waitConnectable(i int) {
	c.t.Helper()
	if s := c.Server(i); s == nil || !s.ReadyForConnections(clusterTimeout) {
		c.t.Fatalf("natstest cluster: %s not ready for connections within %v",
			c.nodes[i].name, clusterTimeout)
	}
}

// waitFormed waits until the running nodes have one meta leader that
// counts all of them as peers, and every one of them is current and knows
// that leader.
func (c *Cluster) waitFormed() {
	c.t.Helper()
	if !poll(clusterTimeout, c.formed) {
		c.t.Fatalf("natstest cluster: not formed within %v: %s", clusterTimeout, c.state())
	}
}

// formed tells whether the running nodes form a healthy JetStream cluster.
// Being current is not enough: a node restarted from its store reports
// current before it has heard from any leader, so every node must also
// name the leader.
func (c *Cluster) formed() bool {
	var running []*server.Server
	var leader *server.Server
	for i := range c.nodes {
		s := c.Server(i)
		if s == nil {
			continue
		}
		if !s.Running() || !s.JetStreamIsCurrent() {
			return false
		}
		running = append(running, s)
		if s.JetStreamIsLeader() {
			if leader != nil {
				return false
			}
			leader = s
		}
	}
	if leader == nil || len(leader.JetStreamClusterPeers()) != len(running) {
		return false
	}
	for _, s := range running {
		if metaLeader(s) != leader.Name() {
			return false
		}
	}
	return true
}

// metaLeader is the name of the JetStream meta leader as s knows it, empty
// when it knows none.
func metaLeader(s *server.Server) string {
	jsz, err := s.Jsz(nil)
	if err != nil || jsz.Meta == nil {
		return ""
	}
	return jsz.Meta.Leader
}

// state describes every node for a failure message.
func (c *Cluster) state() string {
	var parts []string
	for i, n := range c.nodes {
		s := c.Server(i)
		if s == nil {
			parts = append(parts, n.name+": stopped")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: routes=%d current=%t knownLeader=%q peersSeen=%d",
			n.name, s.NumRoutes(), s.JetStreamIsCurrent(), metaLeader(s),
			len(s.JetStreamClusterPeers())))
	}
	return strings.Join(parts, "; ")
}

// stopAll stops every node, the last first.
func (c *Cluster) stopAll() {
	for i := len(c.nodes) - 1; i >= 0; i-- {
		c.Stop(i)
	}
}

// reservePorts finds n distinct free TCP ports on 127.0.0.1. It holds all
// listeners open at once so that the ports differ, then frees them for the
// servers; another process could take one in between, which is unlikely
// enough for tests.
func reservePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: reserve port: %v", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// poll calls cond every pollInterval until it is true or timeout passed.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
}

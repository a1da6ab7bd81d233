package natstest

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialTimeout bounds the proxy's connection to its target.
const dialTimeout = 5 * time.Second

// Proxy forwards TCP connections from a port on 127.0.0.1 to a target, and
// can cut them, so that a test can take one client off the network while
// the server and the other clients go on.
type Proxy struct {
	ln     net.Listener
	target string // host:port

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[net.Conn]struct{} // both ends of every forwarded connection

	wg sync.WaitGroup // the accept loop and every forwarding goroutine
}

// NewProxy starts a proxy to target (host:port or a URL such as
// nats://host:port) for t, closed with all its connections when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := startProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// startProxy listens on a free port and starts accepting.
func startProxy(target string) (*Proxy, error) {
	addr, err := hostPort(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("natstest proxy to %s: listen: %w", addr, err)
	}
	p := &Proxy{ln: ln, target: addr, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// hostPort takes the host:port out of target, which may be a URL.
func hostPort(target string) (string, error) {
	addr := strings.TrimSpace(target)
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("natstest proxy: target %q: %w", target, err)
		}
		addr = u.Host
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("natstest proxy: target %q: %w", target, err)
	}
	return addr, nil
}

// Addr is the host:port the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's address as a NATS URL.
func (p *Proxy) URL() string { return "nats://" + p.Addr() }

// Cut closes every forwarded connection, and closes new ones as soon as
// they are accepted, until Restore. Both sides see the connection closed.
func (p *Proxy) Cut() {
	closeAll(p.refuse())
}

// refuse stops letting connections through and returns the ones open.
func (p *Proxy) refuse() map[net.Conn]struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	return conns
}

func closeAll(conns map[net.Conn]struct{}) {
	for c := range conns {
		c.Close()
	}
}

// Restore lets new connections through again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// close stops accepting, closes every connection and waits until all the
// proxy's goroutines have ended.
func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

// serve accepts connections until the proxy is closed.
func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if p.isClosed() {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		p.wg.Add(1)
		go p.forward(conn)
	}
}

// forward connects client to the target and copies both ways until either
// side ends or the proxy cuts them.
func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	if p.isCut() {
		client.Close()
		return
	}
	upstream, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, upstream) {
		client.Close()
		upstream.Close()
		return
	}
	defer p.untrack(client, upstream)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(upstream, client)
		upstream.Close()
		client.Close()
	}()
	_, _ = io.Copy(client, upstream)
	client.Close()
	upstream.Close()
	<-done
}

// track records both ends of a connection, unless the proxy was cut in
// the meantime: then it reports false and the caller closes them.
func (p *Proxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return false
	}
	p.conns[a] = struct{}{}
	p.conns[b] = struct{}{}
	return true
}

// untrack forgets both ends of a finished connection.
func (p *Proxy) untrack(a, b net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, a)
	delete(p.conns, b)
}

func (p *Proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut || p.closed
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Proxies are one Proxy per server URL, so that a client given URLs() can
// reach every node of a cluster only through them.
type Proxies struct {
	list []*Proxy
}

// NewProxies starts a proxy for each of the comma-separated urls for t,
// closed when t ends.
func NewProxies(t testing.TB, urls string) *Proxies {
	t.Helper()
	ps := &Proxies{}
	for _, u := range strings.Split(urls, ",") {
		ps.list = append(ps.list, NewProxy(t, u))
	}
	return ps
}

// URLs are the proxies' URLs, comma-separated, in the order of the targets.
func (ps *Proxies) URLs() string {
	urls := make([]string, len(ps.list))
	for i, p := range ps.list {
		urls[i] = p.URL()
	}
	return strings.Join(urls, ",")
}

// Proxy is the proxy to the i-th target.
func (ps *Proxies) Proxy(i int) *Proxy { return ps.list[i] }

// Cut cuts every proxy.
func (ps *Proxies) Cut() {
	// Refuse on every proxy first, then close: a client that loses one
	// connection must find no other proxy still open.
	open := make([]map[net.Conn]struct{}, len(ps.list))
	for i, p := range ps.list {
		open[i] = p.refuse()
	}
	for _, conns := range open {
		closeAll(conns)
	}
}

// Restore restores every proxy.
func (ps *Proxies) Restore() {
	for _, p := range ps.list {
		p.Restore()
	}
}

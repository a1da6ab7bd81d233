package natstest_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natstest"
)

func TestProxyCutDisconnectsAndRestoreReconnects(t *testing.T) {
	srv := natstest.Run(t)
	direct, _ := natstest.Connect(t, srv)
	sub := subscribe(t, direct)
	p := natstest.NewProxy(t, srv.ClientURL())
	nc, events := connectWatched(t, p.URL())
	requireDelivered(t, nc, sub, "before the cut")

	p.Cut()
	requireEvent(t, events, "disconnected")
	require.Never(t, nc.IsConnected, time.Second, 10*time.Millisecond, "refused while cut")
	require.Eventually(t, func() bool { return srv.NumClients() == 1 },
		5*time.Second, 10*time.Millisecond, "the server lost the proxied client too")

	p.Restore()
	requireEvent(t, events, "reconnected")
	requireDelivered(t, nc, sub, "after the restore")
}

func TestProxiesKeepAClusterClientOffWhileCut(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	ps := natstest.NewProxies(t, c.URLs())
	require.Len(t, strings.Split(ps.URLs(), ","), 3)
	direct, err := nats.Connect(c.URLs())
	require.NoError(t, err)
	t.Cleanup(direct.Close)
	sub := subscribe(t, direct)
	nc, events := connectWatched(t, ps.URLs())
	require.Contains(t, ps.URLs(), nc.ConnectedUrl())
	require.Empty(t, nc.DiscoveredServers(), "the nodes do not advertise their real URLs")
	requireDelivered(t, nc, sub, "before the cut")

	ps.Cut()
	requireEvent(t, events, "disconnected")
	require.Never(t, nc.IsConnected, 2*time.Second, 10*time.Millisecond, "no way around the proxies")

	ps.Restore()
	requireEvent(t, events, "reconnected")
	require.Contains(t, ps.URLs(), nc.ConnectedUrl())
	requireDelivered(t, nc, sub, "after the restore")
}

func TestProxyClosesEveryConnectionWhileCut(t *testing.T) {
	p := natstest.NewProxy(t, echoServer(t))
	before := dialEcho(t, p.Addr())
	requireEcho(t, before, "through")

	p.Cut()
	requireClosed(t, before)
	requireClosed(t, dialEcho(t, p.Addr()))

	p.Restore()
	requireEcho(t, dialEcho(t, p.Addr()), "back")
}

// requireEcho sends a line over conn and reads it back.
func requireEcho(t *testing.T, conn net.Conn, line string) {
	t.Helper()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := conn.Write([]byte(line + "\n"))
	require.NoError(t, err)
	got, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, line+"\n", got)
}

// echoServer echoes every connection back until t ends, and returns its
// address.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	return ln.Addr().String()
}

// dialEcho connects to addr for t, closed when t ends.
func dialEcho(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// requireClosed checks that the other side closes conn soon.
func requireClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := conn.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

// subscribe subscribes nc to the subject the proxied client publishes on.
func subscribe(t *testing.T, nc *nats.Conn) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync("proxied")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return sub
}

// connectWatched connects to urls for t with fast, endless reconnects, and
// reports "disconnected" and "reconnected" on the channel.
func connectWatched(t *testing.T, urls string) (*nats.Conn, <-chan string) {
	t.Helper()
	events := make(chan string, 16)
	send := func(e string) {
		select {
		case events <- e:
		default:
		}
	}
	nc, err := nats.Connect(urls,
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { send("disconnected") }),
		nats.ReconnectHandler(func(*nats.Conn) { send("reconnected") }),
	)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc, events
}

// requireEvent waits for the next connection event and checks it.
func requireEvent(t *testing.T, events <-chan string, want string) {
	t.Helper()
	select {
	case got := <-events:
		require.Equal(t, want, got)
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s event within 10s", want)
	}
}

// requireDelivered publishes data through nc and receives it on sub.
func requireDelivered(t *testing.T, nc *nats.Conn, sub *nats.Subscription, data string) {
	t.Helper()
	require.NoError(t, nc.Publish("proxied", []byte(data)))
	require.NoError(t, nc.Flush())
	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, data, string(msg.Data))
}

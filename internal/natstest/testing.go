package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/internal/embedded"
)

// Options of an embedded server.
type Options = embedded.Options

// Run starts an embedded server for t, stopped when t ends.
func Run(t testing.TB) *server.Server {
	t.Helper()
	return RunWith(t, Options{StoreDir: t.TempDir()})
}

// RunWith starts an embedded server with o for t, stopped when t ends.
func RunWith(t testing.TB, o Options) *server.Server {
	t.Helper()
	s, err := embedded.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a connection to s for t, closed when t ends.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

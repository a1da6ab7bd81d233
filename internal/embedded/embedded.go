package embedded

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options of an embedded server.
type Options struct {
	// StoreDir keeps the JetStream data; required, so that a restarted
	// server finds its streams again.
	StoreDir string
	// Port is the client port; -1 picks a free one. Defaults to -1.
	Port int
	// InProcessOnly serves only in-process connections (no TCP listener).
	InProcessOnly bool
}

// Start starts an embedded JetStream server and waits until it is ready.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, fmt.Errorf("embedded NATS: StoreDir is required")
	}
	if o.Port == 0 {
		o.Port = -1
	}
	if err := os.MkdirAll(o.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded NATS: store dir: %w", err)
	}
	opts := &server.Options{
		ServerName: "hangup-embedded",
		Host:       "127.0.0.1",
		Port:       o.Port,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		DontListen: o.InProcessOnly,
		// Tests publish large invalid payloads on purpose.
		MaxPayload: 1 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: new server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS: server not ready within 10s")
	}
	return s, nil
}

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// TestNATSContainerServesJetStream checks the nats-server image alone: the
// config is loaded and JetStream can store a file-backed message as the
// image's non-root user. When the worker test fails, this one says whether
// the broker is to blame.
func TestNATSContainerServesJetStream(t *testing.T) {
	p := requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	image := buildImage(ctx, t, p, natsImage)
	c := startNATS(ctx, t, nil, image)
	nc, js := connect(ctx, t, c)

	info, err := js.AccountInfo(ctx)
	require.NoError(t, err, "JetStream is not enabled")
	require.Zero(t, info.Streams)
	require.Equal(t, int64(256*1024), nc.MaxPayload(), "max_payload of deploy/nats/nats-server.conf")

	// A file stream proves that store_dir (/data/jetstream) is writable.
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "E2E_SMOKE",
		Subjects: []string{"e2e.smoke"},
		Storage:  jetstream.FileStorage,
	})
	require.NoError(t, err)
	ack, err := js.Publish(ctx, "e2e.smoke", []byte("hello"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), ack.Sequence)
	msg, err := s.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	require.Equal(t, "hello", string(msg.Data))
}

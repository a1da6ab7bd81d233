package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a real embedded JetStream server with the worker's streams.
type env struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Run(t)
	nc, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cfg := topology.Config{Partitions: 2}
	cfg.SetDefaults()
	require.NoError(t, topology.Ensure(ctx, js, cfg))
	return &env{srv: srv, nc: nc, js: js, ctx: ctx}
}

// msgs returns every message of stream, oldest first.
func (e *env) msgs(t *testing.T, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	st, err := e.js.Stream(e.ctx, stream)
	require.NoError(t, err)
	info, err := st.Info(e.ctx)
	require.NoError(t, err)
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(e.ctx, seq)
		if err != nil {
			continue // removed from a work queue
		}
		out = append(out, m)
	}
	return out
}

// count is how many messages stream holds.
func (e *env) count(t *testing.T, stream string) uint64 {
	t.Helper()
	st, err := e.js.Stream(e.ctx, stream)
	require.NoError(t, err)
	info, err := st.Info(e.ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

// jsonLines decodes each line of b into a map.
func jsonLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b.Bytes()))
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m), "output: %s", b)
		out = append(out, m)
	}
	return out
}

const testToken = "stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb"

var requestSubject = schemas.DefaultRequestSubjectPrefix + ".914083136"

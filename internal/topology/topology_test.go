package topology

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natstest"
)

func TestValidateNamesTheField(t *testing.T) {
	for field, mod := range map[string]func(*Config){
		"Replicas":             func(c *Config) { c.Replicas = 7 },
		"AckWait":              func(c *Config) { c.AckWait = time.Millisecond },
		"RequestSubjectPrefix": func(c *Config) { c.RequestSubjectPrefix = "a.*" },
		"subject prefixes":     func(c *Config) { c.ResultSubjectPrefix = c.RequestSubjectPrefix },
		"DuplicateWindow":      func(c *Config) { c.DuplicateWindow = 10 * 24 * time.Hour },
	} {
		c := Config{}
		c.SetDefaults()
		mod(&c)
		require.ErrorContains(t, c.Validate(), field)
	}
}

func TestEnsureCreatesTheContractAndIsIdempotent(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	c := Config{}
	c.SetDefaults()
	require.NoError(t, Ensure(ctx, js, c))
	require.NoError(t, Ensure(ctx, js, c), "a second worker starting does no harm")

	req, err := js.Stream(ctx, "DISCONNECT_REQUESTS")
	require.NoError(t, err)
	info, err := req.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, jetstream.WorkQueuePolicy, info.Config.Retention)
	require.Equal(t, []string{"meeting.disconnect.requests.>"}, info.Config.Subjects)
	require.Equal(t, 2*time.Minute, info.Config.Duplicates)
	res, err := js.Stream(ctx, "DISCONNECT_RESULTS")
	require.NoError(t, err)
	rinfo, err := res.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 7*24*time.Hour, rinfo.Config.MaxAge)
	dlq, err := js.Stream(ctx, "DISCONNECT_DLQ")
	require.NoError(t, err)
	dinfo, err := dlq.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, dinfo.Config.MaxAge)

	cons, err := js.Consumer(ctx, "DISCONNECT_REQUESTS", "hangup-worker")
	require.NoError(t, err)
	cinfo, err := cons.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, jetstream.AckExplicitPolicy, cinfo.Config.AckPolicy)
	require.Equal(t, -1, cinfo.Config.MaxDeliver, "the server never stops delivering silently")
}

package topology

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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

// A request lands in its partition, the partition's consumer takes it,
// and its ack removes it from the work queue; a message on a deeper
// subject stays with the shared durable.
func TestPartitionedRequestsAreRemovedWhenAcked(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	var c Config
	c.Partitions = 4
	c.SetDefaults()
	require.NoError(t, Ensure(ctx, js, c))
	require.NoError(t, Ensure(ctx, js, c), "provisioning twice changes nothing")
	for i := range 20 {
		_, err := js.Publish(ctx, fmt.Sprintf("%s.conf%d", c.RequestSubjectPrefix, i), []byte("x"))
		require.NoError(t, err)
	}
	_, err := js.Publish(ctx, c.RequestSubjectPrefix+".conf1.deeper", []byte("x"))
	require.NoError(t, err)
	got := 0
	for _, name := range c.PartitionConsumerNames() {
		cons, err := js.Consumer(ctx, c.RequestStream, name)
		require.NoError(t, err)
		batch, err := cons.Fetch(20, jetstream.FetchMaxWait(500*time.Millisecond), jetstream.FetchPriorityGroup(PriorityGroup))
		require.NoError(t, err)
		for msg := range batch.Messages() {
			require.True(t, strings.HasPrefix(msg.Subject(), PartitionPrefix+"."), msg.Subject())
			require.NoError(t, msg.DoubleAck(ctx))
			got++
		}
	}
	require.Equal(t, 20, got, "every request is in one partition")
	stream, err := js.Stream(ctx, c.RequestStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs, "the acked requests are gone; the deeper one waits for the shared durable")
	shared, err := js.Consumer(ctx, c.RequestStream, c.Durable)
	require.NoError(t, err)
	batch, err := shared.Fetch(5, jetstream.FetchMaxWait(500*time.Millisecond))
	require.NoError(t, err)
	for msg := range batch.Messages() {
		require.Equal(t, c.RequestSubjectPrefix+".conf1.deeper", msg.Subject())
		require.NoError(t, msg.DoubleAck(ctx))
	}
	info, err = stream.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs)
}

// Provisioning again, as every worker does at start, never takes the
// transform away from a partitioned stream, not even for a moment: every
// request published meanwhile lands in a partition.
func TestEnsureKeepsThePartitionsWhileRequestsArrive(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	var c Config
	c.SetDefaults()
	require.NoError(t, Ensure(ctx, js, c))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			if err := Ensure(ctx, js, c); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	published := 0
	for {
		_, err := js.Publish(ctx, fmt.Sprintf("%s.conf%d", c.RequestSubjectPrefix, published%50), []byte("x"))
		require.NoError(t, err)
		published++
		select {
		case <-done:
		default:
			continue
		}
		break
	}
	stream, err := js.Stream(ctx, c.RequestStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(c.RequestSubjectPrefix+".>"))
	require.NoError(t, err)
	require.Empty(t, info.State.Subjects, "no request stored outside the partitions")
	info, err = stream.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, published, info.State.Msgs)
	require.NotNil(t, info.Config.SubjectTransform)
}

// Workers that start on a provisioned deployment leave the request stream
// alone: an update written from a view read a moment earlier could take
// away the transform that another worker has just added. And several
// workers provisioning a fresh deployment at once all succeed and leave
// the partitions in place.
func TestEnsureLeavesARightRequestStreamAlone(t *testing.T) {
	srv := natstest.Run(t)
	nc, js := natstest.Connect(t, srv)
	ctx := context.Background()
	c := Config{Partitions: 4}
	c.SetDefaults()

	errs := make(chan error, 5)
	for range 5 {
		go func() { errs <- Ensure(ctx, js, c) }()
	}
	for range 5 {
		require.NoError(t, <-errs)
	}
	req, err := js.Stream(ctx, c.RequestStream)
	require.NoError(t, err)
	require.NotNil(t, req.CachedInfo().Config.SubjectTransform, "partitioned")

	updates, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.STREAM.UPDATED." + c.RequestStream)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	for range 3 {
		require.NoError(t, Ensure(ctx, js, c))
	}
	require.NoError(t, nc.Flush())
	_, err = updates.NextMsg(200 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "the request stream was updated though nothing changed")

	// A setting hangup makes that differs is still applied, with the
	// transform kept.
	c.DuplicateWindow = 5 * time.Minute
	require.NoError(t, Ensure(ctx, js, c))
	_, err = updates.NextMsg(5 * time.Second)
	require.NoError(t, err, "an update")
	info, err := req.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 5*time.Minute, info.Config.Duplicates)
	require.NotNil(t, info.Config.SubjectTransform)
}

package natstest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/internal/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const stream = "ORDERS"

func TestClusterKeepsAReplicatedStreamAcrossALeaderStop(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	js := connectJetStream(t, c.URLs())
	ctx := testContext(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{"orders.>"}, Replicas: 3,
	})
	require.NoError(t, err)
	publish(t, js, 0, 5)

	leader := c.WaitForStreamLeader(t, stream, 10*time.Second)
	require.Equal(t, leader, c.StreamLeader(t, stream))
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, c.Server(leader).Name(), info.Cluster.Leader, "index maps to the leader's name")
	require.Len(t, info.Cluster.Replicas, 2)

	c.Stop(leader)
	require.Nil(t, c.Server(leader))
	next := c.WaitForStreamLeader(t, stream, 20*time.Second)
	require.NotEqual(t, leader, next)
	publish(t, js, 5, 10)
	requireMessages(t, js, 10)

	c.Restart(leader)
	require.True(t, c.Server(leader).Running())
	requireRejoined(t, c, leader)
	require.Eventually(t, func() bool {
		return c.Server(leader).JetStreamIsStreamCurrent("$G", stream)
	}, 20*time.Second, 50*time.Millisecond, "the restarted node catches up")
	requireReplicaCurrent(t, s, c.Server(leader).Name())
	requireMessages(t, js, 10)
}

func TestClusterNodeKeepsItsURLAcrossARestart(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	url := c.URL(2)
	require.Contains(t, c.URLs(), url)
	c.Stop(2)
	_, err := nats.Connect(url, nats.MaxReconnects(0))
	require.Error(t, err, "a stopped node refuses clients")
	c.Restart(2)
	requireRejoined(t, c, 2)
	require.Equal(t, url, c.URL(2))
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	require.Equal(t, "n3", nc.ConnectedServerName())
}

// connectJetStream connects to urls for t, closed when t ends.
func connectJetStream(t *testing.T, urls string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// testContext ends when t does or after 60 s.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// publish stores messages from up to (not including) to, retried across a
// leader change; the message IDs keep a retried one from being stored twice.
func publish(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		id := fmt.Sprintf("m%d", i)
		require.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := js.Publish(ctx, "orders.new", []byte(id), jetstream.WithMsgID(id))
			return err == nil
		}, 20*time.Second, 50*time.Millisecond, "publish %s", id)
	}
}

// requireMessages checks that the stream holds exactly messages m0..m<n-1>.
func requireMessages(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	ctx := testContext(t)
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(n), info.State.Msgs)
	for seq := 1; seq <= n; seq++ {
		msg, err := s.GetMsg(ctx, uint64(seq))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("m%d", seq-1), string(msg.Data))
	}
}

// requireReplicaCurrent checks that the stream's leader sees name as a
// current replica without lag.
func requireReplicaCurrent(t *testing.T, s jetstream.Stream, name string) {
	t.Helper()
	require.Eventually(t, func() bool {
		info, err := s.Info(context.Background())
		if err != nil || info.Cluster == nil {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if r.Name == name {
				return r.Current && !r.Offline && r.Lag == 0
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "%s is a current replica", name)
}

// requireRejoined checks, without waiting, that node i is current and
// knows the meta leader the others know.
func requireRejoined(t *testing.T, c *natstest.Cluster, i int) {
	t.Helper()
	s := c.Server(i)
	require.True(t, s.JetStreamIsCurrent(), "Restart waits until the node is current")
	jsz, err := s.Jsz(nil)
	require.NoError(t, err)
	require.NotNil(t, jsz.Meta)
	require.NotEmpty(t, jsz.Meta.Leader, "Restart waits until the node knows the meta leader")
	for j := range 3 {
		other, err := c.Server(j).Jsz(nil)
		require.NoError(t, err)
		require.Equal(t, jsz.Meta.Leader, other.Meta.Leader)
	}
}

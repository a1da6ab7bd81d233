package worker

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
)

func TestStopBeforeStartAndTwice(t *testing.T) {
	w, err := New(Config{WorkerID: "w"}, Deps{})
	require.NoError(t, err)
	require.NoError(t, w.Stop(context.Background()))
	require.NoError(t, w.Stop(context.Background()))
	require.Error(t, w.Start(context.Background()), "a stopped worker does not start")
	require.Empty(t, w.Addr())
}

// silentJetStream runs a NATS server without JetStream in which one
// subscriber takes every JetStream API request and never answers, and
// reports the first request on the returned channel.
func silentJetStream(t *testing.T) (*server.Server, <-chan struct{}) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	asked := make(chan struct{})
	var once sync.Once
	_, err = nc.Subscribe("$JS.API.>", func(*nats.Msg) { once.Do(func() { close(asked) }) })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return srv, asked
}

// Stop does not wait behind Start's network calls: it ends them, and
// shuts down what Start had made.
func TestStopEndsAStartInProgress(t *testing.T) {
	srv, asked := silentJetStream(t)
	w, err := New(Config{NATS: natsconn.Config{URL: srv.ClientURL()}, Provision: true, WorkerID: "w"}, Deps{})
	require.NoError(t, err)
	started := make(chan error, 1)
	go func() { started <- w.Start(context.Background()) }()
	<-asked // Start waits for an answer to provision the streams

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w.Stop(ctx))
	err = <-started
	require.ErrorIs(t, err, context.Canceled, "Stop ended the request; it did not time out")
	require.NoError(t, w.Stop(ctx), "Stop twice")
	require.Eventually(t, func() bool { return srv.NumClients() == 1 }, 10*time.Second, 5*time.Millisecond,
		"the worker's connection is closed")
}

// Start and Stop racing each other, whether Start fails or succeeds,
// always end with nothing left running (goleak checks the goroutines).
// Every other Stop waits until Start has connected, so that it arrives
// while Start is provisioning or after it.
func TestStartRacingStop(t *testing.T) {
	srv := natstest.Run(t)
	outcomes := map[string]int{}
	for _, provision := range []bool{false, true} { // without provisioning Start fails: no deferral bucket
		for i := range 20 {
			w, err := New(Config{NATS: natsconn.Config{URL: srv.ClientURL()}, Provision: provision, APIBaseURL: "http://127.0.0.1:1", WorkerID: "w"}, Deps{})
			require.NoError(t, err)
			var wg sync.WaitGroup
			var startErr, stopErr error
			wg.Go(func() { startErr = w.Start(context.Background()) })
			wg.Go(func() {
				for deadline := time.Now().Add(10 * time.Second); i%2 == 1 && srv.NumClients() == 0 && time.Now().Before(deadline); {
					runtime.Gosched()
				}
				stopErr = w.Stop(context.Background())
			})
			wg.Wait()
			require.NoError(t, stopErr)
			if !provision {
				require.Error(t, startErr)
			}
			outcomes[fmt.Sprint(startErr)]++
			require.NoError(t, w.Stop(context.Background()))
			require.Eventually(t, func() bool { return srv.NumClients() == 0 }, 10*time.Second, time.Millisecond,
				"the worker's connection is closed")
		}
	}
	t.Log(outcomes)
}

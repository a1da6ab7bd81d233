package worker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/schemas"
)

// newClusterWorker makes, without starting it, a worker named name as
// clusterEnv.start does: through proxies of its own, with streams of 3
// replicas. Its log is kept in logs too. It is registered in e.workers
// and stopped when the test ends.
func (e *clusterEnv) newClusterWorker(name string) (*Worker, *observer.ObservedLogs) {
	e.t.Helper()
	proxies := natstest.NewProxies(e.t, e.cl.URLs())
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set(meetingsim.HeaderCaller, name)
		e.sim.Handler().ServeHTTP(w, r)
	}))
	e.t.Cleanup(front.Close)
	cfg := Config{
		NATS: natsconn.Config{URL: proxies.URLs()}, APIBaseURL: front.URL, APITimeout: 2 * time.Second,
		Linger: 20 * time.Millisecond, RetryInitial: 10 * time.Millisecond, RetryMaxInterval: 100 * time.Millisecond,
		RetryMaxElapsed: 20 * time.Second, ShutdownTimeout: 10 * time.Second, Provision: true, WorkerID: name,
		APIConcurrency: e.budget.APIConcurrency, APIRate: e.budget.APIRate, AckWait: 10 * time.Second,
	}
	cfg.Topology.Replicas = 3
	cfg.Topology.PinnedTTL = testPinnedTTL
	cfg.MemberTTL = testMemberTTL
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(zapcore.NewTee(e.log.Core(), core)).With(zap.String("worker", name))
	w, err := New(cfg, Deps{Logger: log})
	require.NoError(e.t, err)
	e.workers[name] = &clusterWorker{w: w, proxies: proxies, api: front}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w, logs
}

// Three workers started at the same moment against a fresh 3-node
// cluster, with streams and buckets of 3 replicas, all start (each
// provisioning what the others provision too, while the cluster places
// the replicas), and then share the work.
func TestThreeWorkersStartAtOnceOnAFreshCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	e := newClusterEnv(t, 12)
	names := []string{"w1", "w2", "w3"}
	workers := make([]*Worker, len(names))
	for i, name := range names {
		workers[i], _ = e.newClusterWorker(name)
	}
	e.event()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	errs := make([]error, len(workers))
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() {
			<-gate
			errs[i] = w.Start(ctx)
		})
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "worker %s", names[i])
	}
	e.settle()
	e.publish("fresh", 200)
	e.drained()
	e.audit()
}

// On a fresh cluster with one node down, a worker starts: its streams
// and buckets of 3 replicas are placed while a peer is away (requests
// time out meanwhile, and are tried again), and it works on the two nodes
// left.
func TestWorkerStartsOnAFreshClusterWithANodeDown(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	e := newClusterEnv(t, 6)
	e.cl.Stop(2)
	w, _ := e.newClusterWorker("w1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, w.Start(ctx))
	ready, why := w.readiness()
	require.True(t, ready, why)
	e.publish("degraded", 100)
	e.drained()
	e.audit()
}

// A worker starts while one node of a cluster whose streams exist is
// down, and shares the work with the worker that was there.
func TestWorkerStartsWhileANodeIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	e := newClusterEnv(t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w1, _ := e.newClusterWorker("w1")
	require.NoError(t, w1.Start(ctx))
	e.event()
	e.cl.Stop(e.cl.StreamLeader(t, schemas.DefaultRequestStream))
	w2, _ := e.newClusterWorker("w2")
	require.NoError(t, w2.Start(ctx), "starts on the two nodes left")
	ready, why := w2.readiness()
	require.True(t, ready, why)
	e.settle()
	e.publish("degraded", 100)
	e.drained()
	e.audit()
}

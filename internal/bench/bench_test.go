package bench

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/schemas"
)

// TestRunAllPipelines runs the three pipelines end to end on a small
// workload: an embedded NATS server, the simulator and the real worker.
// It checks what the bench promises, not how fast anything is.
func TestRunAllPipelines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{
		Workload: WorkloadConfig{Requests: 600, Conferences: 30, Seed: 7},
		Latency:  2 * time.Millisecond,
		StoreDir: t.TempDir(),
		Timeout:  time.Minute,
		Progress: &progress,
	})
	require.NoError(t, err)
	require.True(t, rep.OK(), "violations: %+v", rep.Pipelines)
	require.Len(t, rep.Pipelines, 3)

	for i, p := range AllPipelines {
		res := rep.Pipelines[i]
		require.Equal(t, p, res.Pipeline)
		require.Equal(t, 600, res.Requests)
		require.Equal(t, 600, res.Results, p)
		require.Zero(t, res.Missing+res.Duplicates+res.Unknown, p)
		require.Zero(t, res.Unacked, p)
		require.Zero(t, res.DeadLetters, p)
		require.Equal(t, map[string]int{"succeeded": 600}, res.ByStatus, p)
		require.Positive(t, res.RequestsPerSecond, p)
		require.Positive(t, res.LatencyP50Ms, p)
		require.LessOrEqual(t, res.LatencyP50Ms, res.LatencyP90Ms, p)
		require.LessOrEqual(t, res.LatencyP90Ms, res.LatencyP99Ms, p)
		require.Positive(t, res.CPUUserSeconds+res.CPUSystemSeconds, p)
	}
	ids := rep.Workload.IDs
	limit, plain, hangup := rep.Pipelines[0], rep.Pipelines[1], rep.Pipelines[2]
	require.Zero(t, limit.APICalls)
	// The plain handler makes one call per request, each disconnecting
	// that request's participants.
	require.Equal(t, 600, plain.APICalls)
	require.InDelta(t, float64(ids)/600, plain.IDsPerCall, 1e-9)
	// hangup batches: fewer calls than requests, all of them answered.
	require.Less(t, hangup.APICalls, 600)
	require.Equal(t, hangup.APICalls, hangup.APICallsOK)
	require.InDelta(t, float64(ids)/float64(hangup.APICalls), hangup.IDsPerCall, 1e-9)
	require.LessOrEqual(t, hangup.PeakAPIConcurrency, 32)
	require.NotNil(t, rep.Comparison.HangupVsLimit)
	require.NotNil(t, rep.Comparison.HangupVsPlain)

	var md bytes.Buffer
	require.NoError(t, rep.WriteMarkdown(&md))
	rows := 0
	for line := range strings.SplitSeq(md.String(), "\n") {
		if strings.HasPrefix(line, "| ") && strings.Contains(line, "600/600, exactly one each") {
			rows++
		}
	}
	require.Equal(t, 3, rows, md.String())
	for _, p := range AllPipelines {
		require.Contains(t, progress.String(), "["+string(p)+"] 600 requests in")
	}
}

// TestRunRefusesAnExternalServerInUse points the bench at a server whose
// request stream holds a message: it must refuse, unless told to wipe it.
func TestRunRefusesAnExternalServerInUse(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topo := topology.Config{}
	topo.SetDefaults()
	require.NoError(t, topology.Ensure(ctx, js, topo))
	_, err := js.Publish(ctx, schemas.DefaultRequestSubjectPrefix+".conf-1", []byte(`{}`))
	require.NoError(t, err)

	cfg := Config{
		Workload:  WorkloadConfig{Requests: 50, Conferences: 5},
		Latency:   time.Millisecond,
		NATSURL:   srv.ClientURL(),
		Pipelines: []Pipeline{PipelineLimit},
	}
	_, err = Run(ctx, cfg)
	require.ErrorContains(t, err, "holds 1 messages")

	cfg.WipeStreams = true
	rep, err := Run(ctx, cfg)
	require.NoError(t, err)
	require.True(t, rep.OK())
	require.Contains(t, rep.Machine.NATS, "external nats-server")
	require.Equal(t, 50, rep.Pipelines[0].Results)
}

// TestRunAtASteadyRateInAProcessOfItsOwn paces the requests while hangup
// runs as `worker run`, a process built from this module: every request
// gets exactly one result, the publishing takes as long as the rate says,
// and the worker's process is measured apart from the bench's.
func TestRunAtASteadyRateInAProcessOfItsOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker binary")
	}
	bin := filepath.Join(t.TempDir(), "worker")
	build := exec.Command("go", "build", "-o", bin, "github.com/hangup-dev/hangup/cmd/worker")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n, rate = 400, 400.0
	rep, err := Run(ctx, Config{
		Workload:     WorkloadConfig{Requests: n, Conferences: 20, Seed: 3},
		Latency:      2 * time.Millisecond,
		StoreDir:     t.TempDir(),
		Pipelines:    []Pipeline{PipelineHangup},
		Rate:         rate,
		WorkerBinary: bin,
		Timeout:      time.Minute,
	})
	require.NoError(t, err)
	require.True(t, rep.OK(), "violations: %+v", rep.Pipelines)
	res := rep.Pipelines[0]
	require.Equal(t, n, res.Results)
	require.Zero(t, res.Missing+res.Duplicates+res.Unknown+res.Unacked)
	require.Equal(t, rate, rep.Settings.Rate)
	require.Zero(t, res.BacklogPublishSeconds, "no backlog is published before the pipeline")
	// The last request is due (n-1)/rate after the start: the drain cannot
	// be shorter, as it would be with a backlog.
	require.GreaterOrEqual(t, res.DrainSeconds, float64(n-1)/rate)
	require.Positive(t, res.WorkerPeakRSSBytes, "the worker's own process is measured")
	require.Positive(t, res.WorkerCPUSeconds)

	var md bytes.Buffer
	require.NoError(t, rep.WriteMarkdown(&md))
	require.Contains(t, md.String(), "published at a steady 400 per second")
	require.Contains(t, md.String(), "ran as a process of its own")
}

// Two hangup workers, started before the requests are published, share
// the work and the budget: every request gets exactly one result, and the
// vendor never sees more calls at once than the budget.
func TestRunLiveWithTwoWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wc := DefaultWorkerConfig()
	wc.APIConcurrency = 4
	rep, err := Run(ctx, Config{
		Workload:  WorkloadConfig{Requests: 600, Conferences: 30, Seed: 5},
		Latency:   5 * time.Millisecond,
		StoreDir:  t.TempDir(),
		Pipelines: []Pipeline{PipelineHangup},
		Live:      true,
		Workers:   2,
		Worker:    &wc,
		Timeout:   time.Minute,
	})
	require.NoError(t, err)
	require.True(t, rep.OK(), "violations: %+v", rep.Pipelines)
	res := rep.Pipelines[0]
	require.Equal(t, 600, res.Results)
	require.Zero(t, res.Missing+res.Duplicates+res.Unknown+res.Unacked)
	require.True(t, rep.Settings.Live)
	require.Equal(t, 2, rep.Settings.Hangup.Workers)
	require.LessOrEqual(t, res.PeakAPIConcurrency, 4, "two workers within one budget of 4")
	require.Positive(t, res.BusiestSecond)
}

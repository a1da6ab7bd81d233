package bench

import (
	"bytes"
	"encoding/json"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixedReport is a report as a run on a 2-CPU machine could give.
func fixedReport() *Report {
	r := &Report{
		Started: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		Machine: Machine{CPUs: 2, GOOS: "linux", GOARCH: "amd64", GoVersion: "go1.26.8", CPUModel: "Test CPU", MemoryBytes: 24 << 30,
			NATS: "embedded nats-server 2.15.2, file storage, loopback TCP", Revision: "5e479a0+modified"},
		Settings: Settings{
			Requests: 100000, Conferences: 1000, Skew: 1.1, BurstMin: 1, BurstMax: 50, MaxIDsPerRequest: 3,
			Pattern: PatternBursty, Seed: 1, Latency: Duration(20 * time.Millisecond), MaxConcurrent: 64, PlainHandlers: 32,
			Pipelines: AllPipelines, Runs: 1, Timeout: Duration(10 * time.Minute),
			Hangup: HangupSettings{MaxBatch: 100, Linger: Duration(50 * time.Millisecond), APIConcurrency: 32, MaxInFlight: 1000,
				MaxAckPending: 10000, CredentialsBucket: "meeting_credentials"},
		},
		Workload: WorkloadSummary{Requests: 100000, Bursts: 3900, IDs: 200123, ConferencesUsed: 801, MaxBatch: 100, CallBound: 4100, CallFloor: 2300},
		Pipelines: []PipelineResult{
			{Pipeline: PipelineLimit, Requests: 100000, Results: 100000, ByStatus: map[string]int{"succeeded": 100000},
				DrainSeconds: 4, RequestsPerSecond: 25000, LatencyP50Ms: 2500, LatencyP90Ms: 4100, LatencyP99Ms: 4500, LatencyMaxMs: 4600,
				PeakRSSBytes: 300 << 20, CPUUserSeconds: 6, CPUSystemSeconds: 1.5},
			{Pipeline: PipelinePlain, Requests: 100000, Results: 100000, ByStatus: map[string]int{"succeeded": 100000},
				DrainSeconds: 70, RequestsPerSecond: 1428.6, APICalls: 100000, APICallsOK: 100000, IDsPerCall: 2.0, PeakAPIConcurrency: 32,
				LatencyP50Ms: 35000, LatencyP90Ms: 63000, LatencyP99Ms: 69500, LatencyMaxMs: 70000,
				PeakRSSBytes: 280 << 20, CPUUserSeconds: 40, CPUSystemSeconds: 10},
			{Pipeline: PipelineHangup, Requests: 100000, Results: 99999, Missing: 1, ByStatus: map[string]int{"succeeded": 99998, "failed": 1},
				DeadLetters: 1, DrainSeconds: 10, RequestsPerSecond: 9999.9, APICalls: 3500, APICallsOK: 3490, FlowControl: 10, IDsPerCall: 57.3,
				PeakAPIConcurrency: 32, LatencyP50Ms: 5000, LatencyP90Ms: 9000, LatencyP99Ms: 9900, LatencyMaxMs: 10000,
				PeakRSSBytes: 350 << 20, CPUUserSeconds: 15, CPUSystemSeconds: 3, OtherCPUSeconds: 0.5,
				Violations: []string{"exactly one result per request: 1 requests without a result, 0 extra results, 0 results for unknown requests"},
				Warnings:   []string{"1 of 99999 results did not succeed"}},
		},
	}
	r.compare()
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to write %s", path)
	require.Equal(t, string(want), string(got))
}

func TestReportComparison(t *testing.T) {
	r := fixedReport()
	require.InDelta(t, 0.4, *r.Comparison.HangupVsLimit, 1e-3)
	require.InDelta(t, 7.0, *r.Comparison.HangupVsPlain, 1e-2)
	require.InDelta(t, 3500.0/4100, *r.Comparison.HangupCallsVsBound, 1e-9)
	require.False(t, r.OK())

	r.Pipelines = r.Pipelines[:2]
	r.Comparison = Comparison{}
	r.compare()
	require.Nil(t, r.Comparison.HangupVsLimit)
	require.True(t, r.OK())
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, fixedReport().WriteMarkdown(&b))
	golden(t, "report.md", b.Bytes())
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, fixedReport().WriteJSON(&b))
	golden(t, "report.json", b.Bytes())

	var back Report
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Equal(t, *fixedReport(), back)
}

func TestWritePNG(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, fixedReport().WritePNG(&b))
	img, err := png.Decode(&b)
	require.NoError(t, err)
	require.Equal(t, ChartWidth, img.Bounds().Dx())
	require.Equal(t, ChartHeight, img.Bounds().Dy())

	require.Error(t, (&Report{}).WritePNG(&b))
}

package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/internal/embedded"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/schemas"
)

// env is what all pipelines of a run share: the NATS server, an admin
// connection, the workload and what was sent.
type env struct {
	cfg  Config
	url  string
	nc   *nats.Conn
	js   jetstream.JetStream
	wl   *Workload
	sent map[string]audit.Sent
	topo topology.Config
}

// Run generates the workload and runs each pipeline of cfg on it, one after
// another, and returns what they did. A pipeline that loses or repeats
// results does not make Run fail: the report says so (Report.OK). Run fails
// when the bench itself cannot proceed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	wl, err := Generate(cfg.Workload)
	if err != nil {
		return nil, err
	}
	cfg.Workload = wl.Config
	e := &env{cfg: cfg, wl: wl, topo: cfg.Worker.Topology, url: cfg.NATSURL}
	natsDesc := ""
	if e.url == "" {
		dir := cfg.StoreDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "hangup-bench-"); err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
		}
		srv, err := embedded.Start(embedded.Options{StoreDir: dir})
		if err != nil {
			return nil, err
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		e.url = srv.ClientURL()
		natsDesc = "embedded nats-server " + server.VERSION + ", file storage, loopback TCP"
	}
	if e.nc, err = nats.Connect(e.url, nats.Name("hangup bench")); err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	defer e.nc.Close()
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, err
	}
	if natsDesc == "" {
		natsDesc = fmt.Sprintf("external nats-server %s at %s", e.nc.ConnectedServerVersion(), redactURL(cfg.NATSURL))
		if err := e.checkExternal(ctx); err != nil {
			return nil, err
		}
	}
	e.sent = make(map[string]audit.Sent, len(wl.Requests))
	for _, r := range wl.Requests {
		e.sent[r.ID] = audit.Sent{ConferenceID: r.ConferenceID, ParticipantIDs: r.ParticipantIDs}
	}

	rep := newReport(cfg, wl, natsDesc)
	// With several runs the pipelines take turns, so that a disturbance of
	// the machine spreads over all of them.
	runs := map[Pipeline][]*PipelineResult{}
	for round := 1; round <= cfg.Runs; round++ {
		for _, p := range cfg.Pipelines {
			if cfg.Runs > 1 {
				e.progress("[%s] run %d of %d", p, round, cfg.Runs)
			}
			res, err := e.runPipeline(ctx, p)
			if err != nil {
				return rep, fmt.Errorf("pipeline %s: %w", p, err)
			}
			runs[p] = append(runs[p], res)
		}
	}
	for _, p := range cfg.Pipelines {
		rep.Pipelines = append(rep.Pipelines, mergeRuns(runs[p]))
	}
	rep.compare()
	return rep, nil
}

// mergeRuns returns the run with the median throughput, with the
// throughput of every run and the violations and warnings of all of them.
func mergeRuns(runs []*PipelineResult) PipelineResult {
	if len(runs) == 1 {
		return *runs[0]
	}
	byRate := slices.Clone(runs)
	slices.SortStableFunc(byRate, func(a, b *PipelineResult) int { return cmp.Compare(a.RequestsPerSecond, b.RequestsPerSecond) })
	out := *byRate[(len(byRate)-1)/2]
	out.Violations, out.Warnings, out.RunsRequestsPerSecond = nil, nil, nil
	for i, r := range runs {
		out.RunsRequestsPerSecond = append(out.RunsRequestsPerSecond, r.RequestsPerSecond)
		for _, v := range r.Violations {
			out.Violations = append(out.Violations, fmt.Sprintf("run %d: %s", i+1, v))
		}
		for _, w := range r.Warnings {
			out.Warnings = append(out.Warnings, fmt.Sprintf("run %d: %s", i+1, w))
		}
	}
	return out
}

func newReport(cfg Config, wl *Workload, natsDesc string) *Report {
	model, mem := cpuInfo()
	w := *cfg.Worker
	return &Report{
		Started: time.Now().UTC(),
		Machine: Machine{
			CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(),
			CPUModel: model, MemoryBytes: mem, NATS: natsDesc, Revision: revision(),
		},
		Settings: Settings{
			Requests: wl.Config.Requests, Conferences: wl.Config.Conferences, Skew: wl.Config.Skew,
			BurstMin: wl.Config.BurstMin, BurstMax: wl.Config.BurstMax, MaxIDsPerRequest: wl.Config.MaxIDsPerRequest,
			Pattern: wl.Config.Pattern, Seed: wl.Config.Seed, Latency: Duration(cfg.Latency),
			MaxConcurrent: cfg.MaxConcurrent, PlainHandlers: cfg.PlainHandlers, Pipelines: slices.Clone(cfg.Pipelines),
			Runs: cfg.Runs, Timeout: Duration(cfg.Timeout), Rate: cfg.Rate, Live: cfg.Live,
			Hangup: HangupSettings{
				MaxBatch: w.MaxBatch, Linger: Duration(w.Linger), APIConcurrency: w.APIConcurrency, APIRate: w.APIRate,
				MaxInFlight: w.MaxInFlight, MaxAckPending: w.MaxAckPending, CredentialsBucket: w.CredentialsBucket,
				Workers: cfg.Workers,
			},
		},
		Workload: WorkloadSummary{
			Requests: len(wl.Requests), Bursts: wl.Bursts, IDs: wl.IDs, ConferencesUsed: wl.ConferencesUsed(),
			MaxBatch: wl.Config.MaxBatch, CallBound: wl.Bound, CallFloor: wl.Floor,
		},
	}
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(URL not shown)"
	}
	return u.Redacted()
}

// checkExternal refuses an external server whose streams hold messages,
// unless told to wipe them.
func (e *env) checkExternal(ctx context.Context) error {
	if e.cfg.WipeStreams {
		return nil
	}
	for _, name := range []string{e.topo.RequestStream, e.topo.ResultStream, e.topo.DeadLetterStream} {
		st, err := e.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		if info.State.Msgs > 0 {
			return fmt.Errorf("stream %s on %s holds %d messages; the bench deletes and recreates it (allow that explicitly, or use a server of its own)",
				name, redactURL(e.cfg.NATSURL), info.State.Msgs)
		}
	}
	return nil
}

func (e *env) progress(format string, args ...any) {
	if e.cfg.Progress != nil {
		fmt.Fprintf(e.cfg.Progress, format+"\n", args...)
	}
}

// runPipeline prepares fresh streams and a fresh simulator, publishes the
// backlog, drains it with pipeline p while measuring, stops p and checks
// the outcome.
func (e *env) runPipeline(ctx context.Context, p Pipeline) (*PipelineResult, error) {
	n := len(e.wl.Requests)
	if err := e.resetStreams(ctx, p == PipelineHangup); err != nil {
		return nil, err
	}
	v, err := startVendor(e.wl, e.cfg.Workload.Seed, e.cfg.Latency, e.cfg.MaxConcurrent)
	if err != nil {
		return nil, err
	}
	defer v.close()
	res := &PipelineResult{Pipeline: p, Requests: n}
	if !e.cfg.publishesWhileRunning() {
		e.progress("[%s] publishing a backlog of %s requests", p, group(int64(n)))
		pubStart := time.Now()
		if err := e.publishRequests(ctx, v.tokens, nil); err != nil {
			return nil, err
		}
		res.BacklogPublishSeconds = time.Since(pubStart).Seconds()
		e.progress("[%s] published in %.1f s; draining", p, res.BacklogPublishSeconds)
	}

	nc, err := nats.Connect(e.url, nats.Name("hangup bench "+string(p)))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	var r runner
	switch p {
	case PipelineLimit:
		r = newLimitRunner(nc, e.topo)
	case PipelinePlain:
		r = newPlainRunner(nc, e.topo, v.URL, e.cfg.PlainHandlers)
	case PipelineHangup:
		wcfg := *e.cfg.Worker
		wcfg.NATS.URL, wcfg.APIBaseURL = e.url, v.URL
		if e.cfg.WorkerBinary != "" {
			nc.Close() // the process has connections of its own
			r, err = newProcessRunner(e.cfg.WorkerBinary, wcfg, e.cfg.WorkerLogLevel)
		} else {
			r, err = newHangupRunner(nc, e.url, wcfg, e.cfg.Workers, e.cfg.Logger)
		}
		if err != nil {
			nc.Close()
			return nil, err
		}
	}

	// Start each pipeline from a collected heap, so that the memory measured
	// is its own and not the garbage of the one before.
	runtime.GC()
	debug.FreeOSMemory()
	stopProfile := func() {}
	if p == PipelineHangup && e.cfg.CPUProfile != "" {
		f, err := os.Create(e.cfg.CPUProfile)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("CPU profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			nc.Close()
			return nil, fmt.Errorf("CPU profile: %w", err)
		}
		stopProfile = func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}
	}
	rss := startRSSSampler(50 * time.Millisecond)
	user0, sys0 := cpuTime()
	busy0 := busyCPU()
	start := time.Now()
	startErr := r.start(ctx)
	if e.cfg.publishesWhileRunning() {
		// The time runs from the first publish: the pipeline's start-up
		// (several workers agreeing on their partitions) is not the drain.
		start = time.Now()
	}
	var drained bool
	var stored uint64
	var waitErr error
	if startErr == nil {
		pubErr := e.publishPaced(ctx, p, v.tokens)
		drained, stored, waitErr = e.waitForResults(ctx, p, start)
		if err := <-pubErr; err != nil {
			waitErr = errors.Join(waitErr, err)
		}
	}
	elapsed := time.Since(start)
	user1, sys1 := cpuTime()
	busy1 := busyCPU()
	res.PeakRSSBytes = rss.stop()
	stopProfile()

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 40*time.Second)
	defer cancel()
	stopErr := r.stop(stopCtx)
	if startErr != nil {
		return nil, errors.Join(fmt.Errorf("start: %w", startErr), stopErr)
	}
	if waitErr != nil && ctx.Err() != nil {
		return nil, waitErr
	}
	res.DrainSeconds = elapsed.Seconds()
	res.RequestsPerSecond = float64(stored) / elapsed.Seconds()
	own := (user1 - user0) + (sys1 - sys0)
	res.CPUUserSeconds, res.CPUSystemSeconds = (user1 - user0).Seconds(), (sys1 - sys0).Seconds()
	if pr, ok := r.(*processRunner); ok {
		// The worker's process is part of the pipeline, not of the rest
		// of the machine.
		res.WorkerPeakRSSBytes, res.WorkerCPUSeconds = pr.peakRSS, pr.cpu.Seconds()
		own += pr.cpu
	}
	res.OtherCPUSeconds = max(busy1-busy0-own, 0).Seconds()
	if !drained {
		res.Violations = append(res.Violations, fmt.Sprintf("not drained: %v", waitErr))
	}
	if capacity := elapsed.Seconds() * float64(runtime.NumCPU()); res.OtherCPUSeconds > 0.1*capacity {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the rest of the machine used %.1f s of CPU during the drain (%.0f%% of its %d CPUs): the figures are disturbed",
			res.OtherCPUSeconds, 100*res.OtherCPUSeconds/capacity, runtime.NumCPU()))
	}
	if stopErr != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("stop: %v", stopErr))
	}
	if err := e.check(ctx, p, v, res); err != nil {
		return nil, err
	}
	e.progress("[%s] %s requests in %.2f s: %s requests/s, %s API calls, latency p50 %s, p99 %s, CPU %.1f s (rest of the machine %.1f s)%s",
		p, group(int64(n)), res.DrainSeconds, group(int64(res.RequestsPerSecond+0.5)), group(int64(res.APICalls)),
		ms(res.LatencyP50Ms), ms(res.LatencyP99Ms), own.Seconds(), res.OtherCPUSeconds, violationNote(res))
	return res, nil
}

func violationNote(res *PipelineResult) string {
	if len(res.Violations) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d VIOLATIONS", len(res.Violations))
}

// jsStreamCreateFailed is the server's error code for "error creating
// store for stream".
const jsStreamCreateFailed = 10049

// resetStreams deletes the request, result and dead-letter streams and
// creates them, and the consumers, as the worker would; for the reference
// pipelines, which pull from the shared durable alone, the request stream
// is not partitioned.
func (e *env) resetStreams(ctx context.Context, partitioned bool) error {
	for _, name := range []string{e.topo.RequestStream, e.topo.ResultStream, e.topo.DeadLetterStream} {
		if err := e.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s: %w", name, err)
		}
	}
	// The server removes a deleted stream's files in the background; a
	// stream created again at once may find them still there and fail
	// with "error creating store for stream". Try again a few times.
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		err = topology.Ensure(ctx, e.js, e.topo)
		if err == nil && !partitioned {
			return e.unpartition(ctx)
		}
		if apiErr, ok := errors.AsType[*jetstream.APIError](err); !ok || apiErr.ErrorCode != jsStreamCreateFailed {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

// check reads the outcome streams back and fills in what res says about
// them, the simulator's counters and the latency.
func (e *env) check(ctx context.Context, p Pipeline, v *vendor, res *PipelineResult) error {
	// Acks are asynchronous: give the server a moment to apply them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, err := streamMsgs(ctx, e.js, e.topo.RequestStream)
		if err != nil {
			return err
		}
		res.Unacked = int(left)
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the server's state; nothing to wait on
	}
	if res.Unacked > 0 {
		res.Violations = append(res.Violations, fmt.Sprintf("%d requests still in the request stream after the stop (not acked)", res.Unacked))
	}

	results, err := readResults(ctx, e.js, e.topo.ResultStream)
	if err != nil {
		return err
	}
	dls, err := readDeadLetters(ctx, e.js, e.topo.DeadLetterStream)
	if err != nil {
		return err
	}
	res.Results, res.DeadLetters = len(results), len(dls)
	res.ByStatus = map[string]int{}
	count := make(map[string]int, len(results))
	latencies := make([]time.Duration, 0, len(results))
	snap := &audit.Snapshot{DeadLetters: dls}
	for _, r := range results {
		count[r.RequestID]++
		res.ByStatus[string(r.Status)]++
		if !r.ReceivedAt.IsZero() {
			latencies = append(latencies, r.stored.Sub(r.ReceivedAt))
		}
		snap.Results = append(snap.Results, r.Result)
	}
	for id, c := range count {
		if _, ok := e.sent[id]; !ok {
			res.Unknown += c
		} else if c > 1 {
			res.Duplicates += c - 1
		}
	}
	for id := range e.sent {
		if count[id] == 0 {
			res.Missing++
		}
	}
	if res.Missing > 0 || res.Duplicates > 0 || res.Unknown > 0 {
		res.Violations = append(res.Violations, fmt.Sprintf("exactly one result per request: %d requests without a result, %d extra results, %d results for unknown requests",
			res.Missing, res.Duplicates, res.Unknown))
	}
	// The audit checks the rest of the invariant: partitions of the IDs,
	// dead letters, and, where calls were made, that nobody is reported
	// gone whom the simulator did not remove.
	expect := audit.Expect{Valid: e.sent}
	if p != PipelineLimit {
		expect.Disconnected = v.disconnected(e.wl)
	}
	rep := audit.Check(snap, expect)
	for _, viol := range rep.Violations {
		if !slices.Contains(res.Violations, viol) {
			res.Violations = append(res.Violations, "audit: "+viol)
		}
	}
	if p != PipelineLimit && rep.Disconnected != rep.Requested {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the simulator disconnected %d of the %d participants requested", rep.Disconnected, rep.Requested))
	}
	if ok := res.ByStatus[string(schemas.StatusSucceeded)]; ok != res.Results {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d of %d results did not succeed", res.Results-ok, res.Results))
	}

	slices.Sort(latencies)
	toMs := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.LatencyP50Ms = toMs(percentile(latencies, 0.50))
	res.LatencyP90Ms = toMs(percentile(latencies, 0.90))
	res.LatencyP99Ms = toMs(percentile(latencies, 0.99))
	res.LatencyMaxMs = toMs(percentile(latencies, 1))

	st := v.sim.Stats()
	res.APICallsOK = st.CallsByStatus[http.StatusOK]
	res.FlowControl = st.CallsByStatus[http.StatusTooManyRequests] + v.callCap.Refused()
	res.APICalls = st.Calls + v.callCap.Refused()
	res.PeakAPIConcurrency = v.callCap.Peak()
	res.BusiestSecond = v.callCap.BusiestSecond()
	if res.APICallsOK > 0 {
		res.IDsPerCall = float64(st.Disconnects) / float64(res.APICallsOK)
	}
	return nil
}

// storedResult is a result event and when its stream stored it.
type storedResult struct {
	schemas.Result
	stored time.Time
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/bench"
)

// runBench is `worker bench`: hangup against the broker's limit and a plain
// handler on one generated workload; see internal/bench.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg bench.Config
	var pattern, pipelines, out, logLevel string
	w := &cfg.Workload
	fs := flag.NewFlagSet("worker bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&w.Requests, "requests", 100000, "requests in the backlog")
	fs.IntVar(&w.Conferences, "conferences", 1000, "conferences to spread them over")
	fs.Float64Var(&w.Skew, "skew", 1.1, "Zipf exponent (> 1) of the choice of conference per burst")
	fs.IntVar(&w.BurstMin, "burst-min", 1, "fewest requests in a burst for one conference")
	fs.IntVar(&w.BurstMax, "burst-max", 50, "most requests in a burst for one conference")
	fs.StringVar(&pattern, "pattern", "bursty", "publishing order: bursty (burst after burst) or random")
	fs.Uint64Var(&w.Seed, "seed", 1, "seed of the workload and the simulator")
	fs.DurationVar(&cfg.Latency, "latency", 20*time.Millisecond, "latency of each simulated API call")
	fs.IntVar(&cfg.MaxConcurrent, "max-concurrent", 64, "most hang-up calls the vendor takes at once (429 beyond)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "publish the requests at this steady rate per second while each pipeline runs (0: as a backlog before it)")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "external NATS server (empty: an embedded one); its DISCONNECT_* streams are deleted")
	fs.BoolVar(&cfg.WipeStreams, "wipe-streams", false, "allow deleting streams of an external server that hold messages")
	fs.StringVar(&out, "out", "bench-out", "directory for bench.md, bench.json and bench.png")
	fs.StringVar(&pipelines, "pipelines", "limit,plain,hangup", "comma-separated subset of limit, plain, hangup")
	fs.IntVar(&cfg.PlainHandlers, "plain-handlers", 32, "requests the plain handler works on in parallel")
	fs.BoolVar(&cfg.Live, "live", false, "start each pipeline first, then publish the requests as fast as they go while it runs")
	fs.IntVar(&cfg.Workers, "workers", 1, "hangup workers sharing the work (and the vendor budget)")
	wc := bench.DefaultWorkerConfig()
	cfg.Worker = &wc
	fs.IntVar(&wc.APIConcurrency, "api-concurrency", wc.APIConcurrency, "hangup's vendor budget: most calls in flight over all its workers")
	fs.Float64Var(&wc.APIRate, "api-rate", wc.APIRate, "hangup's vendor budget: most calls per second over all its workers (0: none)")
	fs.IntVar(&wc.ConferenceCalls, "conference-calls", wc.ConferenceCalls, "hangup's most calls in flight for one conference")
	fs.IntVar(&cfg.Runs, "runs", 1, "run each pipeline this often, taking turns, and report the median run")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "longest drain of one pipeline")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile (pprof) of the hangup pipeline to this file")
	fs.StringVar(&logLevel, "log-level", "warn", "worker log level (logs go to stderr)")
	var ownProcess bool
	fs.BoolVar(&ownProcess, "worker-process", false, "run hangup as a `worker run` process of its own and report that process's RSS and CPU")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	var err error
	if w.Pattern, err = bench.ParsePattern(pattern); err != nil {
		return usageError{err}
	}
	if cfg.Pipelines, err = bench.ParsePipelines(pipelines); err != nil {
		return usageError{err}
	}
	log, err := newLogger("console", logLevel, stderr)
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = log.Sync() }()
	cfg.Logger = log.With(zap.String("component", "worker"))
	cfg.WorkerLogLevel = logLevel
	if ownProcess {
		if cfg.WorkerBinary, err = os.Executable(); err != nil {
			return fmt.Errorf("--worker-process: %w", err)
		}
	}
	cfg.Progress = stderr
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}

	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		return err
	}
	if _, err := stdout.Write(md.Bytes()); err != nil {
		return err
	}
	var js, png bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		return err
	}
	if err := rep.WritePNG(&png); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"bench.md": md.Bytes(), "bench.json": js.Bytes(), "bench.png": png.Bytes()} {
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "reports written to %s\n", filepath.Join(out, "bench.{md,json,png}"))
	if !rep.OK() {
		return errors.New("VIOLATION: a pipeline did not give every request exactly one result; see the report")
	}
	return nil
}

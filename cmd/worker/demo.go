package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/demo"
	"github.com/hangup-dev/hangup/internal/worker"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg demo.Config
	var w worker.Config
	var logLevel string
	fs := flag.NewFlagSet("worker demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Requests, "requests", 5000, "requests to publish")
	fs.IntVar(&cfg.Conferences, "conferences", 200, "conferences to spread them over")
	fs.IntVar(&cfg.Participants, "participants", 100, "participants online in each conference")
	fs.IntVar(&cfg.MaxIDsPerRequest, "ids-per-request", 5, "each request names 1 to this many participants")
	fs.IntVar(&cfg.Invalid, "invalid", 20, "malformed messages to mix in")
	fs.Float64Var(&cfg.ErrorRate, "error-rate", 0.05, "share of API calls the simulator fails with HTTP 500")
	fs.DurationVar(&cfg.Latency, "latency", 20*time.Millisecond, "latency of each simulated API call")
	fs.BoolVar(&cfg.Strict, "strict", false, "simulator rejects whole calls naming someone not online")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the load and the faults")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "give up after this long")
	d := runDefaults()
	fs.IntVar(&w.MaxBatch, "max-batch", d.MaxBatch, "most participant IDs per API call")
	fs.DurationVar(&w.Linger, "linger", d.Linger, "how long a batch waits for more IDs")
	fs.IntVar(&w.APIConcurrency, "api-concurrency", d.APIConcurrency, "most API calls in flight")
	fs.IntVar(&w.MaxInFlight, "max-in-flight", d.MaxInFlight, "most requests held by the worker")
	fs.StringVar(&logLevel, "log-level", "warn", "worker log level (logs go to stderr)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	log, err := newLogger("console", logLevel, stderr)
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = log.Sync() }()
	w.RetryInitial = 50 * time.Millisecond
	w.RetryMaxInterval = 2 * time.Second
	cfg.Worker = w
	cfg.Out = stdout
	cfg.Logger = log.With(zap.String("component", "worker"))
	sum, err := demo.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if !sum.Report.OK() {
		return errors.New("the invariant does not hold; see the summary")
	}
	return nil
}

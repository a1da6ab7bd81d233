package bench

import (
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/worker"
)

// Config is one bench run.
type Config struct {
	// Workload shapes the requests; see WorkloadConfig for its defaults.
	// Its MaxBatch defaults to Worker.MaxBatch.
	Workload WorkloadConfig
	// Latency of each simulated API call. Defaults to 20ms.
	Latency time.Duration
	// MaxConcurrent is the most hang-up calls the simulated vendor takes at
	// once; it answers 429 flow control beyond it. Defaults to 64.
	MaxConcurrent int
	// Pipelines to run, in the order of AllPipelines. Defaults to all.
	Pipelines []Pipeline
	// NATSURL is an external NATS server with JetStream; empty starts an
	// embedded one (file storage, loopback TCP). Defaults to "".
	NATSURL string
	// StoreDir is the embedded server's JetStream directory. Defaults to a
	// temporary directory, removed at the end.
	StoreDir string
	// WipeStreams lets the bench delete request, result and dead-letter
	// streams of an external server that hold messages. Defaults to false:
	// such a server is refused.
	WipeStreams bool
	// Rate, when positive, publishes the requests at this steady rate (per
	// second) while each pipeline runs, instead of as a backlog before it
	// starts: latency then shows what a request waits at that load rather
	// than in a queue. Defaults to 0 (a backlog).
	Rate float64
	// PlainHandlers is how many requests the plain handler works on in
	// parallel. Defaults to 32.
	PlainHandlers int
	// Worker is hangup's configuration; the bench sets its NATS URL, API
	// URL, worker ID and provisioning, and turns its HTTP endpoint off.
	// Defaults to DefaultWorkerConfig().
	Worker *worker.Config
	// Live starts each pipeline first and publishes the requests, as fast
	// as they go, while it runs; the time runs from the first publish.
	// Several workers then agree on their partitions before any request
	// arrives, as in a deployment that is up. Defaults to false (a backlog
	// published before the pipeline starts).
	Live bool
	// Workers is how many hangup workers share the work, each with a
	// connection of its own, the vendor budget (Worker.APIConcurrency,
	// Worker.APIRate) being theirs together. Defaults to 1.
	Workers int
	// WorkerBinary, when set, runs the hangup pipeline as `WorkerBinary run`,
	// a process of its own configured like Worker, and reports that
	// process's peak RSS and CPU. Defaults to "" (in the bench's process).
	WorkerBinary string
	// WorkerLogLevel is the log level of that process. Defaults to "warn".
	WorkerLogLevel string
	// Runs is how often each pipeline runs; the pipelines take turns, and
	// the report keeps the run with the median throughput. Defaults to 1.
	Runs int
	// Timeout bounds the drain of one pipeline. Defaults to 10m.
	Timeout time.Duration
	// CPUProfile, when set, is the file that receives a CPU profile of the
	// hangup pipeline (pprof format). Defaults to "".
	CPUProfile string
	// Progress receives progress lines; nil shows none. Defaults to nil.
	Progress io.Writer
	// Logger receives the worker's logs. Defaults to a no-op logger.
	Logger *zap.Logger
}

// DefaultWorkerConfig is the configuration `worker run` has when no flag or
// variable is set: worker.Config's defaults, with stored credentials on and
// provisioning, and without the HTTP endpoint.
func DefaultWorkerConfig() worker.Config {
	c := worker.Config{CredentialsBucket: "meeting_credentials", Provision: true}
	c.SetDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Worker == nil {
		wc := DefaultWorkerConfig()
		c.Worker = &wc
	} else {
		wc := *c.Worker // the caller's copy stays as it was
		c.Worker = &wc
	}
	c.Worker.WorkerID = "bench-hangup"
	c.Worker.Provision = true
	c.Worker.HTTPAddr = ""
	c.Worker.SetDefaults()
	if c.Workload.MaxBatch == 0 {
		c.Workload.MaxBatch = c.Worker.MaxBatch
		if c.Workload.MaxBatch == 0 {
			c.Workload.MaxBatch = 100 // the dispatcher's default
		}
	}
	c.Workload.setDefaults()
	if c.Latency == 0 {
		c.Latency = 20 * time.Millisecond
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 64
	}
	if len(c.Pipelines) == 0 {
		c.Pipelines = AllPipelines
	}
	if c.PlainHandlers == 0 {
		c.PlainHandlers = 32
	}
	if c.Runs == 0 {
		c.Runs = 1
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.WorkerLogLevel == "" {
		c.WorkerLogLevel = "warn"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// publishesWhileRunning reports whether the requests are published while
// the pipeline runs (Rate or Live) rather than as a backlog before it.
func (c *Config) publishesWhileRunning() bool { return c.Rate > 0 || c.Live }

func (c *Config) validate() error {
	errs := []error{c.Workload.validate()}
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("Latency: must not be negative, got %s", c.Latency))
	}
	if c.MaxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("MaxConcurrent: must be at least 1, got %d", c.MaxConcurrent))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("Rate: must not be negative, got %g", c.Rate))
	}
	if c.PlainHandlers < 1 {
		errs = append(errs, fmt.Errorf("PlainHandlers: must be at least 1, got %d", c.PlainHandlers))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("Workers: must be at least 1, got %d", c.Workers))
	}
	if c.Workers > 1 && c.WorkerBinary != "" {
		errs = append(errs, errors.New("Workers: only one worker runs in a process of its own"))
	}
	if c.Runs < 1 {
		errs = append(errs, fmt.Errorf("Runs: must be at least 1, got %d", c.Runs))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("Timeout: must be positive, got %s", c.Timeout))
	}
	seen := map[Pipeline]bool{}
	for _, p := range c.Pipelines {
		switch {
		case p != PipelineLimit && p != PipelinePlain && p != PipelineHangup:
			errs = append(errs, fmt.Errorf("Pipelines: unknown pipeline %q", p))
		case seen[p]:
			errs = append(errs, fmt.Errorf("Pipelines: %q named twice", p))
		}
		seen[p] = true
	}
	if c.CPUProfile != "" && !seen[PipelineHangup] {
		errs = append(errs, errors.New("CPUProfile: profiles the hangup pipeline, which is not selected"))
	}
	if err := c.Worker.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Worker: %w", err))
	}
	return errors.Join(errs...)
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hangup-dev/hangup/internal/worker"
)

// processRunner runs hangup as a process of its own, `<binary> run`, as a
// deployment does: what it measures of that process (peak RSS, CPU) is the
// worker's alone, without the NATS server, the simulator and the
// publisher that share the bench's process.
type processRunner struct {
	binary string
	args   []string
	http   string
	log    *os.File

	cmd     *exec.Cmd
	exited  chan error
	rss     *rssSampler
	cpu0    time.Duration
	peakRSS uint64
	cpu     time.Duration
}

// newProcessRunner prepares `binary run` with cfg's settings as flags.
func newProcessRunner(binary string, cfg worker.Config, logLevel string) (*processRunner, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	t := cfg.Topology
	args := []string{"run",
		"--nats-url", cfg.NATS.URL, "--api-base-url", cfg.APIBaseURL, "--worker-id", cfg.WorkerID,
		"--provision=true", "--http-addr", addr, "--log-format", "console", "--log-level", logLevel,
		"--max-batch", strconv.Itoa(cfg.MaxBatch), "--linger", cfg.Linger.String(),
		"--api-concurrency", strconv.Itoa(cfg.APIConcurrency), "--conference-calls", strconv.Itoa(cfg.ConferenceCalls),
		"--api-rate", strconv.FormatFloat(cfg.APIRate, 'g', -1, 64),
		"--max-in-flight", strconv.Itoa(cfg.MaxInFlight), "--max-ack-pending", strconv.Itoa(cfg.MaxAckPending),
		"--credentials-bucket", cfg.CredentialsBucket, "--token-bucket", cfg.TokenBucket,
		"--request-stream", t.RequestStream, "--result-stream", t.ResultStream, "--dlq-stream", t.DeadLetterStream,
		"--durable", t.Durable,
	}
	return &processRunner{binary: binary, args: args, http: addr, log: os.Stderr}, nil
}

// freeLoopbackAddr returns a loopback address with a port free a moment
// ago, for the worker's HTTP endpoint.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start starts the process and returns once it answers /readyz with 200:
// bound to its consumer.
func (p *processRunner) start(ctx context.Context) error {
	p.cmd = exec.Command(p.binary, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// HANGUP_* settings of the bench's environment would change the worker
	// measured; the flags say everything.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HANGUP_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.binary, err)
	}
	p.exited = make(chan error, 1)
	go func() { p.exited <- p.cmd.Wait() }()
	proc := "/proc/" + strconv.Itoa(p.cmd.Process.Pid)
	p.rss = startRSSSamplerOf(proc, 50*time.Millisecond)
	p.cpu0 = processCPU(proc)
	url := "http://" + p.http + "/readyz"
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("worker process exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop takes the process's measurements, then sends SIGTERM and waits for
// its graceful stop, killing it when ctx ends first.
func (p *processRunner) stop(ctx context.Context) error {
	if p.cmd == nil || p.cmd.Process == nil {
		return nil
	}
	if p.rss != nil {
		proc := "/proc/" + strconv.Itoa(p.cmd.Process.Pid)
		p.cpu = processCPU(proc) - p.cpu0
		p.peakRSS = p.rss.stop()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-p.exited:
		if err != nil {
			return fmt.Errorf("worker process: %w", err)
		}
		return nil
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("worker process did not stop in time; killed")
	}
}

// processCPU is the user and system CPU time of the process whose /proc
// directory is proc, or 0 where there is none. USER_HZ is 100.
func processCPU(proc string) time.Duration {
	data, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in brackets, may hold spaces: count from after it.
	_, rest, ok := strings.Cut(string(data), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * (time.Second / 100)
}

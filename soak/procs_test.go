//go:build unix

package soak

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// binaries are the paths of the three programs under test.
type binaries struct {
	nats, sim, worker string
	// credentialsFlag reports whether `worker run` knows
	// --credentials-bucket, i.e. whether the worker can fall back to the
	// host passwords in the key-value bucket.
	credentialsFlag bool
}

// buildBinaries builds nats-server, the simulator and the worker with
// CGO_ENABLED=0 into dir, in one `go build` so that they share its
// parallelism.
func buildBinaries(t *testing.T, dir string) binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"github.com/nats-io/nats-server/v2", "./cmd/meetingsim", "./cmd/worker")
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	b := binaries{
		nats:   filepath.Join(dir, "nats-server"),
		sim:    filepath.Join(dir, "meetingsim"),
		worker: filepath.Join(dir, "worker"),
	}
	for _, p := range []string{b.nats, b.sim, b.worker} {
		require.FileExists(t, p)
	}
	help, _ := exec.CommandContext(ctx, b.worker, "run", "-h").CombinedOutput()
	b.credentialsFlag = bytes.Contains(help, []byte("credentials-bucket"))
	return b
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	gomod := strings.TrimSpace(string(out))
	require.NotEmpty(t, gomod, "not inside a module")
	require.NotEqual(t, os.DevNull, gomod, "not inside a module")
	return filepath.Dir(gomod)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := pickPort()
	require.NoError(t, err)
	return port
}

// pickPort is freePort for goroutines other than the test's.
func pickPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// proc is one child process, its output going to one log file.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited
	// Set before done is closed.
	exitErr  error
	exitedAt time.Time
	mu       sync.Mutex
	signaled bool // the test stopped or killed it on purpose
}

// procs owns every child process of a test and kills what still runs when
// the test ends, passed or failed.
type procs struct {
	dir string
	mu  sync.Mutex
	all []*proc
}

func newProcs(t *testing.T, dir string) *procs {
	ps := &procs{dir: dir}
	t.Cleanup(ps.killAll)
	return ps
}

// start starts bin with args; stdout and stderr go to <dir>/<name>.log.
func (ps *procs) start(name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(ps.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, started: time.Now(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.exitErr, p.exitedAt = err, time.Now()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	return p, nil
}

// killAll kills every process still running and waits for it.
func (ps *procs) killAll() {
	ps.mu.Lock()
	all := append([]*proc(nil), ps.all...)
	ps.mu.Unlock()
	for _, p := range all {
		p.kill()
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wasSignaled reports whether the test stopped or killed the process.
func (p *proc) wasSignaled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.signaled
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	p.signaled = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	p.signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for a clean exit; after that
// it kills the process and says so.
func (p *proc) stop(timeout time.Duration) error {
	if p.exited() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.exitErr)
	}
	p.signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		if p.exitErr != nil {
			return fmt.Errorf("%s exited after SIGTERM: %w", p.name, p.exitErr)
		}
		return nil
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, timeout)
	}
}

// exitCode is the process's exit code, -1 when a signal ended it, or 0
// while it runs.
func (p *proc) exitCode() int {
	if !p.exited() || p.exitErr == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) []string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{fmt.Sprintf("(open %s: %v)", path, err)}
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = append([]string(nil), lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// logContains reports whether the process's log holds s.
func (p *proc) logContains(s string) bool {
	b, err := os.ReadFile(p.logPath)
	return err == nil && bytes.Contains(b, []byte(s))
}

// poll calls cond every interval until it returns nil or timeout passes;
// it returns cond's last error then.
func poll(ctx context.Context, timeout, interval time.Duration, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}

// natsServer is the nats-server child process; restarting it keeps its
// port and store directory.
type natsServer struct {
	ps       *procs
	bin      string
	port     int
	storeDir string
	starts   int
	cur      *proc
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// start starts the server and waits until JetStream answers.
func (n *natsServer) start(ctx context.Context) error {
	n.starts++
	p, err := n.ps.start(fmt.Sprintf("nats-%d", n.starts), n.bin,
		"-js", "-sd", n.storeDir, "-p", fmt.Sprint(n.port), "-a", "127.0.0.1")
	if err != nil {
		return err
	}
	n.cur = p
	return poll(ctx, 30*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
		if p.exited() {
			return fmt.Errorf("nats-server exited: %v; log: %s", p.exitErr, strings.Join(p.tail(5), "\n"))
		}
		return jetStreamAnswers(ctx, n.url())
	})
}

// jetStreamAnswers reports whether JetStream at urls answers an account
// info request within 2 s: without a meta leader, or while the server
// starts, it does not.
func jetStreamAnswers(ctx context.Context, urls string) error {
	nc, err := nats.Connect(urls, nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// stop stops the server with SIGTERM.
func (n *natsServer) stop() error { return n.cur.stop(30 * time.Second) }

// httpReady polls url until it answers 200.
func httpReady(ctx context.Context, client *http.Client, url string, p *proc, timeout time.Duration) error {
	return poll(ctx, timeout, 50*time.Millisecond, func(ctx context.Context) error {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %v; log:\n%s", p.name, p.exitErr, strings.Join(p.tail(10), "\n"))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
}

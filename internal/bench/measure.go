package bench

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rssSampler tracks the peak resident memory of the process while a
// pipeline runs: it samples VmRSS every interval, and where the kernel lets
// it reset the process's high-water mark (/proc/self/clear_refs), it also
// reads VmHWM at the end, which catches peaks between samples.
type rssSampler struct {
	interval time.Duration
	proc     string // "/proc/self" or "/proc/<pid>"
	hwmReset bool
	stopCh   chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	peak     uint64 // bytes, guarded by mu
}

// startRSSSampler resets the high-water mark if it can and starts
// sampling. stop must be called.
func startRSSSampler(interval time.Duration) *rssSampler {
	return startRSSSamplerOf("/proc/self", interval)
}

// startRSSSamplerOf samples the process whose /proc directory is proc.
func startRSSSamplerOf(proc string, interval time.Duration) *rssSampler {
	s := &rssSampler{interval: interval, proc: proc, stopCh: make(chan struct{}), done: make(chan struct{})}
	// "5" resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
	s.hwmReset = os.WriteFile(proc+"/clear_refs", []byte("5"), 0) == nil
	s.sample()
	go s.loop()
	return s
}

func (s *rssSampler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopCh:
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *rssSampler) sample() {
	st := readProcStatus(s.proc)
	s.mu.Lock()
	s.peak = max(s.peak, st["VmRSS"])
	s.mu.Unlock()
}

// stop ends sampling and returns the peak in bytes (0 where /proc is
// missing).
func (s *rssSampler) stop() uint64 {
	close(s.stopCh)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hwmReset {
		s.peak = max(s.peak, readProcStatus(s.proc)["VmHWM"])
	}
	return s.peak
}

// readProcStatus returns the kB fields of <proc>/status in bytes.
func readProcStatus(proc string) map[string]uint64 {
	data, err := os.ReadFile(proc + "/status")
	if err != nil {
		return map[string]uint64{}
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasSuffix(rest, " kB") {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(rest, " kB")), 10, 64)
		if err == nil {
			out[name] = v * 1024
		}
	}
	return out
}

// busyCPU is the CPU time all processes of the machine have used, from
// /proc/stat (user, nice, system, irq, softirq and steal), or 0 where there
// is no /proc. USER_HZ is 100 on every Linux the bench runs on.
func busyCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		v, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / 100)
}

// revision names the code measured: the VCS revision stamped in the
// binary, else what git says of the working directory (go run stamps
// nothing), with "+modified" when there are uncommitted changes; "" when
// neither knows.
func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, modified := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			if modified {
				rev += "+modified"
			}
			return rev
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "+modified"
	}
	return rev
}

// cpuInfo describes the machine's processor and memory from /proc, where
// there is one.
func cpuInfo() (model string, memBytes uint64) {
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err == nil {
					memBytes = v * 1024
				}
			}
		}
	}
	if model == "" {
		model = runtime.GOARCH
	}
	return model, memBytes
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

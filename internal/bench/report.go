package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is what a run measured.
type Report struct {
	Started    time.Time        `json:"started"`
	Machine    Machine          `json:"machine"`
	Settings   Settings         `json:"settings"`
	Workload   WorkloadSummary  `json:"workload"`
	Pipelines  []PipelineResult `json:"pipelines"`
	Comparison Comparison       `json:"comparison"`
}

// Machine is where the run took place.
type Machine struct {
	CPUs        int    `json:"cpus"`
	GOOS        string `json:"goos"`
	GOARCH      string `json:"goarch"`
	GoVersion   string `json:"goVersion"`
	CPUModel    string `json:"cpuModel,omitempty"`
	MemoryBytes uint64 `json:"memoryBytes,omitempty"`
	// NATS describes the server: embedded or external, and its version.
	NATS string `json:"nats"`
	// Revision is the commit of the code measured, "+modified" when the
	// working tree had uncommitted changes.
	Revision string `json:"revision,omitempty"`
}

// Settings are the run's settings, defaults filled in.
type Settings struct {
	Requests         int      `json:"requests"`
	Conferences      int      `json:"conferences"`
	Skew             float64  `json:"skew"`
	BurstMin         int      `json:"burstMin"`
	BurstMax         int      `json:"burstMax"`
	MaxIDsPerRequest int      `json:"maxIDsPerRequest"`
	Pattern          Pattern  `json:"pattern"`
	Seed             uint64   `json:"seed"`
	Latency          Duration `json:"latency"`
	MaxConcurrent    int      `json:"maxConcurrent"`
	// Rate is the steady publishing rate (requests per second); 0 means
	// the requests were published as a backlog before each pipeline.
	Rate float64 `json:"rate,omitempty"`
	// Live: the requests were published as fast as they go while each
	// pipeline ran.
	Live          bool       `json:"live,omitempty"`
	PlainHandlers int        `json:"plainHandlers"`
	Pipelines     []Pipeline `json:"pipelines"`
	Runs          int        `json:"runs"`
	Timeout       Duration   `json:"timeout"`
	// Hangup is the worker's tuning.
	Hangup HangupSettings `json:"hangup"`
}

// HangupSettings are the worker settings that shape its throughput.
type HangupSettings struct {
	MaxBatch       int      `json:"maxBatch"`
	Linger         Duration `json:"linger"`
	APIConcurrency int      `json:"apiConcurrency"`
	APIRate        float64  `json:"apiRate"`
	MaxInFlight    int      `json:"maxInFlight"`
	MaxAckPending  int      `json:"maxAckPending"`
	// Workers is how many hangup workers shared the work.
	Workers           int    `json:"workers"`
	CredentialsBucket string `json:"credentialsBucket"`
}

// WorkloadSummary describes the generated workload.
type WorkloadSummary struct {
	Requests        int `json:"requests"`
	Bursts          int `json:"bursts"`
	IDs             int `json:"participantIDs"`
	ConferencesUsed int `json:"conferencesUsed"`
	MaxBatch        int `json:"maxBatch"`
	// CallBound is the sum over bursts of ceil(IDs in the burst / MaxBatch);
	// CallFloor the sum over conferences of ceil(IDs / MaxBatch).
	CallBound int `json:"callBound"`
	CallFloor int `json:"callFloor"`
}

// PipelineResult is what one pipeline did.
type PipelineResult struct {
	Pipeline Pipeline `json:"pipeline"`
	Requests int      `json:"requests"`
	// Results counts result messages in the stream; Missing the requests
	// without one, Duplicates the extra results of requests with more than
	// one, Unknown the results for no request published.
	Results     int            `json:"results"`
	Missing     int            `json:"missing"`
	Duplicates  int            `json:"duplicates"`
	Unknown     int            `json:"unknown"`
	ByStatus    map[string]int `json:"byStatus"`
	DeadLetters int            `json:"deadLetters"`
	// Unacked counts requests left in the request stream after the stop.
	Unacked int `json:"unacked"`
	// DrainSeconds runs from the start of the pipeline until the last
	// result was stored.
	DrainSeconds      float64 `json:"drainSeconds"`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	// APICalls counts hang-up calls, refused ones included; APICallsOK
	// those answered 200; FlowControl those answered 429.
	APICalls    int `json:"apiCalls"`
	APICallsOK  int `json:"apiCallsOK"`
	FlowControl int `json:"flowControl"`
	// IDsPerCall is participants disconnected per successful call.
	IDsPerCall float64 `json:"idsPerCall"`
	// PeakAPIConcurrency is the most hang-up calls the vendor saw at once.
	PeakAPIConcurrency int `json:"peakAPIConcurrency"`
	// BusiestSecond is the most hang-up calls the vendor saw arrive in one
	// second of the clock.
	BusiestSecond int `json:"busiestSecond"`
	// Outcome latency: the request's stream timestamp to the result's.
	LatencyP50Ms float64 `json:"latencyP50Ms"`
	LatencyP90Ms float64 `json:"latencyP90Ms"`
	LatencyP99Ms float64 `json:"latencyP99Ms"`
	LatencyMaxMs float64 `json:"latencyMaxMs"`
	// PeakRSSBytes is the process's peak resident memory during the drain
	// (NATS server, simulator and pipeline share the process).
	PeakRSSBytes uint64 `json:"peakRSSBytes"`
	// CPU time of the process during the drain.
	CPUUserSeconds   float64 `json:"cpuUserSeconds"`
	CPUSystemSeconds float64 `json:"cpuSystemSeconds"`
	// OtherCPUSeconds is the CPU time the rest of the machine used during
	// the drain (other processes, and time stolen by the hypervisor): noise
	// when it is large.
	OtherCPUSeconds float64 `json:"otherCPUSeconds"`
	// WorkerPeakRSSBytes and WorkerCPUSeconds are those of the worker's
	// own process during the drain, when hangup ran as one
	// (Config.WorkerBinary).
	WorkerPeakRSSBytes uint64  `json:"workerPeakRSSBytes,omitempty"`
	WorkerCPUSeconds   float64 `json:"workerCPUSeconds,omitempty"`
	// RunsRequestsPerSecond is the throughput of every run when the bench
	// ran each pipeline more than once; the other fields are those of the
	// run with the median throughput.
	RunsRequestsPerSecond []float64 `json:"runsRequestsPerSecond,omitempty"`
	// BacklogPublishSeconds is how long publishing the backlog took.
	BacklogPublishSeconds float64 `json:"backlogPublishSeconds"`
	// Violations make the measurement worthless (a request without
	// exactly one result, an invariant broken); Warnings do not.
	Violations []string `json:"violations,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
}

// Comparison relates hangup to the other pipelines; a field is absent when
// a pipeline it needs did not run.
type Comparison struct {
	// HangupVsLimit and HangupVsPlain are throughput ratios.
	HangupVsLimit *float64 `json:"hangupVsLimit,omitempty"`
	HangupVsPlain *float64 `json:"hangupVsPlain,omitempty"`
	// HangupCallsVsBound is hangup's API calls over the workload's bound.
	HangupCallsVsBound *float64 `json:"hangupCallsVsBound,omitempty"`
}

// OK reports whether no pipeline broke the rules.
func (r *Report) OK() bool {
	for _, p := range r.Pipelines {
		if len(p.Violations) > 0 {
			return false
		}
	}
	return true
}

// Pipeline returns the result of p, or nil.
func (r *Report) Pipeline(p Pipeline) *PipelineResult {
	for i := range r.Pipelines {
		if r.Pipelines[i].Pipeline == p {
			return &r.Pipelines[i]
		}
	}
	return nil
}

// compare fills in Comparison.
func (r *Report) compare() {
	h := r.Pipeline(PipelineHangup)
	if h == nil {
		return
	}
	ratio := func(a, b float64) *float64 {
		if b <= 0 {
			return nil
		}
		v := a / b
		return &v
	}
	if l := r.Pipeline(PipelineLimit); l != nil {
		r.Comparison.HangupVsLimit = ratio(h.RequestsPerSecond, l.RequestsPerSecond)
	}
	if p := r.Pipeline(PipelinePlain); p != nil {
		r.Comparison.HangupVsPlain = ratio(h.RequestsPerSecond, p.RequestsPerSecond)
	}
	r.Comparison.HangupCallsVsBound = ratio(float64(h.APICalls), float64(r.Workload.CallBound))
}

// Duration is a time.Duration that reads and writes JSON strings such as
// "20ms".
type Duration time.Duration

// MarshalText encodes d as time.Duration's String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses what MarshalText writes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// pipelineTitle names a pipeline in tables and charts.
func pipelineTitle(p Pipeline, s Settings) string {
	switch p {
	case PipelineLimit:
		return "limit (publish + PubAck + ack)"
	case PipelinePlain:
		return fmt.Sprintf("plain handler (%d in parallel)", s.PlainHandlers)
	case PipelineHangup:
		return "hangup (defaults)"
	}
	return string(p)
}

// WriteMarkdown writes r as a Markdown section: the setting, one table row
// per pipeline, the API-call bound and the ratios, then any violation.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	s, wl := r.Settings, r.Workload
	fmt.Fprintf(&b, "## hangup bench: %s requests, %s pattern\n\n", group(int64(s.Requests)), s.Pattern)
	fmt.Fprintf(&b, "Workload: %s requests over %s conferences (Zipf s=%g, %s named), %s bursts of %d–%d requests, "+
		"%d–%d fresh participant IDs per request (%s in all), seed %d. Vendor: %s per call, at most %d calls at once. NATS: %s.\n\n",
		group(int64(wl.Requests)), group(int64(s.Conferences)), s.Skew, group(int64(wl.ConferencesUsed)), group(int64(wl.Bursts)),
		s.BurstMin, s.BurstMax, 1, s.MaxIDsPerRequest, group(int64(wl.IDs)), s.Seed, time.Duration(s.Latency), s.MaxConcurrent, r.Machine.NATS)
	how := "Each pipeline drains a backlog published before it starts"
	if s.Rate > 0 {
		how = fmt.Sprintf("The requests are published at a steady %s per second while each pipeline runs", group(int64(s.Rate+0.5)))
	} else if s.Live {
		how = "Each pipeline starts first; the requests are published as fast as they go while it runs, and the time runs from the first publish"
	}
	fmt.Fprintf(&b, "Machine: %s/%s, %d CPUs (%s), %s, %s. %s; "+
		"latency runs from the request's stream timestamp to its result's; RSS and CPU are the whole process's during the drain "+
		"(NATS server, simulator and pipeline in one process).",
		r.Machine.GOOS, r.Machine.GOARCH, r.Machine.CPUs, r.Machine.CPUModel, gib(r.Machine.MemoryBytes), r.Machine.GoVersion, how)
	if r.Machine.Revision != "" {
		fmt.Fprintf(&b, " Code: %s.", r.Machine.Revision)
	}
	if s.Runs > 1 {
		fmt.Fprintf(&b, " Each pipeline ran %d times, taking turns; a row is the run with the median throughput, the range in brackets.", s.Runs)
	}
	b.WriteString("\n\n")
	b.WriteString("| pipeline | requests/s | drain | API calls | IDs/call | latency p50 | p90 | p99 | peak RSS | CPU | results |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, p := range r.Pipelines {
		calls, perCall := group(int64(p.APICalls)), "–"
		if p.APICallsOK > 0 {
			perCall = fmt.Sprintf("%.1f", p.IDsPerCall)
		}
		if p.FlowControl > 0 {
			calls += fmt.Sprintf(" (%s 429)", group(int64(p.FlowControl)))
		}
		check := "exactly one each"
		if len(p.Violations) > 0 {
			check = "**VIOLATED**"
		}
		rate := group(int64(p.RequestsPerSecond + 0.5))
		if len(p.RunsRequestsPerSecond) > 1 {
			lo, hi := slices.Min(p.RunsRequestsPerSecond), slices.Max(p.RunsRequestsPerSecond)
			rate += fmt.Sprintf(" (%s–%s)", group(int64(lo+0.5)), group(int64(hi+0.5)))
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f s | %s | %s | %s | %s | %s | %s | %.1f s | %s/%s, %s |\n",
			pipelineTitle(p.Pipeline, s), rate, p.DrainSeconds, calls, perCall,
			ms(p.LatencyP50Ms), ms(p.LatencyP90Ms), ms(p.LatencyP99Ms), mib(p.PeakRSSBytes),
			p.CPUUserSeconds+p.CPUSystemSeconds, group(int64(p.Results)), group(int64(p.Requests)), check)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "API-call bound (sum over bursts of ⌈IDs in burst / %d⌉): %s; floor (sum over conferences of ⌈IDs / %d⌉): %s.\n",
		wl.MaxBatch, group(int64(wl.CallBound)), wl.MaxBatch, group(int64(wl.CallFloor)))
	c := r.Comparison
	var ratios []string
	if c.HangupCallsVsBound != nil {
		ratios = append(ratios, fmt.Sprintf("hangup's API calls / bound = %.2f", *c.HangupCallsVsBound))
	}
	if c.HangupVsLimit != nil {
		ratios = append(ratios, fmt.Sprintf("hangup / limit throughput = %.2f×", *c.HangupVsLimit))
	}
	if c.HangupVsPlain != nil {
		ratios = append(ratios, fmt.Sprintf("hangup / plain throughput = %.1f×", *c.HangupVsPlain))
	}
	if len(ratios) > 0 {
		fmt.Fprintf(&b, "%s.\n", strings.Join(ratios, "; "))
	}
	for _, p := range r.Pipelines {
		if p.WorkerPeakRSSBytes > 0 {
			fmt.Fprintf(&b, "\nThe %s pipeline ran as a process of its own (`worker run`): its peak RSS was %s and it used %.1f s of CPU during the drain (%.0f µs per request).\n",
				p.Pipeline, mib(p.WorkerPeakRSSBytes), p.WorkerCPUSeconds, 1e6*p.WorkerCPUSeconds/float64(max(p.Requests, 1)))
		}
		for _, v := range p.Violations {
			fmt.Fprintf(&b, "\n**VIOLATION** (%s): %s\n", p.Pipeline, v)
		}
		for _, v := range p.Warnings {
			fmt.Fprintf(&b, "\nWarning (%s): %s\n", p.Pipeline, v)
		}
		if len(p.ByStatus) > 0 && (len(p.ByStatus) > 1 || p.ByStatus["succeeded"] != p.Results) {
			keys := make([]string, 0, len(p.ByStatus))
			for k := range p.ByStatus {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s %d", k, p.ByStatus[k])
			}
			fmt.Fprintf(&b, "\nResults of %s by status: %s.\n", p.Pipeline, strings.Join(parts, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// group formats n with thousands separators: 100000 → "100,000".
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ms formats milliseconds, as seconds from 10 s on.
func ms(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f s", v/1000)
	}
	return fmt.Sprintf("%s ms", group(int64(v+0.5)))
}

func mib(b uint64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func gib(b uint64) string {
	if b == 0 {
		return "memory unknown"
	}
	return fmt.Sprintf("%.0f GiB", float64(b)/(1<<30))
}

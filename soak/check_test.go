//go:build unix

package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/schemas"
)

// checkOutcomes reads the outcome streams and the simulator's records back,
// prints what happened, and checks the invariant, the secrets and the
// statuses.
func checkOutcomes(t *testing.T, p plan, e *env, ch *chaos, ph *phases) {
	t.Helper()
	ctx := context.Background()
	l := e.loader
	snap, err := audit.Read(ctx, e.js, schemas.DefaultResultStream, schemas.DefaultDeadLetterStream)
	require.NoError(t, err)
	ds, err := e.sim.disconnects(ctx)
	require.NoError(t, err)
	st, err := e.sim.state(ctx)
	require.NoError(t, err)
	removed := map[string]map[string]bool{}
	for _, d := range ds {
		if removed[d.ConferenceID] == nil {
			removed[d.ConferenceID] = map[string]bool{}
		}
		removed[d.ConferenceID][d.ParticipantID] = true
	}

	// Every token matches tokenPattern (refreshTokens checks it), so the
	// pattern scan below finds any of them; handing them all to the audit
	// as well costs a substring search per token and message, which is
	// only affordable for smaller runs.
	var passwords []string
	for _, m := range l.meetings {
		if !slices.Contains(passwords, m.password) {
			passwords = append(passwords, m.password)
		}
	}
	secrets := passwords
	if all := l.secrets(); len(all)*len(snap.Raw) <= 20_000_000 {
		secrets = all
	}
	rep := audit.Check(snap, audit.Expect{
		Valid: l.valid, Invalid: l.invalid, Disconnected: removed,
		NeverOnline: l.neverOnline, Secrets: secrets,
	})

	var outcomeLeaks int
	for _, raw := range snap.Raw {
		if tokenPattern.Match(raw) {
			outcomeLeaks++
		}
	}
	logLeaks := scanLogs(e.dir, passwords, l.allTokens)

	var expiredUnasked []string
	failed := failures{byCategory: map[string]int{}, byTokenKind: map[string]int{}}
	reasons := map[string]schemas.DeadLetterReason{}
	for _, d := range snap.DeadLetters {
		if d.Reason != schemas.ReasonInvalidRequest {
			reasons[d.RequestID] = d.Reason
		}
	}
	for _, r := range snap.Results {
		switch r.Status {
		case schemas.StatusExpired:
			if !l.expiring[r.RequestID] {
				expiredUnasked = append(expiredUnasked, r.RequestID)
			}
		case schemas.StatusFailed:
			failed.add(r, reasons[r.RequestID], l.tokenKind[r.RequestID])
		}
	}
	ph.audited = time.Now()
	expectedExits, unexpectedExits := ch.describeExits()
	digest := digestWorkerLogs(e.dir)

	printSummary(t, p, e, ch, ph, rep, st, len(ds), failed, len(expectedExits))
	for _, x := range expectedExits {
		t.Logf("worker exit while NATS restarted (expected): %s", x)
	}
	t.Logf("worker logs: %s", digest)

	// Each group of checks is a subtest, so that a failure names what broke
	// and the other groups are still checked.
	t.Run("invariant", func(t *testing.T) {
		require.Empty(t, rep.Violations, "exactly one result per valid request, one dead letter per failed request and per invalid message, "+
			"no one reported gone whom the simulator did not remove, no one removed who was never requested")
		require.Len(t, snap.Results, len(l.valid), "one result per valid request")
		require.Equal(t, st.Stats.Disconnects, len(ds), "the simulator kept a record of every disconnect")
	})
	t.Run("no secrets", func(t *testing.T) {
		require.Zero(t, outcomeLeaks, "no control token in any outcome event")
		require.Empty(t, logLeaks, "no host password or control token in any log file")
	})
	t.Run("statuses", func(t *testing.T) {
		require.Empty(t, expiredUnasked, "only requests with expiresAt expire")
	})
	t.Run("workers", func(t *testing.T) {
		require.Empty(t, unexpectedExits, "no worker exits unless told to (or while NATS restarts)")
		require.Empty(t, digest.panics, "no worker panics")
	})
	t.Run("valid requests succeed", func(t *testing.T) {
		poison := failed.byCategory[string(schemas.ReasonMaxDeliveries)]
		require.Equal(t, poison, failed.total,
			"no valid request that did not expire fails for any reason but max_deliveries; %s", failed.explain(e.bins.credentialsFlag))
		require.LessOrEqual(t, float64(poison), maxDeliveriesShare*float64(len(l.valid)),
			"at most %.0f%% of the valid requests are dead-lettered for max_deliveries by the worker kills; %s",
			100*maxDeliveriesShare, failed.explain(e.bins.credentialsFlag))
	})
}

// failures sorts the failed results.
type failures struct {
	total       int
	byCategory  map[string]int // dead-letter reason, token failures apart
	byTokenKind map[string]int // the header token the request carried
	examples    []string
}

func (f *failures) add(r schemas.Result, reason schemas.DeadLetterReason, kind string) {
	f.total++
	cat := string(reason)
	if reason == schemas.ReasonRejected && tokenFailure(r) {
		cat = "rejected (control token)"
	}
	f.byCategory[cat]++
	f.byTokenKind[kind]++
	if len(f.examples) < 6 {
		f.examples = append(f.examples, fmt.Sprintf("%s (%s token, attempts %d, HTTP %d %s): %s",
			r.RequestID, kind, r.Attempts, r.HTTPStatus, r.ErrorCode, r.ErrorMessage))
	}
}

// tokenFailure reports whether a failed result was decided by the control
// tokens: none given, or all of them refused.
func tokenFailure(r schemas.Result) bool {
	switch r.ErrorCode {
	case "USG.000000004", "MMC.111070004", "MMC.111072065":
		return true
	}
	return strings.Contains(strings.ToLower(r.ErrorMessage), "token")
}

func (f failures) explain(credentialsFlag bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d failed: by reason %v, by header token %v", f.total, f.byCategory, f.byTokenKind)
	if f.byCategory["rejected (control token)"] > 0 {
		if credentialsFlag {
			b.WriteString("; the worker has --credentials-bucket, yet requests failed on their tokens: its fallback to the host passwords did not save them")
		} else {
			b.WriteString("; the worker has no --credentials-bucket flag yet: requests whose token expired cannot fall back to the host passwords")
		}
	}
	for _, x := range f.examples {
		b.WriteString("\n    " + x)
	}
	return b.String()
}

// scanLogs looks for host passwords and control tokens in every log file.
func scanLogs(dir string, passwords []string, used map[string]bool) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var leaks []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			leaks = append(leaks, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		for _, pw := range passwords {
			if bytes.Contains(data, []byte(pw)) {
				leaks = append(leaks, filepath.Base(f)+": a host password")
				break
			}
		}
		for _, m := range tokenPattern.FindAll(data, 3) {
			leaks = append(leaks, fmt.Sprintf("%s: a control token (one the test used: %v)", filepath.Base(f), used[string(m)]))
		}
	}
	return leaks
}

// logDigest counts the warnings and errors of the worker logs.
type logDigest struct {
	lines   int
	counts  map[string]int    // "level: msg" -> lines
	example map[string]string // "level: msg" -> first line's worker and error
	plain   map[string]int    // lines that are not JSON, such as the exit message
	panics  []string
}

func digestWorkerLogs(dir string) logDigest {
	d := logDigest{counts: map[string]int{}, example: map[string]string{}, plain: map[string]int{}}
	files, _ := filepath.Glob(filepath.Join(dir, "worker-*.log"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			d.lines++
			var entry map[string]any
			if json.Unmarshal(line, &entry) != nil {
				s := string(line)
				if strings.Contains(s, "panic") || strings.HasPrefix(s, "fatal error") || strings.HasPrefix(s, "goroutine ") {
					d.panics = append(d.panics, filepath.Base(f)+": "+s)
				}
				d.plain[truncate(s, 160)]++
				continue
			}
			level, _ := entry["level"].(string)
			if level == "debug" || level == "info" {
				continue
			}
			key := level + ": " + fmt.Sprint(entry["msg"])
			d.counts[key]++
			if _, ok := d.example[key]; !ok {
				d.example[key] = fmt.Sprintf("%s at %v: %s", strings.TrimSuffix(filepath.Base(f), ".log"), entry["ts"], truncate(fmt.Sprint(entry["error"]), 300))
			}
		}
		fh.Close()
	}
	return d
}

func (d logDigest) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines", d.lines)
	keys := slices.Collect(maps.Keys(d.counts))
	sort.Slice(keys, func(i, j int) bool { return d.counts[keys[i]] > d.counts[keys[j]] })
	for _, k := range keys {
		fmt.Fprintf(&b, "\n    %5d × %s\n            first: %s", d.counts[k], k, d.example[k])
	}
	plain := slices.Collect(maps.Keys(d.plain))
	sort.Strings(plain)
	for _, k := range plain {
		fmt.Fprintf(&b, "\n    %5d × (not JSON) %s", d.plain[k], k)
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func printSummary(t *testing.T, p plan, e *env, ch *chaos, ph *phases, rep *audit.Report, st simState, disconnects int, f failures, expectedExits int) {
	t.Helper()
	l := e.loader
	secs := func(a, b time.Time) string { return b.Sub(a).Round(100 * time.Millisecond).String() }
	kinds := map[string]int{}
	for _, k := range l.tokenKind {
		kinds[k]++
	}
	var natsDown []string
	for _, w := range ch.natsDown {
		natsDown = append(natsDown, fmt.Sprintf("%.1fs for %s", w.from.Sub(ch.start).Seconds(), w.to.Sub(w.from).Round(time.Millisecond)))
	}
	lines := []string{
		fmt.Sprintf("plan: %s", p),
		fmt.Sprintf("elapsed: %s total = build %s, start %s, publish %s (+ chaos tail to %s), drain %s, stop %s, audit %s",
			secs(ph.began, ph.audited), secs(ph.began, ph.built), secs(ph.built, ph.started), secs(ph.started, ph.published),
			secs(ph.started, ph.chaosOver), secs(ph.chaosOver, ph.drained), secs(ph.drained, ph.stopped), secs(ph.stopped, ph.audited)),
		fmt.Sprintf("published: %d valid (header token %v), %d of them expiring, %d naming someone never online; %d invalid %v; %d duplicates (%d dropped by the stream as repeats, %d stored again); %d publish retries",
			len(l.valid), kinds, len(l.expiring), l.ghosts, l.invalid, l.invalidKinds, l.dupPublished, l.dupDropped, l.dupPublished-l.dupDropped, l.publishRetries),
		fmt.Sprintf("results: %d %v; outcome latency p50 %s, p99 %s", rep.Results, rep.ByStatus, rep.LatencyMedian.Round(time.Millisecond), rep.LatencyP99.Round(time.Millisecond)),
		fmt.Sprintf("dead letters: %d %v", rep.DeadLetters, rep.ByReason),
		fmt.Sprintf("failed requests: %d by reason %v, by header token %v (worker has --credentials-bucket: %v)", f.total, f.byCategory, f.byTokenKind, e.bins.credentialsFlag),
		fmt.Sprintf("chaos: %d worker kills, %d workers started, %d unprompted exits while NATS restarted; %d NATS restarts (down %v); %d token expiries (%d tokens expired), %d token refreshes; outage %.1fs-%.1fs; strict %.1fs-%.1fs",
			e.fleet.kills, e.fleet.n, expectedExits, ch.natsRestarts, natsDown, ch.tokenExpiries, ch.tokensExpired, l.refreshes,
			ch.outage.from.Sub(ch.start).Seconds(), ch.outage.to.Sub(ch.start).Seconds(), ch.strict.from.Sub(ch.start).Seconds(), ch.strict.to.Sub(ch.start).Seconds()),
		fmt.Sprintf("API: %d hang-up calls by status %v, %d injected faults; %d token requests; %d disconnects of %d distinct participants requested (%d never requested)",
			st.Stats.Calls, st.Stats.CallsByStatus, st.Stats.InjectedFaults, st.Stats.TokenRequests, disconnects, rep.Requested, rep.NotRequested),
	}
	for _, x := range e.fleet.stopErrors {
		lines = append(lines, "worker stopped with SIGTERM at the drain did not stop cleanly: "+x)
	}
	for _, v := range rep.Violations {
		lines = append(lines, "VIOLATION: "+v)
	}
	for _, x := range f.examples {
		lines = append(lines, "failed: "+x)
	}
	t.Logf("soak summary:\n  %s", strings.Join(lines, "\n  "))
	_ = os.WriteFile(filepath.Join(e.dir, "summary.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

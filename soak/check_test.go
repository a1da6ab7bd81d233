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
	// After node kills a stream's leader may still be settling: its reads
	// then find no responder for a moment.
	var snap *audit.Snapshot
	var err error
	for range 30 {
		if snap, err = audit.Read(ctx, e.js, schemas.DefaultResultStream, schemas.DefaultDeadLetterStream); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
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
	rejected, excused := rejectedWithPassword(snap, l, e.credentialed, ch)
	tokens := tokenFigures(p, l, st, ch, snap.Results)
	ph.audited = time.Now()
	expectedExits, unexpectedExits := ch.describeExits()
	digest := digestWorkerLogs(e.dir)

	workersSeen := distinctWorkers(snap.Results)
	printSummary(t, p, e, ch, ph, rep, st, len(ds), failed, len(expectedExits), tokens, workersSeen)
	if len(excused) > 0 {
		t.Logf("%d valid requests rejected whose conference has no valid stored password (expected); the first:\n  %s",
			len(excused), strings.Join(excused[:min(5, len(excused))], "\n  "))
	}
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
	t.Run("no rejected with stored password", func(t *testing.T) {
		if len(rejected) > 0 {
			path := filepath.Join(e.dir, "rejected.txt")
			_ = os.WriteFile(path, []byte(strings.Join(rejected, "\n")+"\n"), 0o600)
			t.Errorf("%d valid requests whose conference has its host password in the credentials bucket were dead-lettered as rejected "+
				"(all in %s); expired, ended (one-live) or wrong header tokens should have been replaced by tokens from the password; the first:\n  %s",
				len(rejected), path, strings.Join(rejected[:min(10, len(rejected))], "\n  "))
		}
	})
	t.Run("one-live tokens", func(t *testing.T) {
		if p.sched.oneLiveTo <= p.sched.oneLiveAt {
			t.Skip("no one-live period in this plan")
		}
		require.Equal(t, ch.tokensBefore, tokens.after, "the token settings are put back after the one-live period")
		require.GreaterOrEqual(t, tokens.peakWorkers, p.sched.crowd,
			"at least %d workers ran at once during the one-live period", p.sched.crowd)
		require.Positive(t, tokens.replacedInWindow, "the one-live rule ended tokens during the one-live period")
		require.LessOrEqual(t, tokens.windowWorkers.max, tokens.bound,
			"the workers' token calls per conference during the one-live period stay within 2×(%d token lives + %d tokens ended + %d kills) + 2, "+
				"however many workers run (up to %d): they share one token per conference", tokens.lives, tokens.endings, tokens.kills, tokens.peakWorkers)
	})
	if p.cluster {
		t.Run("cluster", func(t *testing.T) {
			require.Equal(t, len(p.sched.natsRestarts), ch.natsRestarts, "every node kill was followed by the node's restart")
			require.Empty(t, e.cluster.down(), "every node runs at the end")
			require.GreaterOrEqual(t, workersSeen, clusterSize,
				"the results name at least %d distinct workers", clusterSize)
		})
	}
	t.Run("valid requests succeed", func(t *testing.T) {
		poison := failed.byCategory[string(schemas.ReasonMaxDeliveries)]
		require.Equal(t, poison, failed.total,
			"no valid request that did not expire fails for any reason but max_deliveries; %s", failed.explain(e.bins.credentialsFlag))
		require.LessOrEqual(t, float64(poison), maxDeliveriesShare*float64(len(l.valid)),
			"at most %.0f%% of the valid requests are dead-lettered for max_deliveries by the worker kills; %s",
			100*maxDeliveriesShare, failed.explain(e.bins.credentialsFlag))
	})
}

// rejectedWithPassword describes the valid requests dead-lettered as
// rejected whose conference has its right host password in the
// credentials bucket, and apart from them (excused) those whose conference
// has none. With a stored password a worker can always obtain a token
// that works, so a header token that expired, was ended by a newer one
// (one-live mode) or belongs to another conference is no reason to fail;
// nor is a participant never online (answered as already gone), nor strict
// mode (the worker splits the call). The soak's meetings are never ended
// and its valid requests name only well-formed IDs, so no rejection of a
// valid request with a stored password is legitimate.
func rejectedWithPassword(snap *audit.Snapshot, l *loader, credentialed map[string]bool, ch *chaos) (rejected, excused []string) {
	results := make(map[string]schemas.Result, len(snap.Results))
	for _, r := range snap.Results {
		results[r.RequestID] = r
	}
	for _, d := range snap.DeadLetters {
		if d.Reason != schemas.ReasonRejected {
			continue
		}
		sent, ok := l.valid[d.RequestID]
		if !ok {
			continue // not a valid request: the invariant deals with it
		}
		r := results[d.RequestID]
		periods := ch.during(d.DeadLetteredAt)
		if len(periods) == 0 {
			periods = []string{"no chaos period"}
		}
		line := fmt.Sprintf("%s of %s (%s header token, received at %.1fs) dead-lettered by %s at %.1fs (%s) after %d deliveries: %s; "+
			"result: attempts %d, batches %v, HTTP %d %s %q, API request %s, failed %v",
			d.RequestID, sent.ConferenceID, l.tokenKind[d.RequestID], d.ReceivedAt.Sub(ch.start).Seconds(), d.WorkerID,
			d.DeadLetteredAt.Sub(ch.start).Seconds(), strings.Join(periods, ", "), d.Deliveries, d.Error,
			r.Attempts, r.BatchIDs, r.HTTPStatus, r.ErrorCode, r.ErrorMessage, r.APIRequestID, r.FailedParticipantIDs)
		if credentialed[sent.ConferenceID] {
			rejected = append(rejected, line)
		} else {
			excused = append(excused, line)
		}
	}
	return rejected, excused
}

// tokens are the figures of the token API calls.
type tokens struct {
	conferences int
	// all counts every token call per conference over the run, workers the
	// same less the loader's own successful calls (loaderCalls in all);
	// windowAll and windowWorkers count the same during the one-live
	// period.
	all, workers, windowAll, windowWorkers spread
	loaderCalls                            int
	replaced                               int // tokens the one-live rule ended
	replacedInWindow                       int
	peakWorkers                            int           // most workers running at once in the one-live period
	crowded                                time.Duration // how long at least sched.crowd of them ran
	after                                  tokenConfig   // the token settings after the one-live period
	// latency is the outcome latency of the results of requests stored
	// during the one-live period.
	latency latencies
	// In the one-live period: token lives of the shortest lifetime (each
	// renewed at four fifths of its life), tokens ended for all
	// conferences (the chaos's expiries and the loader's refreshes),
	// worker kills, and from them the bound on the workers' token calls
	// per conference (see workerTokenBound).
	lives, endings, kills, bound int
}

// workerTokenBound bounds the workers' token calls per conference during
// the one-live period. The workers share each conference's token through
// the token bucket and one of them at a time obtains or renews it under a
// lease, so a conference costs one call per token life (the renewal at
// four fifths of it), one per token ended under it (every token is ended
// by each expiry of the chaos and, in one-live mode, by each refresh of the
// loader), and one per lease its holder took to the grave (a kill).
// Doubled (a keep-alive of a token already ended is followed by a call for
// a new one), plus two. None of it grows with the number of workers; a
// fleet whose workers obtained tokens each for itself would, in one-live
// mode, end each other's tokens and go far beyond it.
func workerTokenBound(lives, endings, kills int) int {
	return 2*(lives+endings+kills) + 2
}

// latencies sums up outcome latencies (completed less received).
type latencies struct {
	n             int
	median, p99   time.Duration
	longest       time.Duration
	longestResult string
}

func latenciesOf(results []schemas.Result, keep func(schemas.Result) bool) latencies {
	var ds []time.Duration
	var lat latencies
	for _, r := range results {
		if !keep(r) {
			continue
		}
		d := r.CompletedAt.Sub(r.ReceivedAt)
		ds = append(ds, d)
		if d > lat.longest {
			lat.longest = d
			lat.longestResult = fmt.Sprintf("%s by %s after %d attempts, batches %v", r.RequestID, r.WorkerID, r.Attempts, r.BatchIDs)
		}
	}
	if len(ds) == 0 {
		return lat
	}
	slices.Sort(ds)
	lat.n = len(ds)
	lat.median, lat.p99 = ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)]
	return lat
}

func (l latencies) String() string {
	return fmt.Sprintf("%d results, p50 %s, p99 %s, longest %s (%s)", l.n, l.median.Round(time.Millisecond),
		l.p99.Round(time.Millisecond), l.longest.Round(time.Millisecond), l.longestResult)
}

// spread is the minimum, median and maximum of a count per conference.
type spread struct {
	min, max int
	median   float64
}

func spreadOf(xs []int) spread {
	if len(xs) == 0 {
		return spread{}
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	return spread{min: xs[0], max: xs[n-1], median: float64(xs[(n-1)/2]+xs[n/2]) / 2}
}

func (s spread) String() string { return fmt.Sprintf("%d/%g/%d", s.min, s.median, s.max) }

// tokenFigures sums up the token calls per conference of the whole run and
// of the one-live period.
func tokenFigures(p plan, l *loader, st simState, ch *chaos, results []schemas.Result) tokens {
	l.mu.Lock()
	loaderCalls := maps.Clone(l.tokenCalls)
	l.mu.Unlock()
	from, to := ch.oneLiveSnaps[0], ch.oneLiveSnaps[1]
	var tf tokens
	var all, workers, windowAll, windowWorkers []int
	for _, m := range l.meetings {
		n := st.Stats.TokenCallsByConference[m.id]
		all = append(all, n)
		workers = append(workers, max(0, n-loaderCalls[m.id]))
		w := to.stats.TokenCallsByConference[m.id] - from.stats.TokenCallsByConference[m.id]
		windowAll = append(windowAll, w)
		windowWorkers = append(windowWorkers, max(0, w-(to.loaderCalls[m.id]-from.loaderCalls[m.id])))
		tf.loaderCalls += loaderCalls[m.id]
	}
	tf.conferences = len(l.meetings)
	tf.all, tf.workers = spreadOf(all), spreadOf(workers)
	tf.windowAll, tf.windowWorkers = spreadOf(windowAll), spreadOf(windowWorkers)
	tf.replaced = st.Stats.TokensReplaced
	tf.replacedInWindow = to.stats.TokensReplaced - from.stats.TokensReplaced
	tf.after = ch.tokensAfter
	if !ch.oneLive.from.IsZero() && !ch.oneLive.to.IsZero() {
		tf.peakWorkers, tf.crowded = ch.fleet.overlap(ch.oneLive.from, ch.oneLive.to, p.sched.crowd)
		renewEvery := p.sched.lifetimeMin * 4 / 5
		tf.lives = int((ch.oneLive.to.Sub(ch.oneLive.from) + renewEvery - 1) / renewEvery)
		tf.endings = (to.expiries - from.expiries) + (to.refreshes - from.refreshes)
		tf.kills = to.kills - from.kills
		tf.bound = workerTokenBound(tf.lives, tf.endings, tf.kills)
		tf.latency = latenciesOf(results, func(r schemas.Result) bool {
			return !r.ReceivedAt.Before(ch.oneLive.from) && r.ReceivedAt.Before(ch.oneLive.to)
		})
	}
	return tf
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

func printSummary(t *testing.T, p plan, e *env, ch *chaos, ph *phases, rep *audit.Report, st simState, disconnects int, f failures, expectedExits int, tf tokens, workersSeen int) {
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
		fmt.Sprintf("token calls per conference (min/median/max over %d): %s in all, %s by the workers (all less the loader's %d); "+
			"%d tokens issued, %d kept alive, %d replaced by the one-live rule",
			tf.conferences, tf.all, tf.workers, tf.loaderCalls, st.Stats.TokensIssued, st.Stats.TokensRenewed, tf.replaced),
		fmt.Sprintf("one-live period %.1fs-%.1fs: token lifetimes %v, up to %d workers at once (at least %d for %s); token calls per conference %s in all, "+
			"%s by the workers (bound %d from %d token lives, %d tokens ended, %d kills); %d tokens replaced by the one-live rule; token settings after: %+v; "+
			"outcome latency of the requests stored in it: %s",
			ch.oneLive.from.Sub(ch.start).Seconds(), ch.oneLive.to.Sub(ch.start).Seconds(), ch.lifetimes,
			tf.peakWorkers, p.sched.crowd, tf.crowded.Round(100*time.Millisecond), tf.windowAll, tf.windowWorkers,
			tf.bound, tf.lives, tf.endings, tf.kills, tf.replacedInWindow, tf.after, tf.latency),
	}
	if p.cluster {
		peak, atLeast := e.fleet.overlap(ch.start, ph.chaosOver, clusterSize)
		lines = append(lines, fmt.Sprintf("NATS cluster of %d nodes: node kills [%s]; workers: at least %d wanted, up to %d at once, at least %d started for %s of the %s of chaos; results by %d distinct workers",
			clusterSize, strings.Join(ch.nodeChaos.kills, "; "), clusterSize, peak, clusterSize, atLeast.Round(100*time.Millisecond),
			ph.chaosOver.Sub(ch.start).Round(100*time.Millisecond), workersSeen))
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

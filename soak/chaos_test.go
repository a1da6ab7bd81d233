//go:build unix

package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/internal/meetingsim"
)

// fleet runs the workers: it starts them, kills them, and restarts the
// ones that exit on their own.
type fleet struct {
	ps       *procs
	bin      string
	natsURL  string // comma-separated with -soak.cluster
	apiURL   string
	http     *http.Client
	replicas int // the workers' --replicas

	mu   sync.Mutex
	n    int // workers started so far; names soak-1, soak-2, ...
	live []*worker
	all  []*worker // every worker started, oldest first
	// desired is one or two, switched by the chaos; extra are the workers
	// wanted on top of it while the fleet is crowded (setCrowd).
	desired int
	extra   int
	// floor is the fewest workers wanted at any time (-soak.cluster: three),
	// however the chaos switches desired; 0 means none beyond desired.
	floor int
	// surge is one while a replacement runs ahead of a kill (-soak.cluster,
	// see chaos.surgeKill).
	surge int
	kills int
	exits []workerExit // exits the test did not cause
	// stopErrors are the graceful stops (SIGTERM) that failed.
	stopErrors []string
}

// worker is one worker process and its HTTP endpoint.
type worker struct {
	*proc
	id       string
	httpAddr string
	up       atomic.Bool // it has logged "worker started" (as far as upCount looked)
}

// workerExit records a worker that exited without being told to.
type workerExit struct {
	id      string
	at      time.Time
	uptime  time.Duration
	code    int
	started bool // it had logged "worker started"
	tail    []string
}

// start starts one more worker; it does not wait for it to be ready.
func (f *fleet) start() (*worker, error) {
	f.mu.Lock()
	f.n++
	id := fmt.Sprintf("soak-%d", f.n)
	f.mu.Unlock()
	port, err := pickPort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"run",
		"--nats-url", f.natsURL,
		"--api-base-url", f.apiURL,
		"--http-addr", addr,
		"--ack-wait", "5s",
		"--retry-max-elapsed", "2m",
		// A worker is killed every few seconds here, and each kill counts
		// one delivery for every request it held: with the default limit
		// of 5, a request held through five kills would be dead-lettered as
		// poison. Production sees far fewer crashes; the soak raises the
		// limit rather than measure the kill rate.
		"--max-deliveries", strconv.Itoa(soakMaxDeliveries),
		"--log-format", "json",
		"--worker-id", id,
	}
	if f.replicas > 1 {
		args = append(args, "--replicas", strconv.Itoa(f.replicas))
	}
	p, err := f.ps.start("worker-"+id, f.bin, args...)
	if err != nil {
		return nil, err
	}
	w := &worker{proc: p, id: id, httpAddr: addr}
	f.mu.Lock()
	f.live = append(f.live, w)
	f.all = append(f.all, w)
	f.mu.Unlock()
	return w, nil
}

// ready waits until w answers /readyz.
func (f *fleet) ready(ctx context.Context, w *worker) error {
	return httpReady(ctx, f.http, "http://"+w.httpAddr+"/readyz", w.proc, 60*time.Second)
}

// reap drops the workers that exited and records those the test did not
// stop or kill.
func (f *fleet) reap() {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := f.live[:0]
	for _, w := range f.live {
		if !w.exited() {
			live = append(live, w)
			continue
		}
		if !w.wasSignaled() {
			f.exits = append(f.exits, workerExit{
				id: w.id, at: w.exitedAt, uptime: w.exitedAt.Sub(w.started), code: w.exitCode(),
				started: w.logContains(`"worker started"`), tail: w.tail(6),
			})
		}
	}
	f.live = live
}

// maxUnpromptedExits bounds the restarts of workers that exit on their
// own, so that a worker that cannot start does not loop for the whole run.
const maxUnpromptedExits = 50

// reconcile starts workers until the wanted number runs. It never stops
// any: workers beyond the wanted number run until the chaos kills them.
func (f *fleet) reconcile() error {
	f.reap()
	for {
		f.mu.Lock()
		short := len(f.live) < f.wantedLocked()
		exits := len(f.exits)
		var last []string
		if exits > 0 {
			last = f.exits[exits-1].tail
		}
		f.mu.Unlock()
		if exits > maxUnpromptedExits {
			return fmt.Errorf("%d workers exited on their own; the last: %s", exits, strings.Join(last, " | "))
		}
		if !short {
			return nil
		}
		if _, err := f.start(); err != nil {
			return err
		}
	}
}

// killRandom kills one running worker, or all of them with probability
// pAll, with SIGKILL.
func (f *fleet) killRandom(rng *rand.Rand, pAll float64) int {
	f.reap()
	f.mu.Lock()
	var victims []*worker
	if len(f.live) > 0 {
		if rng.Float64() < pAll {
			victims = append(victims, f.live...)
		} else {
			victims = append(victims, f.live[rng.IntN(len(f.live))])
		}
	}
	f.kills += len(victims)
	f.mu.Unlock()
	for _, w := range victims {
		w.kill()
	}
	f.reap()
	return len(victims)
}

// running returns the workers that run now.
func (f *fleet) running() []*worker {
	f.reap()
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.live)
}

func (f *fleet) setDesired(n int) {
	f.mu.Lock()
	f.desired = n
	f.mu.Unlock()
}

// toggleDesired switches between one and two workers (between n and n+1
// while crowded to n, or held at a floor of n) and returns the new number
// wanted.
func (f *fleet) toggleDesired() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.desired = 3 - f.desired
	return f.wantedLocked()
}

// setFloor makes at least n workers wanted at all times (n or n+1, as
// toggleDesired switches); 0 ends it.
func (f *fleet) setFloor(n int) {
	f.mu.Lock()
	f.floor = n
	f.mu.Unlock()
}

// setCrowd makes at least n workers wanted (n or n+1, as toggleDesired
// switches); 0 or 1 ends the crowd, and the workers beyond one or two
// then run until killed.
func (f *fleet) setCrowd(n int) {
	f.mu.Lock()
	f.extra = max(0, n-1)
	f.mu.Unlock()
}

// wanted is how many workers reconcile keeps running.
func (f *fleet) wanted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wantedLocked()
}

// wantedLocked is wanted with f.mu held: desired, plus the crowd's extra
// workers or those the floor asks for, whichever are more, plus the surge.
func (f *fleet) wantedLocked() int {
	return f.desired + max(f.extra, f.floor-1) + f.surge
}

func (f *fleet) setSurge(n int) {
	f.mu.Lock()
	f.surge = n
	f.mu.Unlock()
}

// upCount counts the running workers that have logged "worker started".
func (f *fleet) upCount() int {
	n := 0
	for _, w := range f.running() {
		if !w.up.Load() {
			if _, ok := startedAt(w.logPath); ok {
				w.up.Store(true)
			}
		}
		if w.up.Load() {
			n++
		}
	}
	return n
}

// killOneExcept kills one running worker other than spare, drawn at
// random, with SIGKILL; it returns it, or nil when there is none.
func (f *fleet) killOneExcept(rng *rand.Rand, spare *worker) *worker {
	f.reap()
	f.mu.Lock()
	var pool []*worker
	for _, w := range f.live {
		if w != spare {
			pool = append(pool, w)
		}
	}
	var victim *worker
	if len(pool) > 0 {
		victim = pool[rng.IntN(len(pool))]
		f.kills++
	}
	f.mu.Unlock()
	if victim != nil {
		victim.kill()
	}
	f.reap()
	return victim
}

// overlap says how many workers ran at once between from and to: the most
// at any moment, and for how long at least k did. A worker runs from its
// "worker started" log line (its consumer pulls) until it exited, or until
// the end of the span if it still runs.
func (f *fleet) overlap(from, to time.Time, k int) (peak int, atLeastK time.Duration) {
	f.mu.Lock()
	all := slices.Clone(f.all)
	f.mu.Unlock()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, w := range all {
		began, ok := startedAt(w.logPath)
		if !ok {
			continue
		}
		end := to
		if w.exited() && w.exitedAt.Before(end) {
			end = w.exitedAt
		}
		if began.Before(from) {
			began = from
		}
		if !began.Before(end) {
			continue
		}
		edges = append(edges, edge{began, 1}, edge{end, -1})
	}
	// Ends before starts at the same instant: a worker that replaces one
	// killed then does not count twice.
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].delta < edges[j].delta
	})
	n := 0
	for i, e := range edges {
		n += e.delta
		peak = max(peak, n)
		if n >= k && i+1 < len(edges) {
			atLeastK += edges[i+1].at.Sub(e.at)
		}
	}
	return peak, atLeastK
}

// startedAt reads when a worker logged "worker started".
func startedAt(logPath string) (time.Time, bool) {
	f, err := os.Open(logPath)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		if !bytes.Contains(sc.Bytes(), []byte(`"msg":"worker started"`)) {
			continue
		}
		var line struct {
			TS time.Time `json:"ts"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.TS.IsZero() {
			return time.Time{}, false
		}
		return line.TS, true
	}
	return time.Time{}, false
}

// schedule is the chaos plan, in offsets from the start of publishing.
type schedule struct {
	length           time.Duration // chaos ends here
	killMin, killMax time.Duration
	pKillAll, pTwo   float64
	tokenEvery       time.Duration
	natsRestarts     []time.Duration
	// surgeKills makes each worker kill wait until a replacement started
	// ahead of it runs (-soak.cluster), so that the workers wanted keep
	// running through the kills.
	surgeKills bool
	// nodeDown is how long a killed node of the cluster (-soak.cluster)
	// stays down before it is restarted; at each of natsRestarts one node
	// is killed instead of the single server being restarted.
	nodeDown           time.Duration
	outageAt           time.Duration
	outageLen          time.Duration
	strictAt, strictTo time.Duration
	// From oneLiveAt to oneLiveTo the simulator keeps only the newest
	// token of each meeting alive, and tokens live lifetimeMin to
	// lifetimeMax; at least crowd workers are wanted meanwhile.
	oneLiveAt, oneLiveTo     time.Duration
	lifetimeMin, lifetimeMax time.Duration
	crowd                    int
}

// chaos carries out a schedule against the fleet, the NATS server (or the
// cluster's nodes) and the simulator.
type chaos struct {
	sched   schedule
	rng     *rand.Rand
	fleet   *fleet
	nats    *natsServer  // nil with -soak.cluster
	cluster *natsCluster // nil without -soak.cluster
	js      jetstream.JetStream
	sim     *simClient
	loader  *loader
	start   time.Time
	// nodeChaos is the state of the node kills with -soak.cluster.
	nodeChaos nodeChaos
	// pending is the worker kill waiting for its replacement to start
	// (surgeKill); nil when none waits.
	pending *pendingKill

	// mu guards the timeline, natsDown, natsRestarts and nodeChaos.kills
	// while run runs: a restarted node's health is awaited in the
	// background (see restartNode).
	mu sync.Mutex

	// Counts and the timeline, read after run returns.
	natsRestarts  int
	natsDown      []window // when the server was down, including its restart
	tokenExpiries int
	tokensExpired int
	outage        window
	strict        window
	timeline      []string

	// The one-live period: when it ran, the token settings before it (put
	// back at its end) and after it, the lifetimes it set, and the counts
	// at its start and end.
	oneLive      window
	tokensBefore tokenConfig
	tokensAfter  tokenConfig
	lifetimes    []time.Duration
	oneLiveSnaps [2]tokenSnap
}

// tokenSnap is what has happened to tokens up to a moment.
type tokenSnap struct {
	stats       meetingsim.Stats // the simulator's counters
	loaderCalls map[string]int   // the loader's successful token calls per conference
	refreshes   int              // the loader's token refreshes
	expiries    int              // the chaos's token expiries
	kills       int              // workers killed
}

// snapTokens takes a tokenSnap.
func (c *chaos) snapTokens(ctx context.Context) (tokenSnap, error) {
	st, err := c.sim.state(ctx)
	if err != nil {
		return tokenSnap{}, err
	}
	ts := tokenSnap{stats: st.Stats, expiries: c.tokenExpiries}
	c.loader.mu.Lock()
	ts.loaderCalls, ts.refreshes = maps.Clone(c.loader.tokenCalls), c.loader.refreshes
	c.loader.mu.Unlock()
	c.fleet.mu.Lock()
	ts.kills = c.fleet.kills
	c.fleet.mu.Unlock()
	return ts, nil
}

// window is a span of time.
type window struct{ from, to time.Time }

// event is one scheduled chaos action.
type event struct {
	at   time.Duration
	name string
	do   func(ctx context.Context) error
}

func (c *chaos) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timeline = append(c.timeline, fmt.Sprintf("%6.1fs ", time.Since(c.start).Seconds())+fmt.Sprintf(format, args...))
}

// events lists the scheduled actions in time order.
func (c *chaos) events() []event {
	s := c.sched
	var evs []event
	for at := s.tokenEvery; at < s.length; at += s.tokenEvery {
		evs = append(evs, event{at, "expire tokens", c.expireTokens})
	}
	for _, at := range s.natsRestarts {
		if c.cluster != nil {
			evs = append(evs, event{at, "kill NATS node", c.killNode}, event{at + s.nodeDown, "restart NATS node", c.restartNode})
			continue
		}
		evs = append(evs, event{at, "restart NATS", c.restartNATS})
	}
	faults := baselineFaults()
	evs = append(evs,
		event{s.outageAt, "outage: 503", func(ctx context.Context) error {
			c.outage.from = time.Now()
			f := faults
			f.Down = true
			return c.sim.setFaults(ctx, f)
		}},
		event{s.outageAt + s.outageLen/2, "outage: dropped connections", func(ctx context.Context) error {
			f := faults
			f.Down, f.DropConnections = true, true
			return c.sim.setFaults(ctx, f)
		}},
		event{s.outageAt + s.outageLen, "outage over", func(ctx context.Context) error {
			c.outage.to = time.Now()
			return c.sim.setFaults(ctx, faults)
		}},
		event{s.strictAt, "strict mode", func(ctx context.Context) error {
			c.strict.from = time.Now()
			return c.sim.setMode(ctx, "strict")
		}},
		event{s.strictTo, "lenient mode", func(ctx context.Context) error {
			c.strict.to = time.Now()
			return c.sim.setMode(ctx, "lenient")
		}},
	)
	if s.oneLiveTo > s.oneLiveAt {
		evs = append(evs,
			event{s.oneLiveAt, "one-live tokens", c.startOneLive},
			event{s.oneLiveAt + (s.oneLiveTo-s.oneLiveAt)/2, "new token lifetime", c.changeLifetime},
			event{s.oneLiveTo, "many tokens", c.endOneLive},
		)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	return evs
}

// run carries out the schedule from c.start until its length or ctx ends,
// killing workers every killMin to killMax and restarting them, and
// restarting workers that exit on their own.
func (c *chaos) run(ctx context.Context) error {
	evs := c.events()
	nextKill := c.sched.killMin + time.Duration(c.rng.Int64N(int64(c.sched.killMax-c.sched.killMin)))
	reconcile := time.NewTicker(200 * time.Millisecond)
	defer reconcile.Stop()
	for {
		at := nextKill
		if len(evs) > 0 && evs[0].at < at {
			at = evs[0].at
		}
		if at >= c.sched.length {
			at = c.sched.length
		}
		timer := time.NewTimer(time.Until(c.start.Add(at)))
		select {
		case <-ctx.Done():
			timer.Stop()
			_ = c.awaitNodeHealth()
			return nil
		case <-reconcile.C:
			timer.Stop()
			if err := c.fleet.reconcile(); err != nil {
				return err
			}
			if err := c.resolveSurge(); err != nil {
				return err
			}
			continue
		case <-timer.C:
		}
		switch {
		case at >= c.sched.length:
			c.note("chaos over")
			c.fleet.setSurge(0)
			c.pending = nil
			return c.awaitNodeHealth()
		case len(evs) > 0 && evs[0].at == at:
			ev := evs[0]
			evs = evs[1:]
			c.note("%s", ev.name)
			if err := ev.do(ctx); err != nil {
				return fmt.Errorf("chaos %q: %w", ev.name, err)
			}
		case c.sched.surgeKills:
			if c.pending == nil {
				if err := c.surgeKill(); err != nil {
					return err
				}
			}
			nextKill = at + c.sched.killMin + time.Duration(c.rng.Int64N(int64(c.sched.killMax-c.sched.killMin)))
		default:
			n := c.fleet.killRandom(c.rng, c.sched.pKillAll)
			if c.rng.Float64() < c.sched.pTwo {
				c.fleet.toggleDesired()
			}
			c.note("SIGKILL %d worker(s); %d wanted", n, c.fleet.wanted())
			if err := c.fleet.reconcile(); err != nil {
				return err
			}
			nextKill = at + c.sched.killMin + time.Duration(c.rng.Int64N(int64(c.sched.killMax-c.sched.killMin)))
		}
	}
}

// expireTokens expires every token; the loader gets new ones after a lag
// of up to a fifth of the expiry period, so some requests carry expired
// tokens.
func (c *chaos) expireTokens(ctx context.Context) error {
	c.loader.tokensExpired(time.Duration(c.rng.Int64N(int64(c.sched.tokenEvery / 5))))
	n, err := c.sim.expireTokens(ctx)
	c.tokenExpiries++
	c.tokensExpired += n
	return err
}

// lifetime draws a token lifetime for the one-live period.
func (c *chaos) lifetime() time.Duration {
	d := c.sched.lifetimeMin
	if span := c.sched.lifetimeMax - c.sched.lifetimeMin; span > 0 {
		d += time.Duration(c.rng.Int64N(int64(span)))
	}
	return d.Round(100 * time.Millisecond)
}

// startOneLive crowds the fleet, then switches the simulator to one live
// token per meeting with short token lifetimes.
func (c *chaos) startOneLive(ctx context.Context) error {
	before, err := c.sim.tokenConfig(ctx)
	if err != nil {
		return err
	}
	c.tokensBefore = before
	c.fleet.setCrowd(c.sched.crowd)
	if err := c.fleet.reconcile(); err != nil {
		return err
	}
	if c.oneLiveSnaps[0], err = c.snapTokens(ctx); err != nil {
		return err
	}
	lt := c.lifetime()
	got, err := c.sim.setTokenConfig(ctx, tokenConfig{Mode: "one-live", Lifetime: lt.String()})
	c.oneLive.from = time.Now()
	if err != nil {
		return err
	}
	if got.Mode != "one-live" {
		return fmt.Errorf("token mode %q after setting one-live", got.Mode)
	}
	c.lifetimes = append(c.lifetimes, lt)
	c.note("token mode %s, lifetime %s (was %s, %s); %d workers wanted", got.Mode, got.Lifetime, before.Mode, before.Lifetime, c.fleet.wanted())
	return nil
}

// changeLifetime gives the tokens issued from now on another short
// lifetime.
func (c *chaos) changeLifetime(ctx context.Context) error {
	lt := c.lifetime()
	got, err := c.sim.setTokenConfig(ctx, tokenConfig{Lifetime: lt.String()})
	if err != nil {
		return err
	}
	c.lifetimes = append(c.lifetimes, lt)
	c.note("token mode %s, lifetime %s", got.Mode, got.Lifetime)
	return nil
}

// endOneLive puts the token settings back as they were before the
// one-live period and ends the crowd.
func (c *chaos) endOneLive(ctx context.Context) error {
	got, err := c.sim.setTokenConfig(ctx, c.tokensBefore)
	c.oneLive.to = time.Now()
	if err != nil {
		return err
	}
	c.tokensAfter = got
	if got != c.tokensBefore {
		return fmt.Errorf("token settings %+v after putting back %+v", got, c.tokensBefore)
	}
	if c.oneLiveSnaps[1], err = c.snapTokens(ctx); err != nil {
		return err
	}
	c.fleet.setCrowd(0)
	c.note("token mode %s, lifetime %s; %d workers wanted", got.Mode, got.Lifetime, c.fleet.wanted())
	return nil
}

// during names the chaos periods that t falls in.
func (c *chaos) during(t time.Time) []string {
	var out []string
	in := func(w window) bool { return !w.from.IsZero() && !t.Before(w.from) && (w.to.IsZero() || t.Before(w.to)) }
	if in(c.strict) {
		out = append(out, "strict mode")
	}
	if in(c.outage) {
		out = append(out, "outage")
	}
	if in(c.oneLive) {
		out = append(out, "one-live tokens")
	}
	if c.nearNATSRestart(t, 5*time.Second) {
		out = append(out, "NATS restart or the 5 s after")
	}
	return out
}

// restartNATS stops the NATS server with SIGTERM and starts it again on
// the same port and store directory.
func (c *chaos) restartNATS(ctx context.Context) error {
	w := window{from: time.Now()}
	if err := c.nats.stop(); err != nil {
		return err
	}
	err := c.nats.start(ctx)
	w.to = time.Now()
	c.natsDown = append(c.natsDown, w)
	c.natsRestarts++
	c.note("NATS back after %s", w.to.Sub(w.from).Round(time.Millisecond))
	return err
}

// nearNATSRestart reports whether t falls in a NATS restart or the grace
// after it, when a starting worker may fail to connect or provision.
func (c *chaos) nearNATSRestart(t time.Time, grace time.Duration) bool {
	for _, w := range c.natsDown {
		if !t.Before(w.from) && t.Before(w.to.Add(grace)) {
			return true
		}
	}
	return false
}

// describeExits splits the unprompted worker exits into the expected ones
// (a worker starting while NATS restarted could not connect) and the rest.
func (c *chaos) describeExits() (expected, unexpected []string) {
	c.fleet.mu.Lock()
	exits := slices.Clone(c.fleet.exits)
	c.fleet.mu.Unlock()
	for _, e := range exits {
		line := fmt.Sprintf("%s exited with code %d at %.1fs after %s (started: %v); log tail:\n    %s",
			e.id, e.code, e.at.Sub(c.start).Seconds(), e.uptime.Round(time.Millisecond), e.started,
			strings.Join(e.tail, "\n    "))
		if !e.started && c.nearNATSRestart(e.at, 5*time.Second) {
			expected = append(expected, line)
			continue
		}
		unexpected = append(unexpected, line)
	}
	return expected, unexpected
}

// sampleMetrics writes, every second until ctx ends, a few gauges of every
// running worker to <dir>/metrics-timeline.txt: how the API rate limit,
// the requests held and the circuit breaker move under the chaos.
func sampleMetrics(ctx context.Context, f *fleet, start time.Time, path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	wanted := []string{"hangup_api_rate_limit", "hangup_requests_held", "hangup_breaker_open"}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for _, w := range f.running() {
			rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+w.httpAddr+"/metrics", nil)
			resp, err := f.http.Do(req)
			if err != nil {
				cancel()
				continue // starting, or just killed
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			fields := []string{fmt.Sprintf("%6.1fs %s", time.Since(start).Seconds(), w.id)}
			for _, line := range strings.Split(string(body), "\n") {
				for _, name := range wanted {
					if strings.HasPrefix(line, name+" ") {
						fields = append(fields, strings.TrimPrefix(line, "hangup_"))
					}
				}
			}
			fmt.Fprintln(out, strings.Join(fields, " "))
		}
	}
}

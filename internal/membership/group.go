package membership

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// DefaultBucket is the default key-value bucket of the members.
const DefaultBucket = "hangup_workers"

// DefaultTTL is how long a worker that stopped beating stays a member.
const DefaultTTL = 6 * time.Second

const (
	memberPrefix = "member."
	throttleKey  = "throttle"
)

// Config sets up a Group.
type Config struct {
	// Name names this worker (its worker ID); a random suffix makes the
	// member key unique even when several workers share a name. Required.
	Name string
	// TTL is how long a worker that stopped beating stays a member. It
	// must equal the bucket's age limit. Defaults to 6s.
	TTL time.Duration
	// Partitions are the names of the partition consumers to share out.
	Partitions []string
	// IdleAfter is how long this worker must hold no request before it
	// tells the others it is idle, so that they take its part of the vendor
	// budget. Defaults to 200ms: the load of a partition comes and goes
	// in bursts, and a budget that stays with an idle worker is lost.
	IdleAfter time.Duration
	// RaiseDelay is how long a larger share of the vendor budget waits
	// before this worker takes it, so that the others have seen the change
	// and taken their cut first. Defaults to 100ms, many times the time a
	// watched key takes to reach the others.
	RaiseDelay time.Duration
}

func (c *Config) setDefaults() {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = 200 * time.Millisecond
	}
	if c.RaiseDelay == 0 {
		c.RaiseDelay = 100 * time.Millisecond
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("Name: must not be empty"))
	}
	if c.TTL < time.Second {
		errs = append(errs, fmt.Errorf("TTL: must be at least 1s, got %s", c.TTL))
	}
	if c.IdleAfter < 0 || c.RaiseDelay < 0 {
		errs = append(errs, fmt.Errorf("IdleAfter, RaiseDelay: must not be negative, got %s and %s", c.IdleAfter, c.RaiseDelay))
	}
	return errors.Join(errs...)
}

// EnsureBucket creates or updates the members bucket: one entry per key,
// entries removed ttl after their last put. It is stored on disk although
// its entries live seconds: a bucket in memory is gone after a restart of
// the NATS server, and the workers would lose sight of each other.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "hangup: live workers and cluster-wide flow control",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("members bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// Group is this worker's membership. Its goroutine beats, lists the
// members and follows the watches; the accessors may be called from any
// goroutine.
type Group struct {
	cfg Config
	kv  jetstream.KeyValue
	log *zap.Logger
	key string

	hooks    Hooks
	throttle chan struct{} // requests to signal flow control

	mu      sync.Mutex
	members []string // sorted member keys, this one included
	owned   []string
	changes chan struct{}

	// Owned by the group's goroutine (and by Start before it begins).
	idle       bool            // this worker told the others it is idle
	idleSince  time.Time       // since when it holds nothing; zero while it holds some
	othersIdle map[string]bool // member keys that said they are idle
	othersLoad map[string]int  // the load each member key said it has
	load       int             // the load this worker last told the others
	loadSaid   time.Time       // when it last told a changed load
	applied    View            // the view last given to Hooks.OnView
	pending    *View           // a raise waiting for RaiseDelay
	raise      *time.Timer     // fires when pending may be applied

	started atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

// Hooks are called on the group's goroutine (and OnView once by Start);
// they must not block.
type Hooks struct {
	// OnThrottle is called when another worker signals flow control.
	OnThrottle func()
	// OnView is called with what this worker knows of the others whenever
	// that changes. A view that raises this worker's share of the vendor
	// budget (as Raises judges) comes RaiseDelay later, so that the others
	// have taken their cut first; any other comes at once.
	OnView func(View)
	// Held is how many requests this worker holds now; nil counts as
	// always busy.
	Held func() int
	// Load is how much work this worker has before it: the requests it
	// holds and those left in the partitions it pulls. The busy workers
	// share the vendor budget by it. Nil shares equally.
	Load func() int
	// Raises reports whether next gives this worker a larger share of the
	// vendor budget than prev; the dispatcher owns how views become
	// shares. Nil applies every view at once.
	Raises func(prev, next View) bool
}

// View is what a worker knows of the deployment: the live workers, itself
// included, how many of the others said they are idle, and whether it
// is idle itself.
type View struct {
	Members    int
	IdleOthers int
	Idle       bool
	// Load is this worker's load as it last told the others, and
	// OthersLoad the sum of the busy others' (each at least 1; one not
	// known yet counts as much as this worker's). Both 0 when the workers
	// share equally.
	Load, OthersLoad int
}

// memberValue is what a member key holds.
type memberValue struct {
	Name string `json:"name"`
	Idle bool   `json:"idle,omitempty"`
	Load int    `json:"load,omitempty"`
}

// parseValue reads a member key; a value it cannot read (an older
// worker's plain name) counts as busy with its load not known.
func parseValue(value []byte) (v memberValue, known bool) {
	if json.Unmarshal(value, &v) != nil {
		return memberValue{}, false
	}
	return v, true
}

// New validates cfg and returns a Group that is not yet started.
func New(cfg Config, kv jetstream.KeyValue, log *zap.Logger, hooks Hooks) (*Group, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("membership config: %w", err)
	}
	if kv == nil {
		return nil, errors.New("membership: key-value bucket is nil")
	}
	if log == nil {
		log = zap.NewNop()
	}
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, err
	}
	g := &Group{
		cfg: cfg, kv: kv, log: log, hooks: hooks,
		key:        memberPrefix + keySafe(cfg.Name) + "." + hex.EncodeToString(suffix[:]),
		throttle:   make(chan struct{}, 1),
		changes:    make(chan struct{}, 1),
		othersIdle: map[string]bool{},
		othersLoad: map[string]int{},
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	g.members = []string{g.key}
	g.owned = Assign(g.members, g.key, cfg.Partitions)
	return g, nil
}

// keySafe keeps what a key-value key may hold.
func keySafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, name)
}

// Key is this worker's member key.
func (g *Group) Key() string { return g.key }

// Start announces this worker and starts the group's goroutine.
func (g *Group) Start(ctx context.Context) error {
	if err := g.beat(ctx); err != nil {
		return fmt.Errorf("announce member: %w", err)
	}
	g.refresh(ctx)
	g.applied = g.view()
	if g.hooks.OnView != nil {
		g.hooks.OnView(g.applied)
	}
	// The watch lives until the group's goroutine ends; its context must
	// end then too, or the client keeps a goroutine waiting on it.
	watchCtx, endWatch := context.WithCancel(context.Background())
	watch, err := g.kv.WatchAll(watchCtx, jetstream.UpdatesOnly())
	if err != nil {
		endWatch()
		return fmt.Errorf("watch members: %w", err)
	}
	g.started.Store(true)
	go g.run(watch, endWatch)
	return nil
}

// Stop ends the goroutine and withdraws this worker, so that the others
// take its partitions at once; it is idempotent.
func (g *Group) Stop(ctx context.Context) error {
	if !g.started.Load() {
		return nil
	}
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
	if err := g.kv.Delete(ctx, g.key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("withdraw member: %w", err)
	}
	return nil
}

// Members is how many workers are live, this one included.
func (g *Group) Members() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.members)
}

// Owned returns the partitions this worker takes now.
func (g *Group) Owned() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.owned)
}

// Changes receives a value whenever the members, and so perhaps Owned,
// changed.
func (g *Group) Changes() <-chan struct{} { return g.changes }

// Throttled asks the other workers to slow down their vendor calls; it
// never blocks.
func (g *Group) Throttled() {
	select {
	case g.throttle <- struct{}{}:
	default:
	}
}

// run beats every TTL/3, lists the members on each beat and on every
// member update, follows whether this worker is idle, gives the changed
// views to Hooks.OnView, and passes on the other workers' throttle
// signals.
func (g *Group) run(watch jetstream.KeyWatcher, endWatch context.CancelFunc) {
	defer close(g.done)
	defer endWatch()
	defer func() { _ = watch.Stop() }()
	beat := time.NewTicker(g.cfg.TTL / 3)
	defer beat.Stop()
	idleCheck := time.NewTicker(idleCheckInterval)
	defer idleCheck.Stop()
	g.raise = time.NewTimer(time.Hour)
	g.raise.Stop()
	defer g.raise.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-beat.C:
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.TTL/3)
			if err := g.beat(ctx); err != nil {
				g.log.Warn("member beat", zap.Error(err))
			}
			g.refresh(ctx)
			cancel()
		case <-idleCheck.C:
			g.checkIdle()
		case <-g.raise.C:
			if g.pending != nil {
				g.apply(*g.pending)
			}
		case entry := <-watch.Updates():
			g.update(entry)
		case <-g.throttle:
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.TTL/3)
			if _, err := g.kv.Put(ctx, throttleKey, []byte(g.key)); err != nil {
				g.log.Warn("flow-control signal", zap.Error(err))
			}
			cancel()
		}
	}
}

// idleCheckInterval is how often the group asks how much the worker holds.
const idleCheckInterval = 50 * time.Millisecond

// beat puts this worker's key, with whether it is idle.
func (g *Group) beat(ctx context.Context) error {
	value, err := json.Marshal(memberValue{Name: g.cfg.Name, Idle: g.idle, Load: g.load})
	if err != nil {
		return err
	}
	_, err = g.kv.Put(ctx, g.key, value)
	return err
}

// checkIdle follows whether this worker holds requests. Busy again, it
// tells the others first and takes its larger share only after
// RaiseDelay; idle, it takes its cut first and then tells them, so that
// the shares never add up to more than the budget while the news spreads.
func (g *Group) checkIdle() {
	g.checkLoad()
	if g.hooks.Held == nil {
		return
	}
	now := time.Now()
	held := g.hooks.Held()
	switch {
	case held > 0:
		g.idleSince = time.Time{}
		if !g.idle {
			return
		}
		g.idle = false
		g.announce()
		g.viewChanged()
	case g.idleSince.IsZero():
		g.idleSince = now
	case !g.idle && now.Sub(g.idleSince) >= g.cfg.IdleAfter:
		g.idle = true
		g.viewChanged()
		g.announce()
	}
}

// loadStep is how much the load must change, as a factor, before the
// others are told; loadEvery is how often at most.
const (
	loadStep  = 1.5
	loadEvery = 250 * time.Millisecond
)

// checkLoad tells the others this worker's load when it changed by a
// step: a lower load (a smaller share) is taken before it is told, a
// higher one after, like idleness.
func (g *Group) checkLoad() {
	if g.hooks.Load == nil || time.Since(g.loadSaid) < loadEvery {
		return
	}
	load := max(g.hooks.Load(), 0)
	lo, hi := float64(max(g.load, 1))/loadStep, float64(max(g.load, 1))*loadStep
	if f := float64(max(load, 1)); f > lo && f < hi {
		return
	}
	g.loadSaid = time.Now()
	cut := load < g.load
	g.load = load
	if cut {
		g.viewChanged()
		g.announce()
		return
	}
	g.announce()
	g.viewChanged()
}

// announce puts this worker's key at once with its idle state.
func (g *Group) announce() {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.TTL/3)
	defer cancel()
	if err := g.beat(ctx); err != nil {
		g.log.Warn("member state", zap.Error(err))
	}
}

// view is what this worker knows now.
func (g *Group) view() View {
	g.mu.Lock()
	members := slices.Clone(g.members)
	g.mu.Unlock()
	v := View{Members: len(members), Idle: g.idle}
	for _, key := range members {
		if key != g.key && g.othersIdle[key] {
			v.IdleOthers++
		}
	}
	if g.hooks.Load == nil {
		return v
	}
	v.Load = max(g.load, 1)
	for _, key := range members {
		if key == g.key || g.othersIdle[key] {
			continue
		}
		if load, ok := g.othersLoad[key]; ok {
			v.OthersLoad += max(load, 1)
		} else {
			v.OthersLoad += v.Load
		}
	}
	return v
}

// viewChanged gives the current view to Hooks.OnView: at once when it
// does not raise this worker's share, after RaiseDelay when it does (a
// later cut overtakes a raise that still waits).
func (g *Group) viewChanged() {
	v := g.view()
	if g.pending == nil && v == g.applied {
		return
	}
	if g.hooks.Raises == nil || !g.hooks.Raises(g.applied, v) {
		g.apply(v)
		return
	}
	if g.pending == nil {
		g.raise.Reset(g.cfg.RaiseDelay)
	}
	g.pending = &v
}

// apply gives v to Hooks.OnView and forgets any raise that waits.
func (g *Group) apply(v View) {
	g.pending = nil
	g.raise.Stop()
	if v == g.applied {
		return
	}
	g.applied = v
	if g.hooks.OnView != nil {
		g.hooks.OnView(v)
	}
}

// update follows one watched change.
func (g *Group) update(entry jetstream.KeyValueEntry) {
	if entry == nil {
		return
	}
	switch key := entry.Key(); {
	case key == throttleKey:
		if entry.Operation() == jetstream.KeyValuePut && string(entry.Value()) != g.key && g.hooks.OnThrottle != nil {
			g.hooks.OnThrottle()
		}
	case key == g.key:
	case strings.HasPrefix(key, memberPrefix):
		put := entry.Operation() == jetstream.KeyValuePut
		var value memberValue
		known := false
		if put {
			value, known = parseValue(entry.Value())
		}
		wasIdle, wasLoad := g.othersIdle[key], g.othersLoad[key]
		if value.Idle {
			g.othersIdle[key] = true
		} else {
			delete(g.othersIdle, key)
		}
		if known {
			g.othersLoad[key] = value.Load
		} else {
			delete(g.othersLoad, key)
		}
		if put && g.isMember(key) {
			if value.Idle != wasIdle || value.Load != wasLoad {
				g.viewChanged()
			}
			return // a beat
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.TTL/3)
		g.refresh(ctx)
		cancel()
	}
}

func (g *Group) isMember(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Contains(g.members, key)
}

// refresh lists the members and takes the partitions that fall to this
// worker; when the listing fails, the last known members stand.
func (g *Group) refresh(ctx context.Context) {
	lister, err := g.kv.ListKeysFiltered(ctx, memberPrefix+">")
	if err != nil {
		g.log.Warn("list members", zap.Error(err))
		return
	}
	members := []string{g.key}
	for key := range lister.Keys() {
		if key != g.key {
			members = append(members, key)
		}
	}
	slices.Sort(members)
	g.mu.Lock()
	same := slices.Equal(members, g.members)
	if !same {
		g.members = members
		g.owned = Assign(members, g.key, g.cfg.Partitions)
	}
	owned := len(g.owned)
	g.mu.Unlock()
	if same {
		return
	}
	for key := range g.othersIdle {
		if !slices.Contains(members, key) {
			delete(g.othersIdle, key)
		}
	}
	for key := range g.othersLoad {
		if !slices.Contains(members, key) {
			delete(g.othersLoad, key)
		}
	}
	g.log.Info("workers changed", zap.Int("workers", len(members)), zap.Int("partitionsOwned", owned))
	if g.started.Load() {
		g.viewChanged()
	}
	select {
	case g.changes <- struct{}{}:
	default:
	}
}

// Assign returns the partitions that fall to self among members: those
// whose index modulo the member count is self's place in the sorted
// members. Every worker that sees the same members computes the same
// split, and the split is even to within one partition.
func Assign(members []string, self string, partitions []string) []string {
	sorted := slices.Sorted(slices.Values(members))
	if !slices.Contains(sorted, self) {
		sorted = append(sorted, self)
		slices.Sort(sorted)
	}
	place := slices.Index(sorted, self)
	var out []string
	for i, p := range partitions {
		if i%len(sorted) == place {
			out = append(out, p)
		}
	}
	return out
}

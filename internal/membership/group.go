package membership

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
}

func (c *Config) setDefaults() {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
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

	started atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

// Hooks are called on the group's goroutine (and OnMembers once by
// Start); they must not block.
type Hooks struct {
	// OnThrottle is called when another worker signals flow control.
	OnThrottle func()
	// OnMembers is called with the number of live workers whenever it
	// changes.
	OnMembers func(n int)
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
		key:      memberPrefix + keySafe(cfg.Name) + "." + hex.EncodeToString(suffix[:]),
		throttle: make(chan struct{}, 1),
		changes:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
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
	if _, err := g.kv.Put(ctx, g.key, []byte(g.cfg.Name)); err != nil {
		return fmt.Errorf("announce member: %w", err)
	}
	g.refresh(ctx)
	if g.hooks.OnMembers != nil {
		g.hooks.OnMembers(g.Members())
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
// member update, and passes on the other workers' throttle signals.
func (g *Group) run(watch jetstream.KeyWatcher, endWatch context.CancelFunc) {
	defer close(g.done)
	defer endWatch()
	defer func() { _ = watch.Stop() }()
	beat := time.NewTicker(g.cfg.TTL / 3)
	defer beat.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-beat.C:
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.TTL/3)
			if _, err := g.kv.Put(ctx, g.key, []byte(g.cfg.Name)); err != nil {
				g.log.Warn("member beat", zap.Error(err))
			}
			g.refresh(ctx)
			cancel()
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

// update follows one watched change.
func (g *Group) update(entry jetstream.KeyValueEntry) {
	if entry == nil {
		return
	}
	switch {
	case entry.Key() == throttleKey:
		if entry.Operation() == jetstream.KeyValuePut && string(entry.Value()) != g.key && g.hooks.OnThrottle != nil {
			g.hooks.OnThrottle()
		}
	case entry.Key() == g.key:
	case strings.HasPrefix(entry.Key(), memberPrefix):
		if entry.Operation() == jetstream.KeyValuePut && g.isMember(entry.Key()) {
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
	g.log.Info("workers changed", zap.Int("workers", len(members)), zap.Int("partitionsOwned", owned))
	if g.hooks.OnMembers != nil {
		g.hooks.OnMembers(len(members))
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

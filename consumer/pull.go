package consumer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/dispatcher"
)

// Assignment names the partition consumers this worker pulls from. The
// server pins each partition consumer to one pulling client, so a
// partition named by two workers' assignments at once (while they
// disagree about the membership) is still worked by one of them.
type Assignment interface {
	// Owned returns the names of the partition consumers to pull from now.
	Owned() []string
	// Changes receives a value whenever Owned may have changed.
	Changes() <-chan struct{}
}

// Static is an Assignment that never changes: a single worker that owns
// every partition, or a test.
type Static []string

// Owned returns the names.
func (s Static) Owned() []string { return s }

// Changes never receives.
func (Static) Changes() <-chan struct{} { return nil }

// puller pulls from one consumer in a goroutine of its own until stop is
// closed; done is closed when it has ended. track counts the messages it
// handed on that are not yet settled (partitions only).
type puller struct {
	name  string
	group string // priority group; empty for the shared durable
	stop  chan struct{}
	done  chan struct{}
	track *tracker
	// pending is what the server said was left to pull after the last
	// message, as counted in Consumer.backlog; owned by the puller's
	// goroutine.
	pending int64
}

// setPending records what is left to pull from p's consumer.
func (c *Consumer) setPending(p *puller, n int64) {
	c.backlog.Add(n - p.pending)
	p.pending = n
}

// Backlog is how many messages are left to pull from the consumers this
// worker pulls from, as the server counted them at the last pull of each.
func (c *Consumer) Backlog() int { return int(c.backlog.Load()) }

// tracker counts the messages of one partition handed on and not yet
// acked or handed back, so that a worker lets go of a partition only once
// it is done with what it pulled from it.
type tracker struct{ wg sync.WaitGroup }

// wrap counts msg until it is settled; a nil tracker counts nothing.
func (t *tracker) wrap(msg jetstream.Msg) dispatcher.Message {
	if t == nil {
		return msg
	}
	t.wg.Add(1)
	return &trackedMsg{msg: msg, t: t}
}

// wait waits until every message counted is settled, or for timeout; it
// reports whether they all were.
func (t *tracker) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// trackedMsg is a message whose ack or hand-back is counted once.
type trackedMsg struct {
	msg  jetstream.Msg
	t    *tracker
	once sync.Once
}

func (m *trackedMsg) settled()          { m.once.Do(m.t.wg.Done) }
func (m *trackedMsg) InProgress() error { return m.msg.InProgress() }

func (m *trackedMsg) Ack() error {
	defer m.settled()
	return m.msg.Ack()
}

func (m *trackedMsg) NakWithDelay(d time.Duration) error {
	defer m.settled()
	return m.msg.NakWithDelay(d)
}

// reservations share the dispatcher's free room among the pullers: a
// fetch asks for no more than is free less what the other pullers' fetches
// may still bring, so that the worker never pulls more than it can take
// at once and no message waits unattended in a client buffer. A quiet
// puller (its last pull brought nothing) yields to busy ones that wait
// for room, or it would take the last free slot again and again for its
// empty long polls.
type reservations struct {
	mu       sync.Mutex
	reserved int
	// busyWaiting counts the busy pullers waiting for room.
	busyWaiting int
	// changed is closed (and replaced) whenever reservations are given
	// back.
	changed chan struct{}
}

func newReservations() *reservations {
	return &reservations{changed: make(chan struct{})}
}

// take reserves up to want of free, less what is reserved already (and,
// for a quiet puller, less one for each busy puller waiting). It returns
// how many it reserved; with 0, a channel that is closed when
// reservations are given back, and the caller must call waited once it
// has waited.
func (r *reservations) take(free, want int, quiet bool) (int, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	avail := free - r.reserved
	if quiet {
		avail -= r.busyWaiting
	}
	if n := min(want, avail); n > 0 {
		r.reserved += n
		return n, nil
	}
	if !quiet {
		r.busyWaiting++
	}
	return 0, r.changed
}

// waited ends a wait that take asked for.
func (r *reservations) waited(quiet bool) {
	if quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busyWaiting--
}

// give hands n reserved back.
func (r *reservations) give(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reserved -= n
	close(r.changed)
	r.changed = make(chan struct{})
}

// supervise runs the puller of the shared durable and one per owned
// partition, follows the assignment, and ends them all when Stop begins.
// It is the only goroutine that starts or stops pullers.
func (c *Consumer) supervise(shared jetstream.Consumer) {
	defer close(c.done)
	var active atomic.Int32
	room := newReservations()
	var releases sync.WaitGroup
	defer releases.Wait()
	pullers := map[string]*puller{}
	start := func(name, group string, cons jetstream.Consumer) {
		p := &puller{name: name, group: group, stop: make(chan struct{}), done: make(chan struct{})}
		if group != "" {
			p.track = &tracker{}
		}
		pullers[name] = p
		go c.run(p, cons, &active, room)
	}
	start(c.cfg.Durable, "", shared)
	var changes <-chan struct{}
	follow := func() {}
	if c.deps.Assignment != nil {
		changes = c.deps.Assignment.Changes()
		follow = func() {
			owned := c.deps.Assignment.Owned()
			// Stop every puller given up at once, then wait for them: each
			// may be in a pull of up to FetchWait.
			var gone []*puller
			for name, p := range pullers {
				if p.group != "" && !slices.Contains(owned, name) {
					close(p.stop)
					gone = append(gone, p)
					delete(pullers, name)
				}
			}
			for _, p := range gone {
				<-p.done
				releases.Go(func() { c.release(p) })
			}
			for _, name := range owned {
				if _, ok := pullers[name]; !ok {
					start(name, c.cfg.PriorityGroup, nil)
					c.log.Info("partition taken", zap.String("consumer", name))
				}
			}
			c.mu.Lock()
			c.owned = slices.Clone(owned)
			c.mu.Unlock()
			c.metrics.partitions.Set(float64(len(owned)))
		}
	}
	follow()
	for {
		select {
		case <-c.stopping:
			for _, p := range pullers {
				close(p.stop)
			}
			for _, p := range pullers {
				<-p.done
			}
			return
		case <-changes:
			follow()
		}
	}
}

// run is one puller's loop: it binds its consumer (when not given),
// then pulls no more messages than the dispatcher can take, its share of
// them when several pullers run, and hands each one on. A puller whose
// last pull brought nothing (a quiet partition, or one pinned to another
// worker) asks for one message only, so that its long poll keeps no room
// from the busy ones.
func (c *Consumer) run(p *puller, cons jetstream.Consumer, active *atomic.Int32, room *reservations) {
	defer close(p.done)
	defer c.setPending(p, 0)
	failures := 0
	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-p.stop:
			return false
		}
	}
	pause := func() bool {
		failures++
		return wait(min(time.Duration(failures)*100*time.Millisecond, 5*time.Second))
	}
	for cons == nil {
		var err error
		ctx, cancel := context.WithTimeout(c.stopCtx, c.cfg.PublishTimeout)
		cons, err = c.deps.JetStream.Consumer(ctx, c.cfg.Stream, p.name)
		cancel()
		if err != nil {
			c.log.Warn("bind partition consumer", zap.String("consumer", p.name), zap.Error(err))
			if !pause() {
				return
			}
		}
	}
	failures = 0
	active.Add(1)
	defer active.Add(-1)
	quiet := false
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		free, err := c.deps.Handler.Capacity(c.stopCtx)
		if err != nil {
			return // stopping, or the dispatcher stopped
		}
		want := 1
		if !quiet {
			want = min(max(1, free/max(1, int(active.Load()))), c.cfg.FetchBatch)
		}
		n, given := room.take(free, want, quiet)
		if n == 0 {
			// The free room is reserved by fetches in flight: wait until
			// one ends (a slot freed meanwhile is seen on the next turn).
			stopped := false
			select {
			case <-given:
			case <-time.After(roomRecheck):
			case <-p.stop:
				stopped = true
			}
			room.waited(quiet)
			if stopped {
				return
			}
			continue
		}
		got, ok := c.pull(cons, p, n)
		room.give(n)
		if ok {
			failures, quiet = 0, got == 0
			continue
		}
		// The server is restarting, the consumer was deleted: do not spin.
		if !pause() {
			return
		}
	}
}

// roomRecheck is how long a puller that found no room waits at most
// before it asks the dispatcher again.
const roomRecheck = 50 * time.Millisecond

// pull fetches up to n messages, waiting at most FetchWait for the first,
// and handles them. It returns how many it handled, and false when the
// pull failed. A partition pinned to another worker is no failure: it
// answers nothing until the pin moves.
func (c *Consumer) pull(cons jetstream.Consumer, p *puller, n int) (int, bool) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.FetchWait)
	defer cancel()
	opts := []jetstream.FetchOpt{jetstream.FetchContext(ctx)}
	if p.group != "" {
		opts = append(opts, jetstream.FetchPriorityGroup(p.group))
	}
	batch, err := cons.Fetch(n, opts...)
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Warn("pull", zap.String("consumer", p.name), zap.Error(err))
		}
		return 0, false
	}
	got := 0
	var last jetstream.Msg
	for msg := range batch.Messages() {
		c.handle(msg, p.track)
		got++
		last = msg
	}
	err = batch.Error()
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoMessages), errors.Is(err, nats.ErrTimeout):
		var left int64
		if last != nil {
			if md, err := last.Metadata(); err == nil {
				left = int64(md.NumPending)
			}
		}
		c.setPending(p, left)
		return got, true
	case errors.Is(err, jetstream.ErrPinIDMismatch):
		// Another worker holds the partition; the next pull asks again.
		c.metrics.pinMismatches.Inc()
		c.setPending(p, 0)
		return got, true
	}
	if c.ctx.Err() == nil {
		c.log.Warn("pull", zap.String("consumer", p.name), zap.Error(err))
	}
	return got, false
}

// release lets go of a partition reassigned to another worker: once the
// messages pulled from it are settled, the pin is lifted, so that the new
// owner starts at once and never works a conference this worker is still
// calling for. If they take longer than the pinned TTL, the server has
// moved the pin already.
func (c *Consumer) release(p *puller) {
	if !p.track.wait(c.cfg.ReleaseWait) {
		c.log.Info("partition released with messages still in hand", zap.String("consumer", p.name))
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PublishTimeout)
	defer cancel()
	stream, err := c.deps.JetStream.Stream(ctx, c.cfg.Stream)
	if err == nil {
		err = stream.UnpinConsumer(ctx, p.name, p.group)
	}
	if err != nil {
		c.log.Info("partition released; unpin failed, the pin lapses on its own", zap.String("consumer", p.name), zap.Error(err))
		return
	}
	c.log.Info("partition released", zap.String("consumer", p.name))
}

// Unpin lets go of the partitions this consumer pulled from last, so that
// other workers take them at once rather than after the pinned TTL. Call
// it after Stop, once the dispatcher has settled every message.
func (c *Consumer) Unpin(ctx context.Context) error {
	c.mu.Lock()
	owned := slices.Clone(c.owned)
	c.mu.Unlock()
	if len(owned) == 0 {
		return nil
	}
	stream, err := c.deps.JetStream.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range owned {
		if err := stream.UnpinConsumer(ctx, name, c.cfg.PriorityGroup); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// publishedSubject is the subject a request was published to: the request
// stream stores <prefix>.<conferenceID> as
// <PartitionPrefix>.<partition>.<conferenceID>.
func (c *Consumer) publishedSubject(stored string) string {
	rest, ok := strings.CutPrefix(stored, c.cfg.PartitionPrefix+".")
	if !ok {
		return stored
	}
	part, conf, ok := strings.Cut(rest, ".")
	if !ok || part == "" || strings.Contains(conf, ".") {
		return stored
	}
	for _, r := range part {
		if r < '0' || r > '9' {
			return stored
		}
	}
	return c.cfg.SubjectPrefix + "." + conf
}

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
}

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

// supervise runs the puller of the shared durable and one per owned
// partition, follows the assignment, and ends them all when Stop begins.
// It is the only goroutine that starts or stops pullers.
func (c *Consumer) supervise(shared jetstream.Consumer) {
	defer close(c.done)
	var active atomic.Int32
	var releases sync.WaitGroup
	defer releases.Wait()
	pullers := map[string]*puller{}
	start := func(name, group string, cons jetstream.Consumer) {
		p := &puller{name: name, group: group, stop: make(chan struct{}), done: make(chan struct{})}
		if group != "" {
			p.track = &tracker{}
		}
		pullers[name] = p
		go c.run(p, cons, &active)
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
// them when several pullers run, and hands each one on.
func (c *Consumer) run(p *puller, cons jetstream.Consumer, active *atomic.Int32) {
	defer close(p.done)
	failures := 0
	pause := func() bool {
		failures++
		select {
		case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 5*time.Second)):
			return true
		case <-p.stop:
			return false
		}
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
		n := min(max(1, free/max(1, int(active.Load()))), c.cfg.FetchBatch)
		if c.pull(cons, p, n) {
			failures = 0
			continue
		}
		// The server is restarting, the consumer was deleted: do not spin.
		if !pause() {
			return
		}
	}
}

// pull fetches up to n messages, waiting at most FetchWait for the first,
// and handles them. It reports false when the pull failed. A partition
// pinned to another worker is no failure: it answers nothing until the
// pin moves.
func (c *Consumer) pull(cons jetstream.Consumer, p *puller, n int) bool {
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
		return false
	}
	for msg := range batch.Messages() {
		c.handle(msg, p.track)
	}
	err = batch.Error()
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoMessages), errors.Is(err, nats.ErrTimeout):
		return true
	case errors.Is(err, jetstream.ErrPinIDMismatch):
		// Another worker holds the partition; the next pull asks again.
		c.metrics.pinMismatches.Inc()
		return true
	}
	if c.ctx.Err() == nil {
		c.log.Warn("pull", zap.String("consumer", p.name), zap.Error(err))
	}
	return false
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

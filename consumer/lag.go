package consumer

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// lagPoller reads the server's view of the consumers this worker pulls
// (the shared durable and the partitions it owns) every LagInterval and
// sets the lag gauges, labelled with the consumer's name. A partition this
// worker no longer owns loses its series at the next poll, so that a sum
// over workers counts each partition once; the shared durable is pulled,
// and so reported, by every worker (dashboards take max by consumer).
// When the poller ends, it deletes every series it set.
type lagPoller struct {
	c *Consumer
	// reported are the consumers whose series are set.
	reported []string
}

// pollLag runs the poller until Stop begins; Stop waits for lagDone.
func (c *Consumer) pollLag() {
	defer close(c.lagDone)
	p := &lagPoller{c: c}
	defer p.forget()
	tick := time.NewTicker(c.cfg.LagInterval)
	defer tick.Stop()
	for {
		p.poll()
		select {
		case <-c.stopping:
			return
		case <-tick.C:
		}
	}
}

// pulled are the consumers this worker pulls now: the shared durable and
// the partitions last taken.
func (c *Consumer) pulled() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string{c.cfg.Durable}, c.owned...)
}

// poll sets the gauges of every consumer pulled and deletes the series of
// those no longer pulled. A consumer whose info cannot be read keeps its
// last values unless it no longer exists.
func (p *lagPoller) poll() {
	c := p.c
	names := c.pulled()
	for _, name := range p.reported {
		if !slices.Contains(names, name) {
			p.delete(name)
		}
	}
	p.reported = slices.DeleteFunc(p.reported, func(name string) bool { return !slices.Contains(names, name) })
	for _, name := range names {
		info, err := p.info(name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			p.delete(name)
			p.reported = slices.DeleteFunc(p.reported, func(n string) bool { return n == name })
			continue
		case err != nil:
			if c.ctx.Err() == nil {
				c.log.Debug("consumer info", zap.String("consumer", name), zap.Error(err))
			}
			continue
		}
		c.metrics.pending.WithLabelValues(name).Set(float64(info.NumPending))
		c.metrics.ackPending.WithLabelValues(name).Set(float64(info.NumAckPending))
		c.metrics.redelivered.WithLabelValues(name).Set(float64(info.NumRedelivered))
		if !slices.Contains(p.reported, name) {
			p.reported = append(p.reported, name)
		}
	}
}

// info reads one consumer's info from the server, within PublishTimeout
// and ending when Stop begins.
func (p *lagPoller) info(name string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(p.c.stopCtx, p.c.cfg.PublishTimeout)
	defer cancel()
	cons, err := p.c.deps.JetStream.Consumer(ctx, p.c.cfg.Stream, name)
	if err != nil {
		return nil, err
	}
	return cons.CachedInfo(), nil
}

func (p *lagPoller) delete(name string) {
	m := p.c.metrics
	m.pending.DeleteLabelValues(name)
	m.ackPending.DeleteLabelValues(name)
	m.redelivered.DeleteLabelValues(name)
}

// forget deletes every series the poller set: a stopped consumer pulls
// nothing.
func (p *lagPoller) forget() {
	for _, name := range p.reported {
		p.delete(name)
	}
	p.reported = nil
}

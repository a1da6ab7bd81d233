package bench

// This file publishes the workload and watches the results arrive.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/schemas"
)

// unpartition removes the request stream's subject transform: requests
// then stay on <prefix>.<conferenceID>, for the shared durable.
func (e *env) unpartition(ctx context.Context) error {
	st, err := e.js.Stream(ctx, e.topo.RequestStream)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	cfg := info.Config
	cfg.SubjectTransform = nil
	_, err = e.js.UpdateStream(ctx, cfg)
	return err
}

// publishPaced publishes the requests at the configured steady rate in a
// goroutine of its own, when a rate is set, and reports its end on the
// channel returned; without a rate the channel reports nil at once.
func (e *env) publishPaced(ctx context.Context, p Pipeline, tokens map[string]string) <-chan error {
	done := make(chan error, 1)
	if !e.cfg.publishesWhileRunning() {
		done <- nil
		return done
	}
	if e.cfg.Rate == 0 {
		e.progress("[%s] publishing %s requests as fast as they go, the pipeline running", p, group(int64(len(e.wl.Requests))))
		go func() { done <- e.publishRequests(ctx, tokens, func(int) error { return ctx.Err() }) }()
		return done
	}
	e.progress("[%s] publishing %s requests at %s per second", p, group(int64(len(e.wl.Requests))), group(int64(e.cfg.Rate+0.5)))
	start := time.Now()
	interval := time.Duration(float64(time.Second) / e.cfg.Rate)
	go func() {
		done <- e.publishRequests(ctx, tokens, func(i int) error {
			// Request i is due at start + i/rate; sleep only when ahead by
			// more than a millisecond, so that timer granularity does not
			// lower the rate.
			if ahead := time.Until(start.Add(time.Duration(i) * interval)); ahead > time.Millisecond {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(ahead):
				}
			}
			return nil
		})
	}()
	return done
}

// publishRequests publishes every request as a producer does: to
// <prefix>.<conferenceID>, Nats-Msg-Id = request ID, the meeting's control
// token in X-Conference-Authorization. pace, when not nil, is called
// before request i and may wait. It returns once the stream has stored
// them all.
func (e *env) publishRequests(ctx context.Context, tokens map[string]string, pace func(i int) error) error {
	var mu sync.Mutex // the handler runs on the connection's goroutine
	var failed int
	var firstErr error
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed++
		if firstErr == nil {
			firstErr = err
		}
	}))
	if err != nil {
		return err
	}
	for i := range e.wl.Requests {
		req := &e.wl.Requests[i]
		msg := nats.NewMsg(e.topo.RequestSubjectPrefix + "." + req.ConferenceID)
		msg.Data = req.Payload
		msg.Header.Set(schemas.MsgIDHeader, req.ID)
		msg.Header.Set(schemas.TokenHeader, tokens[req.ConferenceID])
		if pace != nil {
			if err := pace(i); err != nil {
				return err
			}
		}
		for {
			_, err := js.PublishMsgAsync(msg)
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				select {
				case <-js.PublishAsyncComplete():
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("publish request %s: %w", req.ID, err)
			}
			break
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 {
		return fmt.Errorf("publish requests: %d publishes failed, the first: %w", failed, firstErr)
	}
	if pace != nil {
		return nil // the pipeline consumes them as they come
	}
	got, err := streamMsgs(ctx, e.js, e.topo.RequestStream)
	if err != nil {
		return err
	}
	if got != uint64(len(e.wl.Requests)) {
		return fmt.Errorf("publish requests: stream %s holds %d messages, want %d", e.topo.RequestStream, got, len(e.wl.Requests))
	}
	return nil
}

func streamMsgs(ctx context.Context, js jetstream.JetStream, name string) (uint64, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	return info.State.Msgs, nil
}

// resultPoll is how often the result stream is looked at while a pipeline
// drains: the drain time is known to within it.
const resultPoll = 10 * time.Millisecond

// waitForResults polls the result stream until it holds a result per
// request, printing progress every second, and returns how many it holds.
// It reports false with the reason when the timeout or ctx ends first.
func (e *env) waitForResults(ctx context.Context, p Pipeline, start time.Time) (bool, uint64, error) {
	n := uint64(len(e.wl.Requests))
	deadline := start.Add(e.cfg.Timeout)
	tick := time.NewTicker(resultPoll)
	defer tick.Stop()
	lastShown, lastCount := start, uint64(0)
	for {
		got, err := streamMsgs(ctx, e.js, e.topo.ResultStream)
		if err != nil && ctx.Err() == nil {
			return false, got, err
		}
		if got >= n {
			return true, got, nil
		}
		now := time.Now()
		if now.Sub(lastShown) >= time.Second {
			rate := float64(got-lastCount) / now.Sub(lastShown).Seconds()
			e.progress("[%s] %s/%s results, %s/s, %.0f s", p, group(int64(got)), group(int64(n)), group(int64(rate+0.5)), now.Sub(start).Seconds())
			lastShown, lastCount = now, got
		}
		if now.After(deadline) {
			return false, got, fmt.Errorf("timed out after %s with %d of %d results", e.cfg.Timeout, got, n)
		}
		select {
		case <-ctx.Done():
			return false, got, ctx.Err()
		case <-tick.C:
		}
	}
}

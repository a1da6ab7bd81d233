package outcome

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Retry runs fn, an outcome publish or an ack, until it succeeds, three
// attempt timeouts have passed, or ctx ends. Each attempt gets its own
// timeout; the waits between attempts back off from 100ms to 2s. A
// JetStream outage of a few seconds (a server restart, a leader election)
// is ridden out; a longer one returns the error, and the caller leaves the
// message unacked for redelivery.
func Retry(ctx context.Context, attemptTimeout time.Duration, fn func(ctx context.Context) error) error {
	// The first attempt is the one that almost always succeeds: it needs
	// no backoff.
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	err := fn(actx)
	cancel()
	if err == nil || ctx.Err() != nil {
		return err
	}
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithMaxElapsedTime(3*attemptTimeout),
	)
	return backoff.Retry(func() error {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		err := fn(actx)
		if err != nil && ctx.Err() != nil {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(bo, ctx))
}

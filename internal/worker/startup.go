package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/natsconn"
)

// startBackoff shapes the waits between the attempts of a start-up step:
// exponential from initial, capped at max, each wait drawn at random
// within half of it either way so that workers started together do not
// retry together.
var startBackoff = struct{ initial, max time.Duration }{250 * time.Millisecond, 5 * time.Second}

// attemptTimeout bounds one attempt of a start-up step, whatever the
// deadline of Start's context: a request lost in a leader election must
// not hold the step until that deadline.
const attemptTimeout = 10 * time.Second

func newStartBackOff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = startBackoff.initial
	b.MaxInterval = startBackoff.max
	b.RandomizationFactor = 0.5
	b.Multiplier = 2
	b.MaxElapsedTime = 0 // never give up: the process is stopped instead
	b.Reset()
	return b
}

// retryLog decides which failed attempts of a step are logged: the first
// three, then one in ten, and at least one a minute.
type retryLog struct{ last time.Time }

func (l *retryLog) due(attempt int, now time.Time) bool {
	if attempt <= 3 || attempt%10 == 0 || now.Sub(l.last) >= time.Minute {
		l.last = now
		return true
	}
	return false
}

// configError marks an error that retrying cannot cure: the settings, the
// credentials or what exists in NATS must change first.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// retryStep runs the start-up step fn, each attempt within
// attemptTimeout, until it succeeds, fails in a way retrying cannot cure
// (see transient), or ctx ends. Failed attempts are
// logged with the step's name at a falling rate. nc, when not nil, is
// asked whether the server refused the credentials a subject: requests it
// refuses only time out.
func (w *Worker) retryStep(ctx context.Context, nc *nats.Conn, step string, fn func(context.Context) error) error {
	b := newStartBackOff()
	var logs retryLog
	for attempt := 1; ; attempt++ {
		attemptCtx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := fn(attemptCtx)
		cancel()
		if err == nil {
			if attempt > 1 {
				w.log.Info("start-up step done", zap.String("step", step), zap.Int("attempts", attempt))
			}
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return stepEnded(step, ctxErr, err)
		}
		if nc != nil && errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
			return fmt.Errorf("%s: %w (the NATS user lacks a permission the worker needs: %v)", step, err, nc.LastError())
		}
		if !transient(err) {
			return fmt.Errorf("%s: %w", step, err)
		}
		wait := b.NextBackOff()
		if logs.due(attempt, time.Now()) {
			w.log.Warn("start-up step failed; retrying", zap.String("step", step), zap.Int("attempt", attempt),
				zap.Duration("retryIn", wait), zap.Error(err))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return stepEnded(step, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// stepEnded is the error of a step whose context ended: it wraps the
// context's error, and names the last failure when that was another.
func stepEnded(step string, ctxErr, last error) error {
	if errors.Is(last, ctxErr) {
		return fmt.Errorf("%s: %w", step, last)
	}
	return fmt.Errorf("%s: %w (last error: %v)", step, ctxErr, last)
}

// permanentCodes are JetStream API errors that retrying cannot cure
// although their HTTP-like code says the server is at fault or busy.
var permanentCodes = map[jetstream.ErrorCode]bool{
	10052: true, // invalid stream configuration: an existing stream cannot take ours
	10074: true, // replicas > 1 on a server that is not clustered
	10010: true, // clustering required
	10036: true, // not supported in clustered mode
	10039: true, // JetStream not enabled for the account
}

// transientCodes are JetStream API errors with a "bad request" code that
// clear up by themselves: placement while peers are down or the cluster
// changes, and races between workers provisioning at once.
var transientCodes = map[jetstream.ErrorCode]bool{
	10005: true, // no suitable peers for placement (a node is down)
	10013: true, // consumer name already in use (another worker is creating it)
	10058: true, // stream name in use with another configuration (another worker created it a moment ago)
	10105: true, // consumer already exists
	10124: true, // stream move in progress
	10148: true, // consumer already exists
	10149: true, // consumer does not exist (yet)
	10202: true, // cluster member change in progress
	10226: true, // stream reconfiguration in progress
}

// permanentClient are errors of the NATS client about what the server
// offers or what was asked of it: another try gets the same answer.
var permanentClient = []error{
	jetstream.ErrJetStreamNotEnabledForAccount,
	jetstream.ErrStreamSubjectTransformNotSupported,
	jetstream.ErrLimitMarkerTTLNotSupported,
	jetstream.ErrInvalidBucketName,
	jetstream.ErrInvalidStreamName,
	jetstream.ErrInvalidConsumerName,
	jetstream.ErrBadBucket,
	jetstream.ErrHistoryTooLarge,
	nats.ErrPermissionViolation,
}

// transient reports whether a failed start-up step may succeed when tried
// again. Classified once, here: an error of NATS or of the network is
// transient (timeouts, no responders, no leader or not enough peers yet,
// refused connections, a stream or bucket another worker has not created
// yet) unless it says the configuration is wrong (refused credentials or
// certificates, a stream that exists with a configuration ours cannot
// replace, a JetStream API error about the request itself). Errors that
// do not come from NATS are the worker's own checks of its configuration
// or of what it found, and are not transient.
func transient(err error) bool {
	var cfgErr *configError
	if errors.As(err, &cfgErr) || natsconn.IsAuthError(err) {
		return false
	}
	for _, p := range permanentClient {
		if errors.Is(err, p) {
			return false
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch {
		case permanentCodes[apiErr.ErrorCode]:
			return false
		case transientCodes[apiErr.ErrorCode]:
			return true
		case apiErr.Code == 400 || apiErr.Code == 403:
			return false
		}
		return true // 404 (not yet there), 408, 429, 5xx
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	// Every error of the NATS client says so ("nats: timeout", "nats: no
	// responders available for request", "nats: bucket not found", ...).
	return strings.Contains(err.Error(), "nats: ")
}

// connectStep dials NATS until it answers. A refusal (credentials,
// certificates) stops the start when a second attempt right after it is
// refused too: a server going away in the middle of a handshake can look
// like one.
func (w *Worker) connectStep(ctx context.Context) (*nats.Conn, error) {
	var nc *nats.Conn
	err := w.retryStep(ctx, nil, "connect to NATS at "+natsconn.RedactURL(w.cfg.NATS.URL), func(context.Context) error {
		c, err := w.connect()
		var refused *natsconn.RefusedError
		if errors.As(err, &refused) {
			if c, err = w.connect(); errors.As(err, &refused) {
				return &configError{err}
			}
		}
		nc = c
		return err
	})
	return nc, err
}

// ledgerStep names the step that provisions (or opens) the streams and
// the deferral bucket.
func (w *Worker) ledgerStep() string {
	if w.cfg.Provision {
		return "provision the streams, the consumers and the deferral bucket"
	}
	return "open the deferral bucket"
}

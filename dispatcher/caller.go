package dispatcher

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/meetingclient"
)

// HangUpper disconnects participants; *meetingclient.Client satisfies it.
type HangUpper interface {
	HangUp(ctx context.Context, conferenceID, token string, participantIDs []string) (meetingclient.Response, error)
}

// Roster tells who is online in a meeting; *meetingclient.Client
// satisfies it. When the API client has it, a batch rejected as a whole
// because someone is not online is split by the roster first.
type Roster interface {
	RealTimeInfo(ctx context.Context, conferenceID, token string) (*meetingclient.MeetingInfo, error)
}

// TokenSource supplies control tokens for conferences whose requests
// carry none that works, for example from stored host credentials. It may
// be nil. Its errors decide what happens to the requests: one wrapping
// ErrNoCredentials, or a *meetingclient.APIError of a permanent class
// (a wrong password), fails them; a retryable APIError (the meeting has not
// started, the API is down) or any other error (its store is unreachable)
// hands them back for later.
type TokenSource interface {
	// Token returns a control token for the conference.
	Token(ctx context.Context, conferenceID string) (string, error)
	// Invalidate tells the source that the vendor rejected token.
	Invalidate(conferenceID, token string)
}

// ErrNoToken means no control token was available for a conference.
var ErrNoToken = errors.New("no control token: no usable X-Conference-Authorization token (none sent, or each rejected by the vendor) and no credentials for the conference")

// ErrNoCredentials is what a TokenSource wraps when it holds nothing for
// a conference.
var ErrNoCredentials = errors.New("no credentials")

// errTokensRejected: every token known for a conference was rejected, and
// it has no credentials.
var errTokensRejected = errors.New("every control token known for the conference was rejected")

// errTokensRefused: the vendor refused fresh tokens from the TokenSource on
// first use, again and again.
var errTokensRefused = errors.New("the vendor refused freshly obtained control tokens on first use, again and again")

// caller makes the hang-up calls of every batch. It holds what all call
// chains share (the API, the token source, the rate limiter, the circuit
// breaker, the retry settings) and runs one chain per batch.
type caller struct {
	cfg     Config
	policy  policy
	api     HangUpper
	roster  Roster // nil when api has none
	tokens  TokenSource
	limiter *limiter
	breaker *breaker
	metrics *metrics
	log     *zap.Logger
	tracing tracing
}

func newCaller(cfg Config, api HangUpper, tokens TokenSource, lim *limiter, br *breaker, m *metrics, log *zap.Logger) *caller {
	roster, _ := api.(Roster)
	return &caller{cfg: cfg, policy: policyOf(cfg), api: api, roster: roster, tokens: tokens,
		limiter: lim, breaker: br, metrics: m, log: log}
}

// execute runs the call chain of a batch and returns what it decided.
func (c *caller) execute(ctx context.Context, b *batch) *batchOutcome {
	ch := &chain{
		caller: c,
		batch:  b,
		ring:   &tokenRing{conference: b.conference, header: b.tokens, source: c.tokens},
		out:    &batchOutcome{batch: b, outcomes: make(map[string]*idOutcome, len(b.ids))},
	}
	ctx, span := c.tracing.startBatch(ctx, b)
	ch.run(ctx, b.ids, b.id, nil, true)
	ch.out.rejected = ch.ring.rejected
	endBatch(span, ch.out)
	return ch.out
}

// newBackoff returns the retry backoff of one call: exponential with
// jitter, within RetryMaxElapsed by the configured clock.
func (c *caller) newBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.cfg.RetryInitial),
		backoff.WithMaxInterval(c.cfg.RetryMaxInterval),
		backoff.WithMaxElapsedTime(c.cfg.RetryMaxElapsed),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMultiplier(2),
		backoff.WithClockProvider(clockFunc(c.cfg.Now)),
	)
}

// clockFunc makes Config.Now a backoff.Clock.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// classify maps an error of a call chain to its class; running out of
// tokens is permanent.
func classify(err error) meetingclient.Class {
	if errors.Is(err, ErrNoToken) || errors.Is(err, errTokensRejected) {
		// The token API may have said that the meeting is gone.
		if c := meetingclient.ClassOf(err); c == meetingclient.ClassMeetingGone || c == meetingclient.ClassMeetingEnding {
			return c
		}
		return meetingclient.ClassPermanent
	}
	return meetingclient.ClassOf(err)
}

// isOutage reports whether an answer says the API is not there: no
// answer, a timeout, or a server error. The circuit breaker counts these.
func isOutage(err error) bool {
	var apiErr *meetingclient.APIError
	if !errors.As(err, &apiErr) {
		return true
	}
	return apiErr.Class == meetingclient.ClassRetryable && (apiErr.Status == 0 || apiErr.Status >= 500)
}

package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
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

// errBreakerOpen: the circuit breaker holds calls back.
var errBreakerOpen = errors.New("the meeting API failed every recent call; waiting for a probe call to succeed")

// errExpired: every request waiting for a call passed its expiresAt.
var errExpired = errors.New("expiresAt passed while waiting to retry")

// deferError asks for the messages to be handed back for a while: the
// vendor said "not yet" for longer than it is worth holding them.
type deferError struct {
	delay time.Duration
	cause error
}

func (e *deferError) Error() string {
	return fmt.Sprintf("deferred for %s: %v", e.delay, e.cause)
}

func (e *deferError) Unwrap() error { return e.cause }

// batch is one group of participant IDs of one conference sent together,
// with the requests waiting for each ID.
type batch struct {
	id         string
	conference string
	ids        []string
	waiters    map[string][]*request
	tokens     []string // newest first
	// expiresAt is the latest expiresAt of the requests waiting; zero when
	// one of them has none. After it, nobody wants the call any more.
	expiresAt time.Time
	// deliveries is the highest delivery count among the messages waiting.
	deliveries uint64
}

// batchOutcome is what the call chain of a batch decided.
type batchOutcome struct {
	batch    *batch
	outcomes map[string]*idOutcome
	rejected []string // tokens the vendor rejected
	// remember is set when the answer holds for the whole conference for
	// a while: the meeting is gone, or not ready yet.
	remember *idOutcome
}

// tokenRing hands out the tokens of one call chain: the header tokens
// newest first, then the TokenSource's. A header token the vendor rejects
// is passed over for the rest of the chain. The TokenSource is asked before
// every call, so that a token it renewed, or one another worker obtained,
// is used at once; a token of it that the vendor rejects is reported to it
// and replaced. Tokens expire, so that is allowed as often as a chain
// needs: the budget is per token, not per chain. Only when the source's
// tokens are refused maxRefusals times in a row, with no call accepted in
// between, does the ring give up (errTokensRefused), and the requests are
// handed back for later.
type tokenRing struct {
	conference string
	header     []string
	next       int // the header token to try next
	source     TokenSource
	current    string
	fromSource bool // current came from the source
	refusals   int  // source tokens refused in a row
	sourceErr  error
	rejected   []string
}

// maxRefusals is how many of the source's tokens in a row the vendor may
// refuse before a chain is handed back: the first may have expired, the
// next are fresh ones refused on first use.
const maxRefusals = 4

// token returns the token for the next call.
func (t *tokenRing) token(ctx context.Context) (string, error) {
	if t.next < len(t.header) {
		t.current, t.fromSource = t.header[t.next], false
		return t.current, nil
	}
	if t.source == nil {
		if len(t.header) == 0 {
			return "", ErrNoToken
		}
		return "", errTokensRejected
	}
	if t.refusals >= maxRefusals {
		return "", errTokensRefused
	}
	tok, err := t.source.Token(ctx, t.conference)
	if err == nil && tok == "" {
		err = errors.New("the token source returned an empty token")
	}
	if err != nil {
		t.sourceErr = err
		if len(t.header) == 0 {
			return "", fmt.Errorf("%w: %w", ErrNoToken, err)
		}
		return "", fmt.Errorf("%w; credentials: %w", errTokensRejected, err)
	}
	t.sourceErr = nil
	t.current, t.fromSource = tok, true
	return tok, nil
}

// accepted records that the vendor took the current token: it answered
// the call with anything but an authentication error.
func (t *tokenRing) accepted() {
	if t.fromSource {
		t.refusals = 0
	}
}

// reject records that the vendor refused the current token.
func (t *tokenRing) reject() {
	t.rejected = append(t.rejected, t.current)
	if t.fromSource {
		t.source.Invalidate(t.conference, t.current)
		t.refusals++
		return
	}
	t.next++
}

// transient reports whether the TokenSource failed for a reason that may
// pass: then the requests are handed back for later instead of failing.
func (t *tokenRing) transient() (meetingclient.Class, time.Duration, bool) {
	err := t.sourceErr
	if err == nil || errors.Is(err, ErrNoCredentials) {
		return 0, 0, false
	}
	var apiErr *meetingclient.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Class, apiErr.RetryAfter, apiErr.Class.Retryable()
	}
	return meetingclient.ClassRetryable, 0, true
}

// execute runs the call chain of a batch: the call, its retries, and the
// split calls that pin whole-call rejections to single IDs.
func (d *Dispatcher) execute(ctx context.Context, b *batch) *batchOutcome {
	out := &batchOutcome{batch: b, outcomes: make(map[string]*idOutcome, len(b.ids))}
	ring := &tokenRing{conference: b.conference, header: b.tokens, source: d.tokens}
	d.hangUp(ctx, b, b.ids, b.id, ring, nil, out, true)
	out.rejected = ring.rejected
	return out
}

// hangUp calls the vendor for ids and decides each of them. parents are
// the calls that carried ids before they were split off. useRoster allows
// one look at who is online to split a rejected batch.
func (d *Dispatcher) hangUp(ctx context.Context, b *batch, ids []string, callID string, ring *tokenRing, parents []*callRecord, out *batchOutcome, useRoster bool) {
	rec := &callRecord{batchID: callID}
	carried := append(append([]*callRecord(nil), parents...), rec)
	d.metrics.batchSize.Observe(float64(len(ids)))
	err := d.callWithRetry(ctx, b, ids, ring, rec)
	decide := func(o idOutcome, which []string) {
		o.decidedBy, o.carriedBy = rec, carried
		for _, id := range which {
			out.outcomes[id] = &o
		}
	}
	if err == nil {
		decide(idOutcome{kind: idDisconnected}, ids)
		return
	}
	if ctx.Err() != nil {
		decide(idOutcome{kind: idAborted}, ids)
		return
	}
	if errors.Is(err, errExpired) {
		decide(idOutcome{kind: idExpired}, ids)
		return
	}
	var def *deferError
	if errors.As(err, &def) {
		o := idOutcome{kind: idDeferred, delay: def.delay}
		decide(o, ids)
		out.remember = out.outcomes[ids[0]]
		d.log.Info("meeting not ready; requests handed back for later",
			zap.String("batchID", callID), zap.String("conferenceID", b.conference),
			zap.Duration("delay", def.delay), zap.String("answer", rec.message))
		return
	}
	class := classify(err)
	switch class {
	case meetingclient.ClassParticipantGone, meetingclient.ClassBadParameter:
		if len(ids) > 2 && class == meetingclient.ClassParticipantGone && useRoster {
			if online, offline, ok := d.splitByRoster(ctx, b, ids, ring); ok {
				// Who is online goes in one call; each of the others is
				// then asked about alone, so that only the vendor's own
				// answer for an ID makes it gone.
				d.log.Debug("whole call rejected; split by who is online",
					zap.String("batchID", callID), zap.String("conferenceID", b.conference),
					zap.Int("online", len(online)), zap.Int("offline", len(offline)))
				d.hangUp(ctx, b, online, callID+".on", ring, carried, out, false)
				for i, id := range offline {
					d.hangUp(ctx, b, []string{id}, callID+".off"+strconv.Itoa(i+1), ring, carried, out, false)
				}
				return
			}
		}
		if len(ids) > 1 {
			mid := len(ids) / 2
			d.log.Debug("whole call rejected; splitting",
				zap.String("batchID", callID), zap.String("conferenceID", b.conference),
				zap.Int("ids", len(ids)), zap.Stringer("class", class))
			d.hangUp(ctx, b, ids[:mid], callID+".1", ring, carried, out, useRoster)
			d.hangUp(ctx, b, ids[mid:], callID+".2", ring, carried, out, useRoster)
			return
		}
		if class == meetingclient.ClassParticipantGone {
			decide(idOutcome{kind: idGone}, ids)
			return
		}
		decide(idOutcome{kind: idFailed, reason: schemas.ReasonRejected}, ids)
	case meetingclient.ClassMeetingEnding:
		decide(idOutcome{kind: idGone}, ids)
	default:
		reason := schemas.ReasonRejected
		if class.Retryable() {
			reason = schemas.ReasonRetriesExhausted
		}
		d.log.Warn("hang-up failed",
			zap.String("batchID", callID), zap.String("conferenceID", b.conference),
			zap.Int("ids", len(ids)), zap.Int("attempts", rec.attempts),
			zap.Stringer("class", class), zap.Error(err))
		decide(idOutcome{kind: idFailed, reason: reason}, ids)
		if class == meetingclient.ClassMeetingGone {
			out.remember = out.outcomes[ids[0]]
		}
	}
}

// splitByRoster asks who is online and splits ids by it: the online side
// goes in one call and each offline ID in one call of its own, against
// about 2·log2(n) calls per offline ID when halving. The roster only
// orders the calls; every ID is still decided by a hang-up call's answer.
// An unavailable roster, or one that matches none or all of ids (it may
// name participants differently), leaves the split to halving.
func (d *Dispatcher) splitByRoster(ctx context.Context, b *batch, ids []string, ring *tokenRing) (online, offline []string, ok bool) {
	roster, can := d.api.(Roster)
	if !can {
		return nil, nil, false
	}
	token, err := ring.token(ctx)
	if err != nil {
		return nil, nil, false
	}
	if err := d.limiter.wait(ctx); err != nil {
		return nil, nil, false
	}
	info, err := roster.RealTimeInfo(ctx, b.conference, token)
	if err != nil {
		return nil, nil, false
	}
	present := make(map[string]bool, len(info.Participants))
	for _, p := range info.Participants {
		present[p.PID] = true
	}
	for _, id := range ids {
		if present[id] {
			online = append(online, id)
		} else {
			offline = append(offline, id)
		}
	}
	if len(online) == 0 || len(offline) == 0 {
		return nil, nil, false
	}
	return online, offline, true
}

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

// callWithRetry calls the vendor until it answers with success or a
// permanent error, the retry budget is spent, the requests waiting expire,
// the answer says to come back much later (a *deferError), or ctx ends. A
// token the vendor rejects is replaced by the next one at once; retryable
// answers wait for the exponential backoff with jitter, or for Retry-After
// when that is longer. While the circuit breaker is open no call is made:
// the requests are handed back until the next probe.
func (d *Dispatcher) callWithRetry(ctx context.Context, b *batch, ids []string, ring *tokenRing, rec *callRecord) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(d.cfg.RetryInitial),
		backoff.WithMaxInterval(d.cfg.RetryMaxInterval),
		backoff.WithMaxElapsedTime(d.cfg.RetryMaxElapsed),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMultiplier(2),
	)
	for {
		if d.expired(b) {
			return errExpired
		}
		token, err := ring.token(ctx)
		if err != nil {
			if rec.err != nil && rec.message != "" {
				rec.message = err.Error() + "; last answer: " + rec.message
			} else {
				rec.message = err.Error()
			}
			rec.err = err
			if errors.Is(err, errTokensRefused) {
				d.metrics.tokenRefusals.Inc()
				d.log.Warn("fresh control tokens refused on first use again and again; requests handed back for later",
					zap.String("batchID", rec.batchID), zap.String("conferenceID", b.conference),
					zap.Int("refused", ring.refusals))
				return &deferError{delay: d.deferDelay(meetingclient.ClassAuthExpired, b.deliveries, 0), cause: err}
			}
			// A token that could not be obtained because the meeting is
			// not ready, or the API or the store is down, is worth another
			// try later.
			if class, retryAfter, ok := ring.transient(); ok {
				return &deferError{delay: d.deferDelay(class, b.deliveries, retryAfter), cause: err}
			}
			return err
		}
		if ok, retryIn := d.breaker.acquire(); !ok {
			// The API fails every call: hand the requests back until the
			// next probe instead of holding them, so that they neither
			// spend their retries nor, if this worker dies meanwhile,
			// their deliveries.
			delay := max(retryIn, time.Second)
			delay += time.Duration(rand.Int64N(int64(delay)/2 + 1))
			return &deferError{delay: delay, cause: errBreakerOpen}
		}
		if err := d.limiter.wait(ctx); err != nil {
			return err
		}
		rec.attempts++
		start := time.Now()
		resp, err := d.api.HangUp(ctx, b.conference, token, ids)
		d.metrics.callDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			ring.accepted()
			d.breaker.record(false)
			d.limiter.succeeded()
			d.metrics.calls.WithLabelValues("ok").Inc()
			rec.status, rec.code, rec.message, rec.requestID, rec.err = resp.Status, "", "", resp.RequestID, nil
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.breaker.record(isOutage(err))
		class := meetingclient.ClassOf(err)
		d.metrics.calls.WithLabelValues(class.String()).Inc()
		rec.err = err
		var apiErr *meetingclient.APIError
		var retryAfter time.Duration
		if errors.As(err, &apiErr) {
			rec.status, rec.code, rec.message, rec.requestID = apiErr.Status, apiErr.Code, apiErr.Message, apiErr.RequestID
			retryAfter = apiErr.RetryAfter
		} else {
			rec.status, rec.code, rec.message, rec.requestID = 0, "", err.Error(), ""
		}
		if apiErr != nil && apiErr.Status >= 400 && apiErr.Status < 500 && class != meetingclient.ClassAuthExpired {
			// The vendor judged the call, so it took the token.
			ring.accepted()
		}
		switch class {
		case meetingclient.ClassAuthExpired:
			// The next round takes the next token, or says why there is
			// none.
			ring.reject()
			continue
		case meetingclient.ClassNotStarted, meetingclient.ClassLocked:
			return &deferError{delay: d.deferDelay(class, b.deliveries, retryAfter), cause: err}
		case meetingclient.ClassFlowControl:
			d.limiter.throttled()
		}
		if !class.Retryable() {
			return err
		}
		if retryAfter > d.cfg.DeferThreshold {
			return &deferError{delay: d.deferDelay(class, b.deliveries, retryAfter), cause: err}
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return err
		}
		wait = max(wait, retryAfter)
		if !b.expiresAt.IsZero() {
			// Wake at the expiry at the latest; the check at the top of
			// the loop then reports it.
			wait = min(wait, max(b.expiresAt.Sub(d.cfg.Now()), 0))
		}
		d.log.Debug("retrying hang-up",
			zap.String("batchID", rec.batchID), zap.String("conferenceID", b.conference),
			zap.Int("attempt", rec.attempts), zap.Stringer("class", class),
			zap.Duration("wait", wait), zap.String("apiRequestID", rec.requestID))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// expired reports whether every request waiting for b has passed its
// expiresAt.
func (d *Dispatcher) expired(b *batch) bool {
	return !b.expiresAt.IsZero() && !d.cfg.Now().Before(b.expiresAt)
}

// deferDelay is how long to hand messages back for: it grows with the
// delivery count, has jitter, never undercuts Retry-After, and is capped
// at DeferMaxDelay.
func (d *Dispatcher) deferDelay(class meetingclient.Class, deliveries uint64, retryAfter time.Duration) time.Duration {
	base := d.cfg.DeferInitial
	if class == meetingclient.ClassLocked {
		base *= 12
	}
	// The delivery count also counts crashes and restarts, so the growth
	// is capped at sixteen times the base.
	n := min(max(deliveries, 1)-1, 4)
	delay := min(base<<n, d.cfg.DeferMaxDelay)
	delay = time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
	return max(delay, retryAfter)
}

// batchID names the n-th batch of this worker.
func (d *Dispatcher) batchID(n uint64) string {
	return d.cfg.WorkerID + "-" + strconv.FormatUint(n, 10)
}

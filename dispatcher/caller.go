package dispatcher

import (
	"context"
	"errors"
	"fmt"
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

// TokenSource supplies control tokens for conferences whose requests
// carry none that works, for example from stored host credentials. It may
// be nil.
type TokenSource interface {
	// Token returns a control token for the conference.
	Token(ctx context.Context, conferenceID string) (string, error)
	// Invalidate tells the source that the vendor rejected token.
	Invalidate(conferenceID, token string)
}

// ErrNoToken means no control token was available for a conference.
var ErrNoToken = errors.New("no control token: the request carried no X-Conference-Authorization header and no credentials are configured for the conference")

// errTokensRejected: every token known for a conference was rejected.
var errTokensRejected = errors.New("every control token known for the conference was rejected")

// batch is one group of participant IDs of one conference sent together,
// with the requests waiting for each ID.
type batch struct {
	id         string
	conference string
	ids        []string
	waiters    map[string][]*request
	tokens     []string // newest first
}

// batchOutcome is what the call chain of a batch decided.
type batchOutcome struct {
	batch    *batch
	outcomes map[string]*idOutcome
	rejected []string // tokens the vendor rejected
}

// tokenRing hands out the tokens of one batch in order: the header tokens
// newest first, then one from the TokenSource.
type tokenRing struct {
	conference string
	tokens     []string
	next       int
	source     TokenSource
	fromSource bool
	rejected   []string
}

func (t *tokenRing) current(ctx context.Context) (string, error) {
	if t.next < len(t.tokens) {
		return t.tokens[t.next], nil
	}
	if t.source != nil && !t.fromSource {
		t.fromSource = true
		tok, err := t.source.Token(ctx, t.conference)
		if err == nil && tok != "" {
			t.tokens = append(t.tokens, tok)
			return tok, nil
		}
		if err != nil && len(t.tokens) == 0 {
			return "", fmt.Errorf("%w (%v)", ErrNoToken, err)
		}
	}
	if len(t.tokens) == 0 {
		return "", ErrNoToken
	}
	return "", errTokensRejected
}

// reject moves past the current token and reports whether another remains
// to try.
func (t *tokenRing) reject(ctx context.Context) bool {
	tok := t.tokens[t.next]
	t.rejected = append(t.rejected, tok)
	if t.fromSource && t.next == len(t.tokens)-1 && t.source != nil {
		t.source.Invalidate(t.conference, tok)
	}
	t.next++
	_, err := t.current(ctx)
	return err == nil
}

// execute runs the call chain of a batch: the call, its retries, and the
// split calls that pin whole-call rejections to single IDs.
func (d *Dispatcher) execute(ctx context.Context, b *batch) *batchOutcome {
	out := &batchOutcome{batch: b, outcomes: make(map[string]*idOutcome, len(b.ids))}
	ring := &tokenRing{conference: b.conference, tokens: b.tokens, source: d.tokens}
	d.hangUp(ctx, b.conference, b.ids, b.id, ring, nil, out)
	out.rejected = ring.rejected
	return out
}

// hangUp calls the vendor for ids and decides each of them. parents are
// the calls that carried ids before they were split off.
func (d *Dispatcher) hangUp(ctx context.Context, conference string, ids []string, callID string, ring *tokenRing, parents []*callRecord, out *batchOutcome) {
	rec := &callRecord{batchID: callID}
	carried := append(append([]*callRecord(nil), parents...), rec)
	d.metrics.batchSize.Observe(float64(len(ids)))
	err := d.callWithRetry(ctx, conference, ids, ring, rec)
	decide := func(kind idKind, reason schemas.DeadLetterReason, which []string) {
		for _, id := range which {
			out.outcomes[id] = &idOutcome{kind: kind, decidedBy: rec, carriedBy: carried, reason: reason}
		}
	}
	if err == nil {
		decide(idDisconnected, "", ids)
		return
	}
	if ctx.Err() != nil {
		decide(idAborted, "", ids)
		return
	}
	class := classify(err)
	switch class {
	case meetingclient.ClassParticipantGone, meetingclient.ClassBadParameter:
		if len(ids) > 1 {
			mid := len(ids) / 2
			d.log.Debug("whole call rejected; splitting",
				zap.String("batchID", callID), zap.String("conferenceID", conference),
				zap.Int("ids", len(ids)), zap.Stringer("class", class))
			d.hangUp(ctx, conference, ids[:mid], callID+".1", ring, carried, out)
			d.hangUp(ctx, conference, ids[mid:], callID+".2", ring, carried, out)
			return
		}
		if class == meetingclient.ClassParticipantGone {
			decide(idGone, "", ids)
			return
		}
		decide(idFailed, schemas.ReasonRejected, ids)
	case meetingclient.ClassMeetingEnding:
		decide(idGone, "", ids)
	default:
		reason := schemas.ReasonRejected
		if class.Retryable() {
			reason = schemas.ReasonRetriesExhausted
		}
		d.log.Warn("hang-up failed",
			zap.String("batchID", callID), zap.String("conferenceID", conference),
			zap.Int("ids", len(ids)), zap.Int("attempts", rec.attempts),
			zap.Stringer("class", class), zap.Error(err))
		decide(idFailed, reason, ids)
	}
}

// classify maps an error of a call chain to its class; the no-token errors
// are permanent.
func classify(err error) meetingclient.Class {
	if errors.Is(err, ErrNoToken) || errors.Is(err, errTokensRejected) {
		return meetingclient.ClassPermanent
	}
	return meetingclient.ClassOf(err)
}

// callWithRetry calls the vendor until it answers with success or a
// permanent error, the retry budget is spent, or ctx ends. A token the
// vendor rejects is replaced by the next one at once; retryable answers
// wait for the exponential backoff with jitter, or for Retry-After when
// that is longer.
func (d *Dispatcher) callWithRetry(ctx context.Context, conference string, ids []string, ring *tokenRing, rec *callRecord) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(d.cfg.RetryInitial),
		backoff.WithMaxInterval(d.cfg.RetryMaxInterval),
		backoff.WithMaxElapsedTime(d.cfg.RetryMaxElapsed),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMultiplier(2),
	)
	for {
		token, err := ring.current(ctx)
		if err != nil {
			rec.message, rec.err = err.Error(), err
			return err
		}
		if err := d.limiter.Wait(ctx); err != nil {
			return err
		}
		rec.attempts++
		start := time.Now()
		resp, err := d.api.HangUp(ctx, conference, token, ids)
		d.metrics.callDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			d.metrics.calls.WithLabelValues("ok").Inc()
			rec.status, rec.code, rec.message, rec.requestID, rec.err = resp.Status, "", "", resp.RequestID, nil
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
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
		if class == meetingclient.ClassAuthExpired {
			if ring.reject(ctx) {
				continue
			}
			rec.err = fmt.Errorf("%w: %w", errTokensRejected, err)
			rec.message = errTokensRejected.Error() + "; last answer: " + rec.message
			return rec.err
		}
		if !class.Retryable() {
			return err
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return err
		}
		if retryAfter > wait {
			wait = retryAfter
		}
		d.log.Debug("retrying hang-up",
			zap.String("batchID", rec.batchID), zap.String("conferenceID", conference),
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

// batchID names the n-th batch of this worker.
func (d *Dispatcher) batchID(n uint64) string {
	return d.cfg.WorkerID + "-" + strconv.FormatUint(n, 10)
}

package dispatcher

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/meetingclient"
)

// chain is the call chain of one batch: the hang-up call of its IDs, the
// retries of that call, and the calls that split a batch rejected as a
// whole until each rejection is pinned to one ID. It runs in one goroutine
// and builds the batch's outcome. What to do after each answer is decided
// by nextStep; the methods here gather its inputs and carry it out.
type chain struct {
	*caller
	batch *batch
	ring  *tokenRing
	out   *batchOutcome
}

// part is one call of a chain, with its retries: some of the batch's IDs.
type part struct {
	ids []string
	rec *callRecord
	// carried are the calls that carried ids, this one last.
	carried []*callRecord
	// useRoster allows one look at who is online to split a rejection.
	useRoster bool
	backoff   *backoff.ExponentialBackOff
}

// run makes the call for ids and decides each of them. parents are the
// calls that carried ids before they were split off.
func (ch *chain) run(ctx context.Context, ids []string, callID string, parents []*callRecord, useRoster bool) {
	rec := &callRecord{batchID: callID}
	p := &part{
		ids:       ids,
		rec:       rec,
		carried:   append(append([]*callRecord(nil), parents...), rec),
		useRoster: useRoster,
	}
	ch.metrics.batchSize.Observe(float64(len(ids)))
	p.backoff = ch.newBackoff()
	st, a := ch.call(ctx, p)
	ch.settle(ctx, p, st, a)
}

// call makes the call of p again until an answer decides something else
// than another attempt.
func (ch *chain) call(ctx context.Context, p *part) (step, answer) {
	for {
		a := ch.attempt(ctx, p)
		s, spent := ch.situation(ctx, p)
		st := nextStep(a, s, ch.policy)
		switch st.kind {
		case stepNextToken:
			ch.ring.reject()
		case stepRetry:
			// A backoff interval is spent only when it is waited for.
			*p.backoff = spent
			ch.log.Debug("retrying hang-up",
				zap.String("batchID", p.rec.batchID), zap.String("conferenceID", ch.batch.conference),
				zap.Int("attempt", p.rec.attempts), zap.Stringer("class", a.class),
				zap.Duration("wait", st.wait), zap.String("apiRequestID", p.rec.requestID))
			ch.tracing.retryEvent(ctx, p, a.class, st.wait)
			if !sleep(ctx, st.wait) {
				return decided(idAborted), a
			}
		default:
			return st, a
		}
	}
}

// situation gathers the inputs of nextStep besides the answer. spent is
// p's backoff with the interval in s.backoff taken.
func (ch *chain) situation(ctx context.Context, p *part) (s situation, spent backoff.ExponentialBackOff) {
	spent = *p.backoff
	s = situation{
		ids:        len(p.ids),
		roster:     p.useRoster && ch.roster != nil,
		cancelled:  ctx.Err() != nil,
		backoff:    spent.NextBackOff(),
		deliveries: ch.batch.deliveries,
		jitter:     rand.Float64(),
	}
	if exp := ch.batch.expiresAt; !exp.IsZero() {
		s.expires, s.untilExpiry = true, exp.Sub(ch.cfg.Now())
	}
	return s, spent
}

// attempt makes one attempt of p's call: it checks the expiry, takes a
// token, passes the breaker and the limiter, and calls the vendor. What
// stopped it, or what the vendor answered, is the answer.
func (ch *chain) attempt(ctx context.Context, p *part) answer {
	if ch.batch.expired(ch.cfg.Now()) {
		return answer{source: fromExpiry}
	}
	token, noToken := ch.token(ctx, p.rec)
	if noToken != nil {
		return *noToken
	}
	if ok, retryIn := ch.breaker.acquire(); !ok {
		return answer{source: fromBreaker, retryAfter: retryIn}
	}
	if err := ch.limiter.wait(ctx); err != nil {
		return answer{source: fromLimiter, err: err}
	}
	p.rec.attempts++
	start := ch.cfg.Now()
	callCtx, span := ch.tracing.startCall(ctx, ch.batch.conference, p)
	resp, err := ch.api.HangUp(callCtx, ch.batch.conference, token, p.ids)
	ch.metrics.callDuration.Observe(ch.cfg.Now().Sub(start).Seconds())
	endCall(span, resp, err)
	return ch.observe(ctx, p.rec, resp, err)
}

// token returns the token for the next attempt, or the answer that there
// is none.
func (ch *chain) token(ctx context.Context, rec *callRecord) (string, *answer) {
	tok, err := ch.ring.token(ctx)
	if err == nil {
		return tok, nil
	}
	if rec.err != nil && rec.message != "" {
		rec.message = err.Error() + "; last answer: " + rec.message
	} else {
		rec.message = err.Error()
	}
	rec.err = err
	a := answer{source: fromTokens, class: classify(err), err: err}
	if errors.Is(err, errTokensRefused) {
		ch.metrics.tokenRefusals.Inc()
		ch.log.Warn("fresh control tokens refused on first use again and again; requests handed back for later",
			zap.String("batchID", rec.batchID), zap.String("conferenceID", ch.batch.conference),
			zap.Int("refused", ch.ring.refusals))
		a.class, a.transient = meetingclient.ClassAuthExpired, true
	} else if class, retryAfter, ok := ch.ring.transient(); ok {
		a.class, a.retryAfter, a.transient = class, retryAfter, true
	}
	return "", &a
}

// observe records the vendor's answer in the call record, the metrics,
// the breaker, the limiter and the token ring, and returns it.
func (ch *chain) observe(ctx context.Context, rec *callRecord, resp meetingclient.Response, err error) answer {
	if err == nil {
		ch.ring.accepted()
		ch.breaker.record(false)
		ch.limiter.answered(false)
		ch.metrics.calls.WithLabelValues("ok").Inc()
		rec.status, rec.code, rec.message, rec.requestID, rec.err = resp.Status, "", "", resp.RequestID, nil
		return answer{source: fromVendor}
	}
	if ctx.Err() != nil {
		// Shutdown cut the call short: that says nothing about the API.
		return answer{source: fromVendor, class: meetingclient.ClassRetryable, err: ctx.Err()}
	}
	class := meetingclient.ClassOf(err)
	ch.breaker.record(isOutage(err))
	ch.limiter.answered(class == meetingclient.ClassFlowControl)
	ch.metrics.calls.WithLabelValues(class.String()).Inc()
	rec.err = err
	a := answer{source: fromVendor, class: class, err: err}
	var apiErr *meetingclient.APIError
	if errors.As(err, &apiErr) {
		rec.status, rec.code, rec.message, rec.requestID = apiErr.Status, apiErr.Code, apiErr.Message, apiErr.RequestID
		a.retryAfter = apiErr.RetryAfter
		if apiErr.Status >= 400 && apiErr.Status < 500 && class != meetingclient.ClassAuthExpired {
			// The vendor judged the call, so it took the token.
			ch.ring.accepted()
		}
	} else {
		rec.status, rec.code, rec.message, rec.requestID = 0, "", err.Error(), ""
	}
	return a
}

// settle carries out the final step of p's call: split it, or decide its
// IDs.
func (ch *chain) settle(ctx context.Context, p *part, st step, a answer) {
	switch st.kind {
	case stepSplit:
		ch.split(ctx, p, st.byRoster, a.class)
	case stepDefer:
		ch.out.remember = ch.decide(p, idOutcome{kind: idDeferred, delay: st.delay})
		ch.log.Info("meeting not ready; requests handed back for later",
			zap.String("batchID", p.rec.batchID), zap.String("conferenceID", ch.batch.conference),
			zap.Duration("delay", st.delay), zap.String("answer", p.rec.message))
	case stepDecide:
		if st.outcome == idFailed && a.class != meetingclient.ClassBadParameter {
			ch.log.Warn("hang-up failed",
				zap.String("batchID", p.rec.batchID), zap.String("conferenceID", ch.batch.conference),
				zap.Int("ids", len(p.ids)), zap.Int("attempts", p.rec.attempts),
				zap.Stringer("class", a.class), zap.Error(a.err))
		}
		o := ch.decide(p, idOutcome{kind: st.outcome, reason: st.reason})
		if st.remember {
			ch.out.remember = o
		}
	}
}

// decide gives each ID of p the outcome o and returns it.
func (ch *chain) decide(p *part, o idOutcome) *idOutcome {
	o.decidedBy, o.carriedBy = p.rec, p.carried
	for _, id := range p.ids {
		ch.out.outcomes[id] = &o
	}
	return &o
}

// split makes a call for each part of p's IDs. By the roster, who is
// online goes in one call, and each of the others is then asked about
// alone, so that only the vendor's own answer for an ID makes it gone.
// Otherwise, or when the roster does not help, the IDs are halved.
func (ch *chain) split(ctx context.Context, p *part, byRoster bool, class meetingclient.Class) {
	callID := p.rec.batchID
	if byRoster {
		if online, offline, ok := ch.splitByRoster(ctx, p.ids); ok {
			ch.log.Debug("whole call rejected; split by who is online",
				zap.String("batchID", callID), zap.String("conferenceID", ch.batch.conference),
				zap.Int("online", len(online)), zap.Int("offline", len(offline)))
			ch.run(ctx, online, callID+".on", p.carried, false)
			for i, id := range offline {
				ch.run(ctx, []string{id}, callID+".off"+strconv.Itoa(i+1), p.carried, false)
			}
			return
		}
	}
	mid := len(p.ids) / 2
	ch.log.Debug("whole call rejected; splitting",
		zap.String("batchID", callID), zap.String("conferenceID", ch.batch.conference),
		zap.Int("ids", len(p.ids)), zap.Stringer("class", class))
	ch.run(ctx, p.ids[:mid], callID+".1", p.carried, p.useRoster)
	ch.run(ctx, p.ids[mid:], callID+".2", p.carried, p.useRoster)
}

// splitByRoster asks who is online and splits ids by it: the online side
// goes in one call and each offline ID in one call of its own, against
// about 2·log2(n) calls per offline ID when halving. The roster only
// orders the calls; every ID is still decided by a hang-up call's answer.
// An unavailable roster, or one that matches none or all of ids (it may
// name participants differently), leaves the split to halving.
func (ch *chain) splitByRoster(ctx context.Context, ids []string) (online, offline []string, ok bool) {
	token, err := ch.ring.token(ctx)
	if err != nil {
		return nil, nil, false
	}
	if err := ch.limiter.wait(ctx); err != nil {
		return nil, nil, false
	}
	rosterCtx, span := ch.tracing.startRoster(ctx, ch.batch.conference)
	info, err := ch.roster.RealTimeInfo(rosterCtx, ch.batch.conference, token)
	endRoster(span, info, err)
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

// sleep waits for d on a real timer; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

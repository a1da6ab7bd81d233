package dispatcher

import (
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// answerSource says what ended one attempt of a call.
type answerSource int

const (
	// fromVendor: the hang-up call was made; the vendor answered, or the
	// transport failed.
	fromVendor answerSource = iota + 1
	// fromTokens: no call was made, as no control token could be had.
	fromTokens
	// fromBreaker: no call was made, as the circuit breaker is open.
	fromBreaker
	// fromLimiter: no call was made, as the wait for the rate limiter
	// ended (only shutdown ends it).
	fromLimiter
	// fromExpiry: no call was made, as every request waiting for it passed
	// its expiresAt.
	fromExpiry
)

// answer is what one attempt of a call came back with, reduced to what
// nextStep decides by.
type answer struct {
	source answerSource
	// class is the class of the vendor's error, or of why no token could
	// be had; 0 for a success.
	class meetingclient.Class
	// retryAfter is the vendor's Retry-After (of the hang-up or the token
	// API), or the breaker's time until its next probe.
	retryAfter time.Duration
	// transient is set, for fromTokens, when the token could not be had
	// for a reason that may pass: the requests are handed back for later.
	transient bool
	// err is the error itself, for the log; nextStep does not read it.
	err error
}

// situation is what nextStep decides by besides the answer: the call and
// the state of its chain.
type situation struct {
	// ids is how many participant IDs the call carries.
	ids int
	// roster: a call rejected as a whole may be split by who is online.
	roster bool
	// cancelled: shutdown cancelled the chain.
	cancelled bool
	// backoff is the next wait of the call's exponential backoff;
	// backoff.Stop once its budget is spent.
	backoff time.Duration
	// expires: the requests waiting have an expiresAt, untilExpiry from now.
	expires     bool
	untilExpiry time.Duration
	// deliveries is the highest delivery count of the messages waiting.
	deliveries uint64
	// jitter, uniform in [0, 1), spreads the hand-back delays.
	jitter float64
}

// policy is the part of Config that nextStep reads.
type policy struct {
	deferThreshold time.Duration
	deferInitial   time.Duration
	deferMaxDelay  time.Duration
}

func policyOf(cfg Config) policy {
	return policy{deferThreshold: cfg.DeferThreshold, deferInitial: cfg.DeferInitial, deferMaxDelay: cfg.DeferMaxDelay}
}

// stepKind is what a call chain does next.
type stepKind int

const (
	// stepDecide: every ID of the call gets outcome (and reason).
	stepDecide stepKind = iota + 1
	// stepRetry: wait, then make the call again.
	stepRetry
	// stepNextToken: the vendor refused the token; call again at once
	// with the next one.
	stepNextToken
	// stepSplit: the vendor rejected the call as a whole; split its IDs.
	stepSplit
	// stepDefer: hand the requests back to be delivered again after delay.
	stepDefer
)

// step is the decision of nextStep.
type step struct {
	kind stepKind
	// wait is how long stepRetry waits.
	wait time.Duration
	// delay is how long stepDefer hands the requests back for.
	delay time.Duration
	// byRoster: stepSplit asks who is online first, and halves otherwise.
	byRoster bool
	// outcome and reason are what stepDecide makes of each ID.
	outcome idKind
	reason  schemas.DeadLetterReason
	// remember: the answer holds for the whole conference for a while (its
	// meeting is gone, or not ready), and its next batches get it without
	// a call.
	remember bool
}

// nextStep decides what a call chain does after an answer: retry (after
// how long), take the next token, split the IDs, hand the requests back
// (for how long), or decide the IDs. It is a pure function of its inputs.
func nextStep(a answer, s situation, p policy) step {
	switch {
	case a.source == fromVendor && a.class == 0:
		return decided(idDisconnected)
	case a.source == fromVendor && a.class == meetingclient.ClassAuthExpired:
		return step{kind: stepNextToken}
	case s.cancelled:
		// Nobody knows whether the vendor acted: hand the requests back.
		return decided(idAborted)
	}
	switch a.source {
	case fromExpiry:
		return decided(idExpired)
	case fromBreaker:
		// The API fails every call: hand the requests back until the next
		// probe instead of holding them, so that they neither spend their
		// retries nor, if this worker dies meanwhile, their deliveries.
		delay := max(a.retryAfter, time.Second)
		delay += time.Duration(s.jitter * float64(int64(delay)/2+1))
		return step{kind: stepDefer, delay: delay, remember: true}
	case fromLimiter:
		return final(meetingclient.ClassRetryable, s)
	case fromTokens:
		// A token that could not be had because the meeting is not ready,
		// or the API or the store is down, is worth another try later.
		if a.transient {
			return deferral(a.class, a.retryAfter, s, p)
		}
		return final(a.class, s)
	}
	switch {
	case a.class == meetingclient.ClassNotStarted || a.class == meetingclient.ClassLocked:
		return deferral(a.class, a.retryAfter, s, p)
	case !a.class.Retryable():
		return final(a.class, s)
	case a.retryAfter > p.deferThreshold:
		return deferral(a.class, a.retryAfter, s, p)
	case s.backoff == backoff.Stop:
		return final(a.class, s)
	}
	wait := max(s.backoff, a.retryAfter)
	if s.expires {
		if s.untilExpiry <= 0 {
			return decided(idExpired)
		}
		// Wake at the expiry at the latest; the next attempt reports it.
		wait = min(wait, s.untilExpiry)
	}
	return step{kind: stepRetry, wait: wait}
}

// final decides the IDs of a call that no retry will change: a call
// rejected as a whole is split until the rejection is pinned to one ID.
func final(class meetingclient.Class, s situation) step {
	switch class {
	case meetingclient.ClassParticipantGone, meetingclient.ClassBadParameter:
		gone := class == meetingclient.ClassParticipantGone
		switch {
		case gone && s.ids > 2 && s.roster:
			return step{kind: stepSplit, byRoster: true}
		case s.ids > 1:
			return step{kind: stepSplit}
		case gone:
			return decided(idGone)
		}
		return failed(schemas.ReasonRejected)
	case meetingclient.ClassMeetingEnding:
		return decided(idGone)
	case meetingclient.ClassMeetingGone:
		st := failed(schemas.ReasonRejected)
		st.remember = true
		return st
	}
	if class.Retryable() {
		return failed(schemas.ReasonRetriesExhausted)
	}
	return failed(schemas.ReasonRejected)
}

// deferral hands the requests back for a delay that grows with the
// delivery count, has jitter, never undercuts retryAfter, and is capped at
// deferMaxDelay. A locked control login waits twelve times as long.
func deferral(class meetingclient.Class, retryAfter time.Duration, s situation, p policy) step {
	base := p.deferInitial
	if class == meetingclient.ClassLocked {
		base *= 12
	}
	// The delivery count also counts crashes and restarts, so the growth
	// is capped at sixteen times the base.
	n := min(max(s.deliveries, 1)-1, 4)
	delay := min(base<<n, p.deferMaxDelay)
	delay = time.Duration(float64(delay) * (0.8 + 0.4*s.jitter))
	return step{kind: stepDefer, delay: max(delay, retryAfter), remember: true}
}

func decided(kind idKind) step { return step{kind: stepDecide, outcome: kind} }

func failed(reason schemas.DeadLetterReason) step {
	return step{kind: stepDecide, outcome: idFailed, reason: reason}
}

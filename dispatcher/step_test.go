package dispatcher

import (
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"

	mc "github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// vendorSaid is an answer of the vendor of class c.
func vendorSaid(c mc.Class) answer { return answer{source: fromVendor, class: c} }

// within is a call of ids IDs with 200ms of backoff left, no expiry, first
// delivery, and jitter in the middle (a factor of 1 on hand-back delays).
func within(ids int) situation {
	return situation{ids: ids, backoff: 200 * time.Millisecond, deliveries: 1, jitter: 0.5}
}

type stepCase struct {
	name string
	a    answer
	s    situation
	want step
}

var (
	testPolicy = policy{deferThreshold: 30 * time.Second, deferInitial: 5 * time.Second, deferMaxDelay: 5 * time.Minute}

	rejected  = failed(schemas.ReasonRejected)
	exhausted = failed(schemas.ReasonRetriesExhausted)
)

func deferFor(d time.Duration) step { return step{kind: stepDefer, delay: d, remember: true} }

func retryAfter(a answer, d time.Duration) answer { a.retryAfter = d; return a }

func with(s situation, f func(*situation)) situation { f(&s); return s }

var stepCases = []stepCase{
	{"success", vendorSaid(0), within(3), decided(idDisconnected)},
	{"success after cancel still counts", vendorSaid(0), with(within(3), func(s *situation) { s.cancelled = true }), decided(idDisconnected)},
	{"token refused: next token", vendorSaid(mc.ClassAuthExpired), within(3), step{kind: stepNextToken}},
	{"cancelled", vendorSaid(mc.ClassRetryable), with(within(3), func(s *situation) { s.cancelled = true }), decided(idAborted)},
	{"cancelled beats a deferral", vendorSaid(mc.ClassNotStarted), with(within(3), func(s *situation) { s.cancelled = true }), decided(idAborted)},
	{"expired before the call", answer{source: fromExpiry}, within(3), decided(idExpired)},
	{"limiter ended without cancel", answer{source: fromLimiter}, within(3), exhausted},

	{"breaker: until the probe, half of it as jitter", answer{source: fromBreaker, retryAfter: 3 * time.Second}, within(1), deferFor(3750 * time.Millisecond)},
	{"breaker: at least a second", answer{source: fromBreaker}, with(within(1), func(s *situation) { s.jitter = 0 }), deferFor(time.Second)},

	{"token source down: defer", answer{source: fromTokens, class: mc.ClassRetryable, transient: true}, within(1), deferFor(5 * time.Second)},
	{"token API: not started, Retry-After wins", answer{source: fromTokens, class: mc.ClassNotStarted, transient: true, retryAfter: 8 * time.Second}, within(1), deferFor(8 * time.Second)},
	{"fresh tokens refused: defer", answer{source: fromTokens, class: mc.ClassAuthExpired, transient: true}, within(1), deferFor(5 * time.Second)},
	{"no token, no credentials", answer{source: fromTokens, class: mc.ClassPermanent}, within(4), rejected},
	{"token API: meeting gone", answer{source: fromTokens, class: mc.ClassMeetingGone}, within(4), step{kind: stepDecide, outcome: idFailed, reason: schemas.ReasonRejected, remember: true}},
	{"token API: meeting ending", answer{source: fromTokens, class: mc.ClassMeetingEnding}, within(4), decided(idGone)},

	{"not started", vendorSaid(mc.ClassNotStarted), within(4), deferFor(5 * time.Second)},
	{"not started, third delivery", vendorSaid(mc.ClassNotStarted), with(within(4), func(s *situation) { s.deliveries = 3 }), deferFor(20 * time.Second)},
	{"not started, growth capped at 16x", vendorSaid(mc.ClassNotStarted), with(within(4), func(s *situation) { s.deliveries = 40 }), deferFor(80 * time.Second)},
	{"not started, low jitter", vendorSaid(mc.ClassNotStarted), with(within(4), func(s *situation) { s.jitter = 0 }), deferFor(4 * time.Second)},
	{"locked waits 12x", vendorSaid(mc.ClassLocked), within(4), deferFor(time.Minute)},
	{"locked, capped at DeferMaxDelay", vendorSaid(mc.ClassLocked), with(within(4), func(s *situation) { s.deliveries = 5 }), deferFor(5 * time.Minute)},

	{"participant gone: split by roster", vendorSaid(mc.ClassParticipantGone), with(within(3), func(s *situation) { s.roster = true }), step{kind: stepSplit, byRoster: true}},
	{"participant gone, two IDs: halve", vendorSaid(mc.ClassParticipantGone), with(within(2), func(s *situation) { s.roster = true }), step{kind: stepSplit}},
	{"participant gone, no roster: halve", vendorSaid(mc.ClassParticipantGone), within(5), step{kind: stepSplit}},
	{"participant gone, one ID", vendorSaid(mc.ClassParticipantGone), within(1), decided(idGone)},
	{"bad parameter: halve, never by roster", vendorSaid(mc.ClassBadParameter), with(within(5), func(s *situation) { s.roster = true }), step{kind: stepSplit}},
	{"bad parameter, one ID", vendorSaid(mc.ClassBadParameter), within(1), rejected},
	{"meeting gone: remembered", vendorSaid(mc.ClassMeetingGone), within(5), step{kind: stepDecide, outcome: idFailed, reason: schemas.ReasonRejected, remember: true}},
	{"meeting ending", vendorSaid(mc.ClassMeetingEnding), within(5), decided(idGone)},
	{"forbidden", vendorSaid(mc.ClassForbidden), within(5), rejected},
	{"permanent", vendorSaid(mc.ClassPermanent), within(5), rejected},

	{"server error: backoff", vendorSaid(mc.ClassRetryable), within(3), step{kind: stepRetry, wait: 200 * time.Millisecond}},
	{"flow control: backoff", vendorSaid(mc.ClassFlowControl), within(3), step{kind: stepRetry, wait: 200 * time.Millisecond}},
	{"Retry-After longer than the backoff", retryAfter(vendorSaid(mc.ClassFlowControl), 2*time.Second), within(3), step{kind: stepRetry, wait: 2 * time.Second}},
	{"Retry-After at the threshold: held", retryAfter(vendorSaid(mc.ClassFlowControl), 30*time.Second), within(3), step{kind: stepRetry, wait: 30 * time.Second}},
	{"Retry-After past the threshold: defer", retryAfter(vendorSaid(mc.ClassFlowControl), 31*time.Second), within(3), deferFor(31 * time.Second)},
	{"backoff spent: retries exhausted", vendorSaid(mc.ClassRetryable), with(within(3), func(s *situation) { s.backoff = backoff.Stop }), exhausted},
	{"backoff spent beats expiry", vendorSaid(mc.ClassRetryable), with(within(3), func(s *situation) { s.backoff, s.expires = backoff.Stop, true }), exhausted},
	{"wake at the expiry", vendorSaid(mc.ClassRetryable), with(within(3), func(s *situation) { s.expires, s.untilExpiry = true, 50*time.Millisecond }), step{kind: stepRetry, wait: 50 * time.Millisecond}},
	{"expired while retrying", vendorSaid(mc.ClassRetryable), with(within(3), func(s *situation) { s.expires, s.untilExpiry = true, 0 }), decided(idExpired)},
	{"expiry far off", vendorSaid(mc.ClassRetryable), with(within(3), func(s *situation) { s.expires, s.untilExpiry = true, time.Hour }), step{kind: stepRetry, wait: 200 * time.Millisecond}},
}

func TestNextStep(t *testing.T) {
	for _, tt := range stepCases {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, nextStep(tt.a, tt.s, testPolicy))
		})
	}
}

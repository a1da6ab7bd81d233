package dispatcher

import (
	"errors"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// Message is the source message of a request: what the dispatcher needs to
// keep it alive, acknowledge it once its outcome is published, or hand it
// back. A jetstream.Msg satisfies it.
//
// The ack is a plain one, sent without waiting for the server: it follows
// an outcome the stream has confirmed, so a lost ack only means a
// redelivery after AckWait, whose outcome the stream drops as a repeat by
// its Nats-Msg-Id (AckWait is kept well inside the duplicate window), and
// the first outcome stands.
type Message interface {
	InProgress() error
	Ack() error
	NakWithDelay(delay time.Duration) error
}

// Job is one valid request handed over by the consumer.
type Job struct {
	// Request is the decoded, validated request.
	Request *schemas.Request
	// Token is the control token from the message header; may be empty.
	Token string
	// Msg is acked after the outcome is published.
	Msg Message
	// Source is the original message, for the dead letter.
	Source outcome.Source
	// Span is the request's span, started by the consumer when it took
	// the message. The dispatcher links the batches that carry the
	// request to it, puts its trace context on the outcome messages, adds
	// the outcome to it and ends it once the message is settled; when
	// Submit or Fail returns an error the caller still owns it. Optional.
	Span trace.Span
}

// idKind is what became of one participant ID.
type idKind int

const (
	idDisconnected idKind = iota + 1
	idGone
	idFailed
	// idAborted: the call was cancelled by shutdown; nobody knows whether
	// the vendor acted, so the request is handed back for redelivery.
	idAborted
	// idExpired: every request waiting for the ID passed its expiresAt
	// before a call could be made.
	idExpired
	// idDeferred: the vendor said "not yet" (meeting not started, login
	// locked, long flow control); the request is handed back with a delay.
	idDeferred
)

// callRecord describes one hang-up call (with its retries) as it appears
// in the outcome of the requests it carried.
type callRecord struct {
	batchID   string
	attempts  int
	status    int
	code      string
	message   string
	requestID string
	err       error
}

// idOutcome is what one call chain decided for one participant ID.
type idOutcome struct {
	kind      idKind
	decidedBy *callRecord
	carriedBy []*callRecord
	// reason is the dead-letter reason of a failed ID.
	reason schemas.DeadLetterReason
	// delay is how long a deferred ID waits.
	delay time.Duration
}

// request is a Job while the dispatcher holds it. Its fields are owned by
// the loop goroutine until it is finalized, and by the finalizing
// goroutine after.
type request struct {
	job         Job
	remaining   int // IDs whose outcome is not yet known
	expired     bool
	aborted     bool
	deferDelay  time.Duration // > 0: hand the message back for this long
	disconnect  []string
	gone        []string
	failed      []string
	calls       []*callRecord
	seenCalls   map[*callRecord]struct{}
	decided     *callRecord // the call whose answer is reported
	failedBy    *callRecord // the first call that failed an ID
	reason      schemas.DeadLetterReason
	deferredIDs []string
	// failReason and failText are set for a job handed over with Fail.
	failReason schemas.DeadLetterReason
	failText   string
	// invalid is set for a message handed over with Reject.
	invalid *invalidMessage
}

// invalidMessage is the dead letter of a message that is no valid request,
// with the Nats-Msg-Id to publish it under.
type invalidMessage struct {
	deadLetter *schemas.DeadLetter
	msgID      string
}

func newRequest(job Job) *request {
	return &request{job: job, seenCalls: make(map[*callRecord]struct{})}
}

func (r *request) expiredAt(now time.Time) bool {
	exp := r.job.Request.ExpiresAt
	return exp != nil && !now.Before(*exp)
}

// record applies the outcome of one participant ID.
func (r *request) record(id string, o *idOutcome) {
	for _, c := range o.carriedBy {
		if _, ok := r.seenCalls[c]; !ok {
			r.seenCalls[c] = struct{}{}
			r.calls = append(r.calls, c)
		}
	}
	switch o.kind {
	case idDisconnected:
		r.disconnect = append(r.disconnect, id)
		r.decided = o.decidedBy
	case idGone:
		r.gone = append(r.gone, id)
		r.decided = o.decidedBy
	case idFailed:
		r.failed = append(r.failed, id)
		if r.failedBy == nil {
			r.failedBy = o.decidedBy
			r.reason = o.reason
		}
	case idAborted:
		r.aborted = true
	case idExpired:
		r.expired = true
	case idDeferred:
		r.deferDelay = max(r.deferDelay, o.delay)
		if r.failedBy == nil {
			r.failedBy, r.reason = o.decidedBy, schemas.ReasonRetriesExhausted
		}
		r.deferredIDs = append(r.deferredIDs, id)
	}
	r.remaining--
}

// giveUp turns the deferred IDs of a request that has waited too long
// into failures.
func (r *request) giveUp() {
	r.failed = append(r.failed, r.deferredIDs...)
	r.deferredIDs, r.deferDelay = nil, 0
}

// status is the request's outcome once remaining is zero.
func (r *request) status() schemas.Status {
	switch {
	case len(r.failed) > 0:
		return schemas.StatusFailed
	case r.expired:
		return schemas.StatusExpired
	default:
		return schemas.StatusSucceeded
	}
}

// result builds the result event.
func (r *request) result(now time.Time, workerID string) *schemas.Result {
	req := r.job.Request
	res := &schemas.Result{
		RequestID:            req.RequestID,
		ConferenceID:         req.ConferenceID,
		ParticipantIDs:       req.ParticipantIDs,
		Status:               r.status(),
		Disconnected:         nonNil(r.disconnect),
		AlreadyGone:          nonNil(r.gone),
		FailedParticipantIDs: nonNil(r.failed),
		BatchIDs:             []string{},
		ReceivedAt:           r.job.Source.ReceivedAt.UTC(),
		CompletedAt:          now.UTC(),
		WorkerID:             workerID,
		ReplayOf:             req.ReplayOf,
	}
	for _, c := range r.calls {
		res.Attempts += c.attempts
		res.BatchIDs = append(res.BatchIDs, c.batchID)
	}
	decided := r.decided
	if r.failedBy != nil {
		decided = r.failedBy
	}
	if decided != nil {
		res.HTTPStatus = decided.status
		res.ErrorCode = decided.code
		res.ErrorMessage = decided.message
		res.APIRequestID = decided.requestID
	}
	if res.Status == schemas.StatusExpired && res.ErrorMessage == "" {
		res.ErrorMessage = "expiresAt " + req.ExpiresAt.UTC().Format(time.RFC3339) + " passed before the participants were disconnected"
	}
	return res
}

// deadLetterFor builds the dead letter of a request whose result res is
// failed. res is normally this attempt's result; when an earlier attempt's
// failed result stands instead and this attempt did not fail, the dead
// letter is rebuilt from that result.
func (r *request) deadLetterFor(res *schemas.Result, now time.Time, workerID string) *schemas.DeadLetter {
	reason, text := r.reason, "the vendor refused to disconnect participants"
	switch {
	case r.failText != "":
		text = r.failText
	case r.failedBy != nil && len(r.failed) > 0:
		text = describeFailure(r.failedBy, r.reason)
	default:
		reason = schemas.ReasonRejected
		if res.HTTPStatus == 0 || res.HTTPStatus >= 500 || res.HTTPStatus == 429 {
			reason = schemas.ReasonRetriesExhausted
		}
		text = "an earlier attempt failed: " + res.ErrorMessage
		if res.ErrorCode != "" {
			text += " (" + res.ErrorCode + ")"
		}
	}
	dl := r.job.Source.DeadLetter(reason, text, now, workerID)
	dl.RequestID = r.job.Request.RequestID
	dl.ConferenceID = r.job.Request.ConferenceID
	return dl
}

// describeFailure is the sentence a person reads in a dead letter.
func describeFailure(c *callRecord, reason schemas.DeadLetterReason) string {
	var apiErr *meetingclient.APIError
	detail := ""
	if errors.As(c.err, &apiErr) {
		detail = apiErr.Error()
	} else if c.err != nil {
		detail = c.err.Error()
	}
	switch reason {
	case schemas.ReasonRetriesExhausted:
		return "retries exhausted after " + strconv.Itoa(c.attempts) + " attempts; last answer: " + detail + ". Republish the request once the meeting API is healthy."
	default:
		return "the meeting API refused the hang-up: " + detail + ". Check the meeting, the control token and the participant IDs before republishing."
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

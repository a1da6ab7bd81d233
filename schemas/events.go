package schemas

import (
	"encoding/json"
	"time"
)

// Version is the version of the event contract described in this package.
const Version = 1

// Default subjects and stream names of the event contract. Every name is
// configurable in the worker; these are what producers and consumers get
// when nobody changes them.
const (
	DefaultRequestStream    = "DISCONNECT_REQUESTS"
	DefaultResultStream     = "DISCONNECT_RESULTS"
	DefaultDeadLetterStream = "DISCONNECT_DLQ"

	DefaultRequestSubjectPrefix    = "meeting.disconnect.requests"
	DefaultResultSubjectPrefix     = "meeting.disconnect.results"
	DefaultDeadLetterSubjectPrefix = "meeting.disconnect.dlq"

	// InvalidConferenceToken is the last subject token of a dead letter
	// whose message carried no valid conference ID.
	InvalidConferenceToken = "_invalid"

	// TokenHeader carries the meeting control token on a request message.
	TokenHeader = "X-Conference-Authorization"
	// Redacted stands in for a secret wherever one would otherwise show:
	// the value of a secret header in a dead letter, a token or password
	// in a log or an error.
	Redacted = "[redacted]"
	// MsgIDHeader is the JetStream de-duplication header; producers set it
	// to the request ID.
	MsgIDHeader = "Nats-Msg-Id"
)

// Limits of a request. MaxParticipants is the default of a configurable cap.
const (
	MaxPayloadBytes        = 64 * 1024
	MaxRequestIDLen        = 128
	MaxConferenceIDLen     = 64
	DefaultMaxParticipants = 500
	MaxParticipantIDLen    = 128
	MaxReasonLen           = 1024
	MaxRequestedByLen      = 256
)

// Request asks the worker to disconnect participants from one conference.
// It is published to <request prefix>.<conferenceID> with Nats-Msg-Id set to
// RequestID and the control token in the X-Conference-Authorization header.
//
// Decode requests with [DecodeRequest], which enforces the rules below;
// request.schema.json states the same rules for other languages.
type Request struct {
	// RequestID identifies the request end to end: 1 to 128 characters of
	// A-Z a-z 0-9 . _ : -. It is the Nats-Msg-Id of the request, the result
	// and the dead letter.
	RequestID string `json:"requestID"`
	// ConferenceID is the meeting: 1 to 64 characters of A-Z a-z 0-9 _ -,
	// equal to the last token of the request subject.
	ConferenceID string `json:"conferenceID"`
	// ParticipantIDs lists 1 to MaxParticipants IDs, each 1 to 128
	// characters of printable ASCII without spaces. DecodeRequest removes
	// repeats, keeping the first of each.
	ParticipantIDs []string `json:"participantIDs"`
	// Reason is free text for the audit trail, at most 1024 characters,
	// without control characters.
	Reason string `json:"reason,omitempty"`
	// RequestedBy names who asked, at most 256 characters, without control
	// characters.
	RequestedBy string `json:"requestedBy,omitempty"`
	// ExpiresAt, when set, is the instant after which the worker must not
	// start the work any more (RFC 3339 with a time zone on the wire).
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// ReplayOf, when set, is the request ID of the request this one
	// replays (`worker dlq replay` publishes a dead-lettered request again
	// under a new request ID): 1 to 128 characters of A-Z a-z 0-9 . _ : -.
	// The worker treats it as data and copies it to the result.
	ReplayOf string `json:"replayOf,omitempty"`
}

// Status is the outcome of a valid request.
type Status string

// The statuses of a result event.
const (
	// StatusSucceeded: every participant was disconnected or already gone.
	StatusSucceeded Status = "succeeded"
	// StatusFailed: at least one participant could not be disconnected; a
	// dead letter accompanies the result.
	StatusFailed Status = "failed"
	// StatusExpired: expiresAt passed before the work was done; no API call
	// was made for the participants not yet handled.
	StatusExpired Status = "expired"
)

// Result is published once per valid request to
// <result prefix>.<conferenceID> with Nats-Msg-Id set to the request ID.
//
// Its list fields are always arrays on the wire, never null: see
// [Result.MarshalJSON].
type Result struct {
	// RequestID and ConferenceID are copied from the request.
	RequestID    string `json:"requestID"`
	ConferenceID string `json:"conferenceID"`
	// ParticipantIDs are the request's IDs, repeats removed.
	ParticipantIDs []string `json:"participantIDs"`
	// Status is the outcome.
	Status Status `json:"status"`
	// Disconnected, AlreadyGone and FailedParticipantIDs partition
	// ParticipantIDs when Status is succeeded or failed. When it is expired,
	// the IDs not handled before expiry are in none of them.
	Disconnected         []string `json:"disconnected"`
	AlreadyGone          []string `json:"alreadyGone"`
	FailedParticipantIDs []string `json:"failedParticipantIDs"`
	// Attempts counts the vendor API calls that carried this request's IDs,
	// retries and split calls included.
	Attempts int `json:"attempts"`
	// BatchIDs are the IDs of those calls.
	BatchIDs []string `json:"batchIDs"`
	// HTTPStatus, ErrorCode, ErrorMessage and APIRequestID are the vendor's
	// answer to the last call that decided the outcome; APIRequestID is its
	// X-Request-Id header.
	HTTPStatus   int    `json:"httpStatus,omitempty"`
	ErrorCode    string `json:"errorCode,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
	APIRequestID string `json:"apiRequestID,omitempty"`
	// ReceivedAt is when the request stream stored the request.
	ReceivedAt time.Time `json:"receivedAt"`
	// CompletedAt is when the worker decided the outcome.
	CompletedAt time.Time `json:"completedAt"`
	// WorkerID names the worker instance that decided.
	WorkerID string `json:"workerID"`
	// ReplayOf is copied from the request: the request ID of the request
	// it replays, when it is a replay.
	ReplayOf string `json:"replayOf,omitempty"`
}

// DeadLetterReason says why a message went to the dead-letter stream.
type DeadLetterReason string

// The reasons of a dead letter.
const (
	// ReasonInvalidRequest: the message is not a valid request.
	ReasonInvalidRequest DeadLetterReason = "invalid_request"
	// ReasonRejected: the vendor refused the call for good (meeting gone,
	// no permission, no working token, a bad participant ID).
	ReasonRejected DeadLetterReason = "rejected"
	// ReasonRetriesExhausted: retryable failures lasted longer than the
	// retry budget.
	ReasonRetriesExhausted DeadLetterReason = "retries_exhausted"
	// ReasonMaxDeliveries: the message was delivered the maximum number of
	// times without completing.
	ReasonMaxDeliveries DeadLetterReason = "max_deliveries"
)

// DeadLetter is published to <dlq prefix>.<conferenceID>, or
// <dlq prefix>._invalid where no valid conference ID exists. It carries the
// original message so that an operator can act on it and republish it.
type DeadLetter struct {
	// Reason says why the message is here.
	Reason DeadLetterReason `json:"reason"`
	// Error is a sentence a person can act on.
	Error string `json:"error"`
	// RequestID and ConferenceID are set when they are known and valid.
	RequestID    string `json:"requestID,omitempty"`
	ConferenceID string `json:"conferenceID,omitempty"`
	// Subject, StreamSequence and Deliveries describe the original message.
	Subject        string `json:"subject"`
	StreamSequence uint64 `json:"streamSequence"`
	Deliveries     uint64 `json:"deliveries"`
	// Request is the original payload, verbatim, when it is valid JSON; it
	// must hold valid JSON or marshalling fails. Otherwise PayloadBase64
	// holds the payload; at most one of the two is set.
	Request       json.RawMessage `json:"request,omitempty"`
	PayloadBase64 string          `json:"payloadBase64,omitempty"`
	// Headers are the original headers, secrets (the control token)
	// redacted.
	Headers map[string][]string `json:"headers,omitempty"`
	// ReceivedAt is when the request stream stored the original message;
	// DeadLetteredAt is when the worker gave up on it.
	ReceivedAt     time.Time `json:"receivedAt"`
	DeadLetteredAt time.Time `json:"deadLetteredAt"`
	// WorkerID names the worker instance that wrote the dead letter.
	WorkerID string `json:"workerID,omitempty"`
}

package meetingclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hangup-dev/hangup/schemas"
)

// Operation names, used as [APIError.Op] and as the prefix of error strings.
const (
	OpHangUp       = "hang up"
	OpCreateToken  = "create token"
	OpRealTimeInfo = "real-time info"
)

const (
	// maxBodyBytes is the most of any response body the client reads.
	maxBodyBytes = 64 << 10
	// maxMessageBytes bounds APIError.Message.
	maxMessageBytes = 256
	// maxRequestIDBytes bounds APIError.RequestID.
	maxRequestIDBytes = 128
	// maxCodeBytes bounds APIError.Code.
	maxCodeBytes = 64
	// maxRetryAfter bounds APIError.RetryAfter, so that a hostile or broken
	// header cannot park a caller for years.
	maxRetryAfter = 24 * time.Hour
)

// ErrCallTimeout is wrapped by the [*APIError] of a call that ran out of its
// per-call [Config.Timeout]. It is distinct from [context.DeadlineExceeded],
// which is only returned when the caller's own context expires.
var ErrCallTimeout = errors.New("call timed out")

// Class says what a caller should do about a failed call. The zero value is
// not a valid class.
type Class int

// The classes. Vendor codes and HTTP statuses map to them as described on
// each; [DecodeError] applies the mapping.
const (
	// ClassRetryable: HTTP 5xx and 408, connection errors, per-call timeouts,
	// and the vendor's "timeout / hang-up failed / service error" codes
	// (MMC.111072049, MMC.111072009, MMC.111072012, MMC.111070003,
	// MMC.111071001, MMC.111071002, MMC.111070113, MMC.111070114,
	// MMC.111084009). Retry with backoff.
	ClassRetryable Class = iota + 1
	// ClassFlowControl: HTTP 429 and MMC.100000429. Retry with backoff and
	// slow down globally.
	ClassFlowControl
	// ClassNotStarted: MMC.111072005, MMC.111072004. The meeting has not
	// started yet; retry with backoff.
	ClassNotStarted
	// ClassLocked: MMC.111072064. Control login is locked after failed
	// attempts; retry after minutes.
	ClassLocked
	// ClassAuthExpired: HTTP 401, USG.000000004, MMC.111070004, and
	// MMC.111072065 on calls made with a token (hang up, real-time info).
	// Obtain a new token and retry once.
	ClassAuthExpired
	// ClassParticipantGone: MMC.111072008, MMC.111080004, MMC.111082003,
	// MMC.111082004. The participant is already gone: success for that ID.
	ClassParticipantGone
	// ClassBadParameter: MMC.111071061, MMC.111071062, MMC.111070001,
	// MMC.111072057. Permanent for the call; split the batch to find the bad
	// ID.
	ClassBadParameter
	// ClassMeetingGone: MMC.111070005, MMC.111071072, MMC.111072006. The
	// meeting does not exist or has ended; nobody is left to disconnect.
	ClassMeetingGone
	// ClassMeetingEnding: MMC.111072003. The meeting is ending; counts as
	// done.
	ClassMeetingEnding
	// ClassForbidden: HTTP 403, MMC.111070002, MMC.111080002. Permanent.
	ClassForbidden
	// ClassPermanent: everything else that is not retryable, e.g.
	// MMC.111072065 on create token (wrong meeting ID or host password), an
	// unknown 4xx, a redirect.
	ClassPermanent
)

var classNames = [...]string{
	ClassRetryable:       "retryable",
	ClassFlowControl:     "flow_control",
	ClassNotStarted:      "not_started",
	ClassLocked:          "locked",
	ClassAuthExpired:     "auth_expired",
	ClassParticipantGone: "participant_gone",
	ClassBadParameter:    "bad_parameter",
	ClassMeetingGone:     "meeting_gone",
	ClassMeetingEnding:   "meeting_ending",
	ClassForbidden:       "forbidden",
	ClassPermanent:       "permanent",
}

// String returns the snake_case name of the class, e.g. "flow_control", fit
// for a metric label. An invalid class prints as "Class(n)".
func (c Class) String() string {
	if c.Valid() {
		return classNames[c]
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Valid reports whether c is one of the declared classes.
func (c Class) Valid() bool { return c >= ClassRetryable && c <= ClassPermanent }

// Retryable reports whether the same call may succeed later: true for
// ClassRetryable, ClassFlowControl, ClassNotStarted and ClassLocked.
// ClassAuthExpired is not retryable as such: the call needs a new token first.
func (c Class) Retryable() bool {
	switch c {
	case ClassRetryable, ClassFlowControl, ClassNotStarted, ClassLocked:
		return true
	default:
		return false
	}
}

// codeClasses maps vendor error codes to classes. MMC.111072065 is absent: its
// class depends on the operation, see classify.
var codeClasses = map[string]Class{
	// Meeting does not exist, or has ended.
	"MMC.111070005": ClassMeetingGone,
	"MMC.111071072": ClassMeetingGone,
	"MMC.111072006": ClassMeetingGone,
	// Meeting is ending.
	"MMC.111072003": ClassMeetingEnding,
	// Authentication failed, token invalid or expired.
	"MMC.111070004": ClassAuthExpired,
	"USG.000000004": ClassAuthExpired,
	// No permission.
	"MMC.111070002": ClassForbidden,
	"MMC.111080002": ClassForbidden,
	// Parameter, JSON or empty body errors.
	"MMC.111071061": ClassBadParameter,
	"MMC.111071062": ClassBadParameter,
	"MMC.111070001": ClassBadParameter,
	"MMC.111072057": ClassBadParameter,
	// Participant not found, deleted or offline.
	"MMC.111072008": ClassParticipantGone,
	"MMC.111080004": ClassParticipantGone,
	"MMC.111082003": ClassParticipantGone,
	"MMC.111082004": ClassParticipantGone,
	// Meeting not started yet, or starting.
	"MMC.111072005": ClassNotStarted,
	"MMC.111072004": ClassNotStarted,
	// Server flow control.
	"MMC.100000429": ClassFlowControl,
	// Timeout, hang-up failed, service error.
	"MMC.111072049": ClassRetryable,
	"MMC.111072009": ClassRetryable,
	"MMC.111072012": ClassRetryable,
	"MMC.111070003": ClassRetryable,
	"MMC.111071001": ClassRetryable,
	"MMC.111071002": ClassRetryable,
	"MMC.111070113": ClassRetryable,
	"MMC.111070114": ClassRetryable,
	"MMC.111084009": ClassRetryable,
	// Control login locked after failed attempts.
	"MMC.111072064": ClassLocked,
}

// codeConfNotFoundOrAuthFailed means "meeting ID or password wrong". On
// create token that is the host password (permanent); on a call made with a
// token it means the token no longer fits (get a new one).
const codeConfNotFoundOrAuthFailed = "MMC.111072065"

// classify decides the class of a failed call: a known vendor code wins,
// otherwise the HTTP status decides.
func classify(op string, status int, code string) Class {
	code = strings.ToUpper(code)
	if code == codeConfNotFoundOrAuthFailed {
		if op == OpCreateToken {
			return ClassPermanent
		}
		return ClassAuthExpired
	}
	if c, ok := codeClasses[code]; ok {
		return c
	}
	switch {
	case status == 0:
		return ClassRetryable // no response arrived
	case status == http.StatusUnauthorized:
		return ClassAuthExpired
	case status == http.StatusForbidden:
		return ClassForbidden
	case status == http.StatusTooManyRequests:
		return ClassFlowControl
	case status == http.StatusRequestTimeout:
		return ClassRetryable
	case status >= 500 && status <= 599:
		return ClassRetryable
	default:
		return ClassPermanent
	}
}

// APIError is the error of a call that did not succeed for a reason other
// than the caller's context ending. Its Error string never holds a token or
// a password.
type APIError struct {
	// Op is the operation: OpHangUp, OpCreateToken or OpRealTimeInfo.
	Op string
	// Status is the HTTP status; 0 when no response arrived.
	Status int
	// Code is the vendor error_code, e.g. "MMC.111072065"; "" when absent or
	// unparsable.
	Code string
	// Message is the vendor error_msg, or the transport error text; printable
	// and at most 256 bytes.
	Message string
	// RequestID is the X-Request-Id header, else the body's request_id.
	RequestID string
	// Class says what to do about the error.
	Class Class
	// RetryAfter is the server's Retry-After (seconds or HTTP-date), at most
	// 24h; 0 when absent or invalid.
	RetryAfter time.Duration
	// Err is the underlying transport error, if any.
	Err error
}

// Error returns e.g.
// "hang up: HTTP 400 MMC.111072008 PARTICIPANT_NOT_FOUND (request 5f2c)".
func (e *APIError) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Status == 0 {
		if e.Message != "" {
			b.WriteString(e.Message)
		} else {
			b.WriteString("no response")
		}
	} else {
		b.WriteString("HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
		if e.Code != "" {
			b.WriteByte(' ')
			b.WriteString(e.Code)
		}
		if e.Message != "" {
			b.WriteByte(' ')
			b.WriteString(e.Message)
		}
	}
	if e.RequestID != "" {
		b.WriteString(" (request ")
		b.WriteString(e.RequestID)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns the underlying transport error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// ClassOf returns the class of err: the Class of the [*APIError] in its chain,
// else ClassRetryable (an error this package did not classify, such as the
// caller's context ending, says nothing against trying again). ClassOf(nil)
// is 0, which is not a valid class.
func ClassOf(err error) Class {
	if err == nil {
		return 0
	}
	if ae, ok := errors.AsType[*APIError](err); ok && ae.Class.Valid() {
		return ae.Class
	}
	return ClassRetryable
}

// DecodeError builds the typed error of a response with a non-2xx status from
// its status, header and body. The header may be nil and the body anything:
// only its first 64 KiB are looked at, and DecodeError never panics.
//
// It expects the vendor's error body,
// {"error_code": "MMC.111072065", "error_msg": "...", "request_id": "..."};
// a body that is not such JSON leaves Code and Message empty and the status
// decides the class.
func DecodeError(op string, status int, header http.Header, body []byte) *APIError {
	return decodeError(op, status, header, body, nil)
}

// decodeError is DecodeError that also removes the given secrets from every
// string it copies from the response, before truncating them.
func decodeError(op string, status int, header http.Header, body []byte, secrets []string) *APIError {
	if len(body) > maxBodyBytes {
		body = body[:maxBodyBytes]
	}
	e := &APIError{
		Op:         op,
		Status:     status,
		RetryAfter: parseRetryAfter(header),
	}
	code, msg, reqID := parseErrorBody(body)
	if validCode(code) {
		e.Code = code
	}
	e.Class = classify(op, status, e.Code)
	e.Message = cleanString(msg, maxMessageBytes, secrets)
	e.RequestID = cleanString(header.Get("X-Request-Id"), maxRequestIDBytes, secrets)
	if e.RequestID == "" {
		e.RequestID = cleanString(reqID, maxRequestIDBytes, secrets)
	}
	if !knownCode(e.Code) {
		// A known code is ours, not the server's: nothing to hide in it.
		e.Code = redact(e.Code, secrets)
	}
	return e
}

// parseErrorBody returns the error_code, error_msg and request_id of a vendor
// error body; empty strings for what is missing or not a string or number.
func parseErrorBody(body []byte) (code, msg, requestID string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return "", "", ""
	}
	var eb struct {
		ErrorCode any `json:"error_code"`
		ErrorMsg  any `json:"error_msg"`
		RequestID any `json:"request_id"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&eb); err != nil {
		return "", "", ""
	}
	return scalarString(eb.ErrorCode), scalarString(eb.ErrorMsg), scalarString(eb.RequestID)
}

// scalarString returns v as a string if it is a JSON string or number.
func scalarString(v any) string {
	switch v := v.(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	default:
		return ""
	}
}

// validCode reports whether s looks like a vendor error code: 1 to 64 bytes
// of letters, digits, '.', '_' and '-'.
func validCode(s string) bool {
	if s == "" || len(s) > maxCodeBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// sanitize makes s safe to print: tabs and line breaks become spaces, other
// non-printable runes are dropped, invalid UTF-8 becomes '?', and the result
// is trimmed to at most max bytes without splitting a rune.
func sanitize(s string, max int) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			// Invalid UTF-8 (or U+FFFD itself): keep a visible marker.
			_, size := utf8.DecodeRuneInString(s[i:])
			if size <= 1 {
				r = '?'
			}
		case r == '\t' || r == '\n' || r == '\r':
			r = ' '
		case !unicode.IsPrint(r):
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date. A date
// is measured against the response's Date header when it has one, else
// against the local clock. The result is 0 when absent, invalid or in the
// past, and at most maxRetryAfter.
func parseRetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter // all digits, so only too large to parse
		}
		return time.Duration(n) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	ref := time.Now()
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		ref = date
	}
	d := at.Sub(ref)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// redact replaces every occurrence of the non-empty secrets in s.
func redact(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" && strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	return s
}

// redacted replaces secrets found in text copied from a response.
const redacted = schemas.Redacted

// cleanString removes secrets from s, then sanitizes it to at most max
// bytes, then removes secrets once more in case sanitizing joined one up.
func cleanString(s string, max int, secrets []string) string {
	s = sanitize(redact(s, secrets), max)
	if r := redact(s, secrets); r != s {
		s = sanitize(r, max)
	}
	return s
}

// knownCode reports whether code is in the classification table.
func knownCode(code string) bool {
	code = strings.ToUpper(code)
	_, ok := codeClasses[code]
	return ok || code == codeConfNotFoundOrAuthFailed
}

// errorf builds an APIError for a failure found before or after the HTTP
// exchange rather than reported by the server.
func errorf(op string, class Class, format string, args ...any) *APIError {
	return &APIError{Op: op, Class: class, Message: sanitize(fmt.Sprintf(format, args...), maxMessageBytes)}
}

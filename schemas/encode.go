package schemas

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON encodes r with every nil list as an empty array, so that
// consumers always find arrays where result.schema.json promises them.
//
// It writes the same bytes as encoding/json would for r's fields (HTML
// characters escaped, invalid UTF-8 replaced), without reflection: one
// result is encoded per request, on the worker's hottest path.
func (r Result) MarshalJSON() ([]byte, error) {
	size := 320 + len(r.RequestID) + len(r.ConferenceID) + len(r.ErrorMessage) + len(r.ErrorCode) +
		len(r.APIRequestID) + len(r.WorkerID) + len(r.ReplayOf) + listSize(r.ParticipantIDs) + listSize(r.Disconnected) +
		listSize(r.AlreadyGone) + listSize(r.FailedParticipantIDs) + listSize(r.BatchIDs)
	b := make([]byte, 0, size)
	b = append(b, `{"requestID":`...)
	b = appendString(b, r.RequestID)
	b = append(b, `,"conferenceID":`...)
	b = appendString(b, r.ConferenceID)
	b = append(b, `,"participantIDs":`...)
	b = appendList(b, r.ParticipantIDs)
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Status))
	b = append(b, `,"disconnected":`...)
	b = appendList(b, r.Disconnected)
	b = append(b, `,"alreadyGone":`...)
	b = appendList(b, r.AlreadyGone)
	b = append(b, `,"failedParticipantIDs":`...)
	b = appendList(b, r.FailedParticipantIDs)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = append(b, `,"batchIDs":`...)
	b = appendList(b, r.BatchIDs)
	if r.HTTPStatus != 0 {
		b = append(b, `,"httpStatus":`...)
		b = strconv.AppendInt(b, int64(r.HTTPStatus), 10)
	}
	b = appendOptional(b, `,"errorCode":`, r.ErrorCode)
	b = appendOptional(b, `,"errorMessage":`, r.ErrorMessage)
	b = appendOptional(b, `,"apiRequestID":`, r.APIRequestID)
	var err error
	b = append(b, `,"receivedAt":`...)
	if b, err = appendTime(b, r.ReceivedAt, "receivedAt"); err != nil {
		return nil, err
	}
	b = append(b, `,"completedAt":`...)
	if b, err = appendTime(b, r.CompletedAt, "completedAt"); err != nil {
		return nil, err
	}
	b = append(b, `,"workerID":`...)
	b = appendString(b, r.WorkerID)
	b = appendOptional(b, `,"replayOf":`, r.ReplayOf)
	return append(b, '}'), nil
}

func listSize(list []string) int {
	n := 2
	for _, s := range list {
		n += len(s) + 3
	}
	return n
}

func appendList(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

func appendOptional(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendTime writes t as encoding/json does (RFC 3339 with nanoseconds),
// and refuses what JSON cannot carry, as encoding/json does.
func appendTime(b []byte, t time.Time, field string) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("json: error calling MarshalJSON for type schemas.Result: %s: year outside of range [0,9999]", field)
	}
	if _, offset := t.Zone(); offset <= -24*60*60 || offset >= 24*60*60 {
		return nil, fmt.Errorf("json: error calling MarshalJSON for type schemas.Result: %s: timezone hour outside of range [0,23]", field)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string the way encoding/json does:
// '<', '>' and '&' escaped for HTML, control characters as \b \f \n \r \t
// or \u00XX, invalid UTF-8 as U+FFFD, and U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

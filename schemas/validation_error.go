package schemas

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ValidationError says why a message is not a valid request. Every error
// returned by [DecodeRequest], [ValidateToken] and [ValidateConferenceID] is
// one; callers find it with errors.As. Its text is meant for the dead letter:
// it names the field and says what is wrong in words a producer can act on,
// and it never repeats a secret.
type ValidationError struct {
	// Field is the JSON name of the offending field ("participantIDs[3]"),
	// "subject" for the subject the message arrived on, the header name for
	// a header, or "" when the problem concerns the whole message.
	Field string
	// Problem is what is wrong, e.g. "contains a space".
	Problem string
}

// Error returns "<field>: <problem>", or just the problem when Field is
// empty.
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// ValidateConferenceID checks a conference ID: 1 to 64 characters, each a
// letter, a digit, "_" or "-". A valid conference ID is also a valid NATS
// subject token, so it can name a result or dead-letter subject.
func ValidateConferenceID(id string) error {
	if err := validateConferenceID(id); err != nil {
		return err
	}
	return nil
}

func validateConferenceID(id string) *ValidationError {
	const field = "conferenceID"
	if id == "" {
		return invalid(field, "must not be empty")
	}
	if n := utf8.RuneCountInString(id); n > MaxConferenceIDLen {
		return invalid(field, "is %d characters long; the limit is %d", n, MaxConferenceIDLen)
	}
	pos := 0 // the number of the character r, from 1
	for _, r := range id {
		pos++
		if isConferenceIDRune(r) {
			continue
		}
		switch r {
		case '.':
			return invalid(field, `contains "." at character %d; "." separates NATS subject tokens, so a conference ID may only contain letters, digits, "_" and "-"`, pos)
		case '*', '>':
			return invalid(field, `contains %q at character %d; %q is a NATS subject wildcard, so a conference ID may only contain letters, digits, "_" and "-"`, string(r), pos, string(r))
		}
		return invalid(field, `contains %s at character %d; a conference ID may only contain letters, digits, "_" and "-"`, describeRune(r), pos)
	}
	return nil
}

func validateRequestID(id string) *ValidationError {
	return validateIDField(fieldRequestID, id)
}

// validateIDField checks a field that holds a request ID (requestID,
// replayOf) by the rules of ValidateRequestID.
func validateIDField(field, id string) *ValidationError {
	if id == "" {
		return invalid(field, "must not be empty")
	}
	if n := utf8.RuneCountInString(id); n > MaxRequestIDLen {
		return invalid(field, "is %d characters long; the limit is %d", n, MaxRequestIDLen)
	}
	pos := 0 // the number of the character r, from 1
	for _, r := range id {
		pos++
		if !isRequestIDRune(r) {
			return invalid(field, `contains %s at character %d; a request ID may only contain letters, digits, ".", "_", ":" and "-"`, describeRune(r), pos)
		}
	}
	return nil
}

func validateParticipantID(field, id string) *ValidationError {
	if id == "" {
		return invalid(field, "must not be empty")
	}
	if n := utf8.RuneCountInString(id); n > MaxParticipantIDLen {
		return invalid(field, "is %d characters long; the limit is %d", n, MaxParticipantIDLen)
	}
	pos := 0 // the number of the character r, from 1
	for _, r := range id {
		pos++
		if r == ' ' {
			return invalid(field, "contains a space at character %d; a participant ID is printable ASCII without spaces", pos)
		}
		if r < 0x21 || r > 0x7E {
			return invalid(field, "contains %s at character %d; a participant ID is printable ASCII without spaces", describeRune(r), pos)
		}
	}
	return nil
}

// validateText checks a free-text field: at most limit characters (runes),
// no control characters (C0, DEL, C1). Any other Unicode is fine.
func validateText(field, s string, limit int) *ValidationError {
	if n := utf8.RuneCountInString(s); n > limit {
		return invalid(field, "is %d characters long; the limit is %d", n, limit)
	}
	pos := 0 // the number of the character r, from 1
	for _, r := range s {
		pos++
		if isControl(r) {
			return invalid(field, "contains control character %s at character %d; use a single line of plain text", describeRune(r), pos)
		}
	}
	return nil
}

// ValidateToken checks the value of the control token header
// ([TokenHeader]) before it is sent to the vendor: 1 to 1024 bytes of
// printable ASCII without spaces, or "Basic " followed by base64. Its errors
// say what is wrong and where, never what the token is.
func ValidateToken(token string) error {
	if err := validateToken(token); err != nil {
		return err
	}
	return nil
}

func validateToken(token string) *ValidationError {
	const field = TokenHeader
	const maxTokenLen = 1024
	if token == "" {
		return invalid(field, "is empty; set it to the meeting control token")
	}
	if len(token) > maxTokenLen {
		return invalid(field, "is %d bytes long; the limit is %d", len(token), maxTokenLen)
	}
	const basic = "Basic "
	if len(token) >= len(basic) && strings.EqualFold(token[:len(basic)], basic) {
		rest := token[len(basic):]
		if rest == "" {
			return invalid(field, `is "Basic " with nothing after it; append the base64 of the control token`)
		}
		for i := 0; i < len(rest); i++ {
			if !isBase64Byte(rest[i]) {
				return invalid(field, `has a %s at byte %d after "Basic "; only base64 (A-Z, a-z, 0-9, +, /, =) may follow it`, describeByte(rest[i]), len(basic)+i+1)
			}
		}
		return nil
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c == ' ' {
			return invalid(field, `contains a space at byte %d; only the form "Basic <base64>" may contain one`, i+1)
		}
		if c < 0x21 || c > 0x7E {
			return invalid(field, "has a %s at byte %d; a control token is printable ASCII", describeByte(c), i+1)
		}
	}
	return nil
}

func isConferenceIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

func isRequestIDRune(r rune) bool {
	return isConferenceIDRune(r) || r == '.' || r == ':'
}

func isBase64Byte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
}

// isControl reports whether r is a C0 control, DEL or a C1 control.
func isControl(r rune) bool {
	return r < 0x20 || r >= 0x7F && r <= 0x9F
}

// describeRune names a character for an error message: `"/" (U+002F)`, or
// just the code point when the character would not print.
func describeRune(r rune) string {
	switch {
	case r == ' ':
		return "a space"
	case isControl(r):
		return fmt.Sprintf("U+%04X", r)
	default:
		return fmt.Sprintf("%q (U+%04X)", string(r), r)
	}
}

// describeByte names a byte of a secret without revealing it: the class of
// the byte, never its value.
func describeByte(c byte) string {
	switch {
	case c == ' ':
		return "space"
	case c < 0x20 || c == 0x7F:
		return "control character"
	case c >= 0x80:
		return "non-ASCII byte"
	default:
		return "character that is not allowed"
	}
}

// quote renders an untrusted string for an error message: Go-quoted, so
// control characters are escaped, and cut after 64 characters.
func quote(s string) string {
	const limit = 64
	if utf8.RuneCountInString(s) <= limit {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…", string([]rune(s)[:limit]))
}

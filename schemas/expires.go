package schemas

import (
	"errors"
	"regexp"
	"strings"
	"time"
)

// expiresAtPattern is the shape of an RFC 3339 date-time with a time zone,
// kept equal to the "pattern" of expiresAt in request.schema.json. Seconds
// stop at 59: Go's time package cannot represent a leap second.
var expiresAtPattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

func parseExpiresAt(s string) (time.Time, *ValidationError) {
	const field = fieldExpiresAt
	if !hasExpiresAtShape(s) {
		return time.Time{}, invalid(field, `%s is not an RFC 3339 date-time with a time zone; write it like "2025-06-01T12:30:00Z" or "2025-06-01T14:30:00+02:00"`, quote(s))
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		why := err.Error()
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			why = strings.TrimPrefix(pe.Message, ": ")
		}
		return time.Time{}, invalid(field, "%s is not a valid date-time: %s", quote(s), why)
	}
	t = t.UTC()
	// JSON (and so a re-published request) can only carry years 0000-9999.
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, invalid(field, "%s is outside the years 0000 to 9999 in UTC", quote(s))
	}
	return t, nil
}

// expiresAtShape spells out the first 19 characters that expiresAtPattern
// allows: 'd' stands for a digit, 's' for 0 to 5, 'T' for T or t.
const expiresAtShape = "dddd-dd-ddTdd:dd:sd"

// hasExpiresAtShape reports whether expiresAtPattern matches s, without the
// cost of a regular expression; the tests compare the two.
func hasExpiresAtShape(s string) bool {
	if len(s) < len(expiresAtShape)+1 || !fitsShape(s[:len(expiresAtShape)], expiresAtShape) {
		return false
	}
	rest := s[len(expiresAtShape):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z" || rest == "z":
		return true
	case len(rest) != len("+00:00") || rest[0] != '+' && rest[0] != '-':
		return false
	case rest[1] == '2' && (rest[2] < '0' || rest[2] > '3'):
		return false
	}
	return fitsShape(rest[1:], "hd:sd")
}

// fitsShape reports whether s has the shape: see expiresAtShape, and 'h'
// stands for 0 to 2.
func fitsShape(s, shape string) bool {
	if len(s) != len(shape) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		var ok bool
		switch shape[i] {
		case 'd':
			ok = isDigit(c)
		case 's':
			ok = c >= '0' && c <= '5'
		case 'h':
			ok = c >= '0' && c <= '2'
		case 'T':
			ok = c == 'T' || c == 't'
		default:
			ok = c == shape[i]
		}
		if !ok {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool {
	return c >= '0' && c <= '9'
}

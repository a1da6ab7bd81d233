package schemas

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
)

// The fast path of DecodeRequest. A valid request is a small, valid JSON
// object, and the worker decodes one per message, so that case is worth
// decoding without encoding/json's Decoder, which allocates for every token.
// Once json.Valid has accepted the payload, the scanner below may assume
// valid JSON: it only has to find where each key and value ends. Anything
// else (invalid JSON, a top-level value that is not an object) goes to
// decodeRequestSlow, whose error texts are the reference; the fast path
// must return exactly what decodeRequestSlow would, which the tests check.

// linearDedupMax is the longest participant list de-duplicated by comparing
// each ID with those kept so far; longer lists use a map.
const linearDedupMax = 16

// fastDecoder takes values out of a payload that json.Valid accepts.
type fastDecoder struct {
	data []byte
	// text is string(data), made when the first string value is taken:
	// every string without escapes is a part of it, so one copy of the
	// payload serves them all. The Request keeps the copy alive, which
	// costs little: a valid request's payload is mostly its values.
	text string
}

// decodeRequestFast decodes data, which passed [checkPayload], when it is a
// valid JSON object; ok is false when it is not, and decodeRequestSlow must
// decide.
func decodeRequestFast(subject string, data []byte, opts DecodeOptions) (req *Request, verr *ValidationError, ok bool) {
	if !json.Valid(data) {
		return nil, nil, false
	}
	d := fastDecoder{data: data}
	var buf [8]member
	members, ok := d.objectMembers(buf[:0])
	if !ok {
		return nil, nil, false
	}
	if verr := checkRepeats(members); verr != nil {
		return nil, verr, true
	}
	dst := new(decoded)
	for _, m := range members {
		if verr := d.decodeMember(dst, m, opts.MaxParticipants); verr != nil {
			return nil, verr, true
		}
	}
	if verr := checkComplete(&dst.req, members, subject, opts); verr != nil {
		return nil, verr, true
	}
	return &dst.req, nil, true
}

// objectMembers appends the members of the object in d.data to members. It
// returns false when d.data holds something other than an object.
func (d *fastDecoder) objectMembers(members []member) ([]member, bool) {
	data := d.data
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return members, true
	}
	for {
		end := skipString(data, i)
		name, ok := d.key(data[i:end])
		if !ok {
			return nil, false
		}
		i = skipSpace(data, skipSpace(data, end)+1) // past the colon
		end = skipValue(data, i)
		members = append(members, member{name: name, raw: data[i:end:end], off: i})
		i = skipSpace(data, end)
		if data[i] == '}' {
			return members, true
		}
		i = skipSpace(data, i+1) // past the comma
	}
}

// key returns the name that the JSON string raw holds. A known field name
// is returned as the constant, so that taking it allocates nothing.
func (d *fastDecoder) key(raw []byte) (string, bool) {
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') >= 0 {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return "", false
		}
		return name, true
	}
	switch string(body) {
	case fieldRequestID:
		return fieldRequestID, true
	case fieldConferenceID:
		return fieldConferenceID, true
	case fieldParticipantIDs:
		return fieldParticipantIDs, true
	case fieldReason:
		return fieldReason, true
	case fieldRequestedBy:
		return fieldRequestedBy, true
	case fieldExpiresAt:
		return fieldExpiresAt, true
	case fieldReplayOf:
		return fieldReplayOf, true
	}
	return string(body), true
}

func (d *fastDecoder) decodeMember(dst *decoded, m member, limit int) *ValidationError {
	switch m.name {
	case fieldParticipantIDs:
		ids, err := d.participantIDs(m.raw, m.off, limit)
		if err != nil {
			return err
		}
		dst.req.ParticipantIDs = ids
		return nil
	case fieldRequestID, fieldConferenceID, fieldReason, fieldRequestedBy, fieldExpiresAt, fieldReplayOf:
		if m.raw[0] != '"' {
			return invalid(m.name, "must be a string, not %s", rawKind(m.raw))
		}
		s, err := d.unquote(m.raw, m.off)
		if err != nil {
			return invalid(m.name, "is not a valid JSON string: %s", err.Error())
		}
		return dst.setString(m.name, s)
	default:
		return unknownField(m.name)
	}
}

// unquote returns the string that the JSON string raw, found at offset off
// of the payload, holds. Without a backslash that is the bytes between the
// quotes: the payload is valid UTF-8 and valid JSON, so they hold neither
// an invalid byte nor a control character that encoding/json would change.
func (d *fastDecoder) unquote(raw []byte, off int) (string, error) {
	if bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 {
		if d.text == "" {
			d.text = string(d.data)
		}
		return d.text[off+1 : off+len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// participantIDs is decodeParticipantIDs for the fast path: the same checks
// in the same order, reading the array in place.
func (d *fastDecoder) participantIDs(raw []byte, off, limit int) ([]string, *ValidationError) {
	const field = fieldParticipantIDs
	if raw[0] != '[' {
		return nil, invalid(field, "must be an array of strings, not %s", rawKind(raw))
	}
	n := countElements(raw)
	if n == 0 {
		return nil, invalid(field, "must list at least one participant ID")
	}
	if n > limit {
		return nil, invalid(field, "lists %d IDs; the limit is %d per request, split the list into several requests", n, limit)
	}
	ids := make([]string, 0, n)
	var seen map[string]bool
	if n > linearDedupMax {
		seen = make(map[string]bool, n)
	}
	i := skipSpace(raw, 1)
	for k := range n {
		end := skipValue(raw, i)
		id, verr := d.participantID(k, raw[i:end:end], off+i)
		if verr != nil {
			return nil, verr
		}
		switch {
		case seen == nil:
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		case !seen[id]:
			seen[id] = true
			ids = append(ids, id)
		}
		i = skipSpace(raw, skipSpace(raw, end)+1) // past the comma or the bracket
	}
	return ids, nil
}

// participantID decodes and checks item k of the participant IDs, found at
// offset off of the payload. The name of the item is only made for an
// error.
func (d *fastDecoder) participantID(k int, raw []byte, off int) (string, *ValidationError) {
	if raw[0] != '"' {
		return "", invalid(itemName(k), "must be a string, not %s", rawKind(raw))
	}
	id, err := d.unquote(raw, off)
	if err != nil {
		return "", invalid(itemName(k), "is not a valid JSON string: %s", err.Error())
	}
	if !plainParticipantID(id) {
		if verr := validateParticipantID(itemName(k), id); verr != nil {
			return "", verr
		}
	}
	return id, nil
}

func itemName(k int) string {
	return fieldParticipantIDs + "[" + strconv.Itoa(k) + "]"
}

// plainParticipantID reports whether id is 1 to MaxParticipantIDLen bytes
// of printable ASCII without spaces, which validateParticipantID accepts
// (an ASCII byte is one character).
func plainParticipantID(id string) bool {
	if id == "" || len(id) > MaxParticipantIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7E {
			return false
		}
	}
	return true
}

// The scanners below assume valid JSON, as json.Valid accepts it, and
// return offsets into b.

// skipSpace returns the offset of the first byte from i on that is not JSON
// white space, or len(b).
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the offset just past the string that starts with the
// quote at b[i].
func skipString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		// The quote ends the string unless an odd number of backslashes
		// escapes it.
		k := i
		for b[k-1] == '\\' {
			k--
		}
		i++
		if (i-1-k)%2 == 0 {
			return i
		}
	}
}

// skipValue returns the offset just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // a number, true, false or null
		for i < len(b) {
			switch b[i] {
			case ' ', '\t', '\r', '\n', ',', '}', ']':
				return i
			}
			i++
		}
		return i
	}
}

// countElements counts the elements of the array raw.
func countElements(raw []byte) int {
	i := skipSpace(raw, 1)
	if raw[i] == ']' {
		return 0
	}
	n := 0
	for {
		i = skipSpace(raw, skipValue(raw, i))
		n++
		if raw[i] == ']' {
			return n
		}
		i = skipSpace(raw, i+1)
	}
}

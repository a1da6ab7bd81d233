package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DecodeOptions configures [DecodeRequest]. The zero value is ready to use.
type DecodeOptions struct {
	// SubjectPrefix is the request subject prefix, without a trailing dot (a
	// trailing dot is tolerated and removed). Defaults to
	// DefaultRequestSubjectPrefix.
	SubjectPrefix string
	// MaxParticipants is the largest number of participant IDs a request may
	// list, counted before repeats are removed. Values below 1 select the
	// default. Defaults to DefaultMaxParticipants (500).
	MaxParticipants int
}

func (o DecodeOptions) withDefaults() DecodeOptions {
	o.SubjectPrefix = strings.TrimSuffix(o.SubjectPrefix, ".")
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = DefaultRequestSubjectPrefix
	}
	if o.MaxParticipants < 1 {
		o.MaxParticipants = DefaultMaxParticipants
	}
	return o
}

// The JSON names of the request fields, in the order the error for a missing
// field is reported.
const (
	fieldRequestID      = "requestID"
	fieldConferenceID   = "conferenceID"
	fieldParticipantIDs = "participantIDs"
	fieldReason         = "reason"
	fieldRequestedBy    = "requestedBy"
	fieldExpiresAt      = "expiresAt"
	fieldReplayOf       = "replayOf"
)

const knownFields = "requestID, conferenceID, participantIDs, reason, requestedBy, expiresAt and replayOf"

// DecodeRequest parses and validates a request that arrived on subject.
//
// It is strict on purpose, because a request it accepts disconnects people:
// the payload must be at most MaxPayloadBytes of UTF-8 holding exactly one
// JSON object, with no repeated and no unknown keys (a field the worker does
// not know may be one the producer relies on) and no null values. The
// conference ID in the payload must equal the last token of subject, which
// must be exactly <prefix>.<conferenceID>. Repeated participant IDs are
// removed, keeping the first of each; ExpiresAt is returned in UTC.
//
// Every error is a [*ValidationError] whose text names the field and says
// what to change. The first problem found is reported.
func DecodeRequest(subject string, data []byte, opts DecodeOptions) (*Request, error) {
	req, verr := decodeRequest(subject, data, opts.withDefaults())
	if verr != nil {
		return nil, verr
	}
	return req, nil
}

func decodeRequest(subject string, data []byte, opts DecodeOptions) (*Request, *ValidationError) {
	if verr := checkPayload(data); verr != nil {
		return nil, verr
	}
	if req, verr, ok := decodeRequestFast(subject, data, opts); ok {
		return req, verr
	}
	return decodeRequestSlow(subject, data, opts)
}

// checkPayload checks what is checked before the JSON is read: the size and
// the encoding.
func checkPayload(data []byte) *ValidationError {
	if len(data) > MaxPayloadBytes {
		return invalid("", "payload is %d bytes; the limit is %d bytes (%d KiB)", len(data), MaxPayloadBytes, MaxPayloadBytes/1024)
	}
	if !utf8.Valid(data) {
		return invalid("", "payload is not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(data))
	}
	return nil
}

// decodeRequestSlow decodes any payload that passed [checkPayload] with
// encoding/json's Decoder, whose errors it reports. [decodeRequestFast]
// handles the common case, a payload that is a valid JSON object, and must
// give the same answers; the tests compare the two.
func decodeRequestSlow(subject string, data []byte, opts DecodeOptions) (*Request, *ValidationError) {
	// One walk over the object gathers its members; a repeated key is then
	// reported before any value is judged: which of the values counts is
	// the ambiguity, whatever either of them holds.
	members, verr := objectMembers(data)
	if verr != nil {
		return nil, verr
	}
	if verr := checkRepeats(members); verr != nil {
		return nil, verr
	}
	dst := new(decoded)
	for _, m := range members {
		if verr := dst.decodeMemberSlow(m, opts.MaxParticipants); verr != nil {
			return nil, verr
		}
	}
	if verr := checkComplete(&dst.req, members, subject, opts); verr != nil {
		return nil, verr
	}
	return &dst.req, nil
}

// decoded is a Request being decoded, with room for the instant its
// ExpiresAt points to, so that one allocation serves both.
type decoded struct {
	req     Request
	expires time.Time
}

func (dst *decoded) decodeMemberSlow(m member, limit int) *ValidationError {
	switch m.name {
	case fieldParticipantIDs:
		ids, err := decodeParticipantIDs(m.raw, limit)
		if err != nil {
			return err
		}
		dst.req.ParticipantIDs = ids
		return nil
	case fieldRequestID, fieldConferenceID, fieldReason, fieldRequestedBy, fieldExpiresAt, fieldReplayOf:
		s, err := decodeString(m.name, m.raw)
		if err != nil {
			return err
		}
		return dst.setString(m.name, s)
	default:
		return unknownField(m.name)
	}
}

// setString sets and checks the string field name to s.
func (dst *decoded) setString(name, s string) *ValidationError {
	switch name {
	case fieldRequestID:
		dst.req.RequestID = s
		return validateRequestID(s)
	case fieldReplayOf:
		dst.req.ReplayOf = s
		return validateIDField(fieldReplayOf, s)
	case fieldConferenceID:
		dst.req.ConferenceID = s
		return validateConferenceID(s)
	case fieldReason:
		dst.req.Reason = s
		return validateText(name, s, MaxReasonLen)
	case fieldRequestedBy:
		dst.req.RequestedBy = s
		return validateText(name, s, MaxRequestedByLen)
	case fieldExpiresAt:
		t, err := parseExpiresAt(s)
		if err != nil {
			return err
		}
		dst.expires = t
		dst.req.ExpiresAt = &dst.expires
		return nil
	}
	return unknownField(name)
}

func unknownField(name string) *ValidationError {
	return invalid("", "unknown field %s; a request has only %s (the worker refuses what it might misread)", quote(name), knownFields)
}

// checkRepeats refuses a known key that appears more than once; an unknown
// key is refused with its name quoted later.
func checkRepeats(members []member) *ValidationError {
	for i, m := range members {
		if !knownField(m.name) {
			continue
		}
		for _, earlier := range members[:i] {
			if earlier.name == m.name {
				return invalid(m.name, "appears more than once; a repeated key is ambiguous, send it once")
			}
		}
	}
	return nil
}

// checkComplete checks, once every member is decoded, that the required
// fields are present and that the subject names the conference.
func checkComplete(req *Request, members []member, subject string, opts DecodeOptions) *ValidationError {
	for _, name := range []string{fieldRequestID, fieldConferenceID, fieldParticipantIDs} {
		if !slices.ContainsFunc(members, func(m member) bool { return m.name == name }) {
			return invalid(name, "is required")
		}
	}
	token, ok := ConferenceIDFromSubject(subject, opts.SubjectPrefix)
	if !ok {
		return invalid("subject", "%s is not %s.<conferenceID>; publish the request to %s.%s", quote(subject), opts.SubjectPrefix, opts.SubjectPrefix, req.ConferenceID)
	}
	if token != req.ConferenceID {
		return invalid(fieldConferenceID, "%s does not match the subject's last token %s; publish to %s.%s or fix the conference ID", quote(req.ConferenceID), quote(token), opts.SubjectPrefix, req.ConferenceID)
	}
	return nil
}

func knownField(name string) bool {
	switch name {
	case fieldRequestID, fieldConferenceID, fieldParticipantIDs, fieldReason, fieldRequestedBy, fieldExpiresAt, fieldReplayOf:
		return true
	}
	return false
}

// ConferenceIDFromSubject returns the last token of subject when subject is
// exactly prefix + "." + one non-empty token. It does not check that the
// token is a valid conference ID; [ValidateConferenceID] does.
func ConferenceIDFromSubject(subject, prefix string) (string, bool) {
	prefix = strings.TrimSuffix(prefix, ".")
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok || rest == "" || strings.Contains(rest, ".") {
		return "", false
	}
	return rest, true
}

// member is one name and raw value of a JSON object.
type member struct {
	name string
	raw  json.RawMessage
	// off is where raw starts in the payload; only the fast path, whose
	// raw is part of the payload, sets it.
	off int
}

// objectMembers returns the members of the single JSON object in data, in
// order, or what makes data something else.
func objectMembers(data []byte) ([]member, *ValidationError) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, invalid("", "payload is empty; send a JSON object")
	}
	if err != nil {
		return nil, syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, invalid("", "payload must be a JSON object, not %s", tokenKind(tok))
	}
	members := make([]member, 0, 6)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		name, ok := tok.(string)
		if !ok { // The decoder reports non-string keys as errors; be safe anyway.
			return nil, invalid("", "payload is not valid JSON: object key is not a string")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(err)
		}
		members = append(members, member{name: name, raw: raw})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("", "payload has data after the JSON object (at byte %d); send exactly one object", dec.InputOffset())
	}
	return members, nil
}

func syntaxError(err error) *ValidationError {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("", "payload is not valid JSON: it ends before the object is complete")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return invalid("", "payload is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
	}
	return invalid("", "payload is not valid JSON: %s", err.Error())
}

// tokenKind names the JSON type of a top-level token.
func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return "a number"
	}
}

// rawKind names the JSON type of a raw value by its first byte.
func rawKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func decodeString(field string, raw json.RawMessage) (string, *ValidationError) {
	if kind := rawKind(raw); kind != "a string" {
		return "", invalid(field, "must be a string, not %s", kind)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid(field, "is not a valid JSON string: %s", err.Error())
	}
	return s, nil
}

// decodeParticipantIDs decodes, checks and de-duplicates the participant
// IDs. The count limit applies to the list as sent, before repeats are
// removed: a producer can tell from its own list whether it is too long, and
// an oversized list is refused before any ID is decoded.
func decodeParticipantIDs(raw json.RawMessage, limit int) ([]string, *ValidationError) {
	const field = fieldParticipantIDs
	if kind := rawKind(raw); kind != "an array" {
		return nil, invalid(field, "must be an array of strings, not %s", kind)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalid(field, "is not a valid JSON array: %s", err.Error())
	}
	if len(items) == 0 {
		return nil, invalid(field, "must list at least one participant ID")
	}
	if len(items) > limit {
		return nil, invalid(field, "lists %d IDs; the limit is %d per request, split the list into several requests", len(items), limit)
	}
	ids := make([]string, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, item := range items {
		name := field + "[" + strconv.Itoa(i) + "]"
		if kind := rawKind(item); kind != "a string" {
			return nil, invalid(name, "must be a string, not %s", kind)
		}
		var id string
		if err := json.Unmarshal(item, &id); err != nil {
			return nil, invalid(name, "is not a valid JSON string: %s", err.Error())
		}
		if err := validateParticipantID(name, id); err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// firstInvalidUTF8 returns the offset of the first byte of data that is not
// part of valid UTF-8.
func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data)
}

package schemas_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/schemas"
)

const testSubject = schemas.DefaultRequestSubjectPrefix + ".914083136"

// idList returns a JSON array of n distinct participant IDs of the given
// length (at least 6).
func idList(n, length int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		id := fmt.Sprintf("p%05d", i)
		id += strings.Repeat("x", length-len(id))
		b.WriteString(`"` + id + `"`)
	}
	b.WriteByte(']')
	return b.String()
}

// payload builds a request payload with the given participantIDs array and
// extra members appended verbatim (each starting with a comma).
func payload(participantIDs string, extra ...string) string {
	return `{"requestID":"req-1","conferenceID":"914083136","participantIDs":` + participantIDs + strings.Join(extra, "") + `}`
}

// decodeCase is a case of TestDecodeRequest; the differential tests of the
// fast path use the payloads too.
type decodeCase struct {
	name    string
	subject string // testSubject when empty
	payload string
	opts    schemas.DecodeOptions
	want    *schemas.Request
	// wantField and wantErr describe the error: the Field, and a part
	// of the whole Error() text.
	wantField string
	wantErr   string
}

func decodeCases() []decodeCase {
	return slices.Concat(acceptedCases(), refusedPayloadCases(), refusedFieldCases())
}

// acceptedCases are valid requests.
func acceptedCases() []decodeCase {
	expires := time.Date(2025, 6, 1, 10, 30, 0, 0, time.UTC)
	return []decodeCase{
		{
			name:    "minimal",
			payload: payload(`["a1"]`),
			want:    &schemas.Request{RequestID: "req-1", ConferenceID: "914083136", ParticipantIDs: []string{"a1"}},
		},
		{
			name: "every field, expiresAt with an offset returned in UTC",
			payload: payload(`["ba9acb1e216d11eabc5165c2b91ad427","+8613800000001"]`,
				`,"reason":"Zeit ist um – 会议结束 ✔","requestedBy":"Jürgen <ops@example.com>","expiresAt":"2025-06-01T12:30:00+02:00"`),
			want: &schemas.Request{
				RequestID:      "req-1",
				ConferenceID:   "914083136",
				ParticipantIDs: []string{"ba9acb1e216d11eabc5165c2b91ad427", "+8613800000001"},
				Reason:         "Zeit ist um – 会议结束 ✔",
				RequestedBy:    "Jürgen <ops@example.com>",
				ExpiresAt:      &expires,
			},
		},
		{
			name:    "repeated IDs removed keeping first-seen order",
			payload: payload(`["b","a","b","c","a"]`),
			want:    &schemas.Request{RequestID: "req-1", ConferenceID: "914083136", ParticipantIDs: []string{"b", "a", "c"}},
		},
		{
			name:    "custom prefix, trailing dot tolerated",
			subject: "acme.hangup.914083136",
			payload: payload(`["a1"]`),
			opts:    schemas.DecodeOptions{SubjectPrefix: "acme.hangup."},
			want:    &schemas.Request{RequestID: "req-1", ConferenceID: "914083136", ParticipantIDs: []string{"a1"}},
		},
		{
			name:    "whitespace around the object, lowercase t and z, fraction",
			payload: " \n\t" + payload(`["a1"]`, `,"expiresAt":"2025-06-01t10:30:00.000z"`) + "\r\n ",
			want:    &schemas.Request{RequestID: "req-1", ConferenceID: "914083136", ParticipantIDs: []string{"a1"}, ExpiresAt: &expires},
		},
		{
			name:    "escaped key names are the same keys",
			payload: `{"request\u0049D":"req-1","conferenceID":"914083136","participantIDs":["a1"]}`,
			want:    &schemas.Request{RequestID: "req-1", ConferenceID: "914083136", ParticipantIDs: []string{"a1"}},
		},
		{
			name: "every length at its limit",
			payload: `{"requestID":"` + strings.Repeat("r", 128) + `","conferenceID":"` + strings.Repeat("c", 64) +
				`","participantIDs":["` + strings.Repeat("~", 128) + `"],"reason":"` + strings.Repeat("é", 1024) +
				`","requestedBy":"` + strings.Repeat("ü", 256) + `"}`,
			subject: schemas.DefaultRequestSubjectPrefix + "." + strings.Repeat("c", 64),
			want: &schemas.Request{
				RequestID:      strings.Repeat("r", 128),
				ConferenceID:   strings.Repeat("c", 64),
				ParticipantIDs: []string{strings.Repeat("~", 128)},
				Reason:         strings.Repeat("é", 1024),
				RequestedBy:    strings.Repeat("ü", 256),
			},
		},
		{
			name:    "500 IDs",
			payload: payload(idList(500, 8)),
		},
		{
			name:    "replayOf",
			payload: payload(`["a1"]`, `,"replayOf":"req-0:orig.1_x"`),
			want:    &schemas.Request{RequestID: "req-1", ConferenceID: "914083136", ParticipantIDs: []string{"a1"}, ReplayOf: "req-0:orig.1_x"},
		},
		{
			name:    "replayOf at its limit, escaped",
			payload: payload(`["a1"]`, `,"replayOf":"\u0072`+strings.Repeat("r", 127)+`"`),
			want:    &schemas.Request{RequestID: "req-1", ConferenceID: "914083136", ParticipantIDs: []string{"a1"}, ReplayOf: strings.Repeat("r", 128)},
		},
	}
}

// refusedPayloadCases are payloads that are not a JSON object of known,
// unique and present fields.
func refusedPayloadCases() []decodeCase {
	return []decodeCase{
		{name: "empty payload", payload: "", wantErr: "payload is empty"},
		{name: "only whitespace", payload: " \n ", wantErr: "payload is empty"},
		{name: "JSON array", payload: `[` + payload(`["a1"]`) + `]`, wantErr: "payload must be a JSON object, not an array"},
		{name: "JSON null", payload: `null`, wantErr: "payload must be a JSON object, not null"},
		{name: "JSON string", payload: `"hello"`, wantErr: "payload must be a JSON object, not a string"},
		{name: "empty object", payload: `{}`, wantField: "requestID", wantErr: "requestID: is required"},
		{name: "missing conferenceID", payload: `{"requestID":"r","participantIDs":["a"]}`, wantField: "conferenceID", wantErr: "conferenceID: is required"},
		{name: "missing participantIDs", payload: `{"requestID":"r","conferenceID":"914083136"}`, wantField: "participantIDs", wantErr: "participantIDs: is required"},
		{name: "trailing garbage", payload: payload(`["a1"]`) + `x`, wantErr: "payload has data after the JSON object"},
		{name: "two objects", payload: payload(`["a1"]`) + payload(`["a2"]`), wantErr: "payload has data after the JSON object"},
		{name: "truncated", payload: `{"requestID":"req-1","conferenceID":"9140`, wantErr: "payload is not valid JSON"},
		{name: "trailing comma", payload: `{"requestID":"req-1",}`, wantErr: "payload is not valid JSON"},
		{name: "invalid UTF-8", payload: payload(`["a1"]`, `,"reason":"caf`+"\xe9"+`"`), wantErr: "payload is not valid UTF-8 (first bad byte at offset 85)"},
		{
			name:    "70 KiB body",
			payload: payload(`["a1"]`, `,"reason":"`+strings.Repeat("x", 70*1024)+`"`),
			wantErr: "payload is 71764 bytes; the limit is 65536 bytes (64 KiB)",
		},
		{name: "unknown field", payload: payload(`["a1"]`, `,"dryRun":true`), wantErr: `unknown field "dryRun"; a request has only requestID, conferenceID, participantIDs, reason, requestedBy, expiresAt and replayOf`},
		{name: "key in another case is unknown", payload: `{"RequestID":"req-1","conferenceID":"914083136","participantIDs":["a1"]}`, wantErr: `unknown field "RequestID"`},
		{name: "duplicate key", payload: `{"requestID":"a","requestID":"b","conferenceID":"914083136","participantIDs":["a1"]}`, wantField: "requestID", wantErr: "requestID: appears more than once"},
	}
}

// refusedFieldCases are payloads with a field that is wrong.
func refusedFieldCases() []decodeCase {
	return []decodeCase{
		{name: "null requestID", payload: `{"requestID":null,"conferenceID":"914083136","participantIDs":["a1"]}`, wantField: "requestID", wantErr: "requestID: must be a string, not null"},
		{name: "number requestID", payload: `{"requestID":42,"conferenceID":"914083136","participantIDs":["a1"]}`, wantField: "requestID", wantErr: "requestID: must be a string, not a number"},
		{name: "empty requestID", payload: `{"requestID":"","conferenceID":"914083136","participantIDs":["a1"]}`, wantField: "requestID", wantErr: "requestID: must not be empty"},
		{name: "requestID too long", payload: `{"requestID":"` + strings.Repeat("r", 129) + `","conferenceID":"914083136","participantIDs":["a1"]}`, wantField: "requestID", wantErr: "requestID: is 129 characters long; the limit is 128"},
		{name: "requestID with slash", payload: `{"requestID":"req/1","conferenceID":"914083136","participantIDs":["a1"]}`, wantField: "requestID", wantErr: `requestID: contains "/" (U+002F) at character 4`},
		{name: "requestID with escaped NUL", payload: `{"requestID":"req\u00001","conferenceID":"914083136","participantIDs":["a1"]}`, wantField: "requestID", wantErr: "requestID: contains U+0000 at character 4"},
		{name: "conferenceID with dot", subject: testSubject, payload: `{"requestID":"r","conferenceID":"914.083136","participantIDs":["a1"]}`, wantField: "conferenceID", wantErr: `conferenceID: contains "." at character 4; "." separates NATS subject tokens`},
		{name: "conferenceID with star", payload: `{"requestID":"r","conferenceID":"*","participantIDs":["a1"]}`, wantField: "conferenceID", wantErr: `conferenceID: contains "*" at character 1; "*" is a NATS subject wildcard`},
		{name: "conferenceID with greater-than", payload: `{"requestID":"r","conferenceID":"9140>","participantIDs":["a1"]}`, wantField: "conferenceID", wantErr: `conferenceID: contains ">" at character 5; ">" is a NATS subject wildcard`},
		{name: "conferenceID with space", payload: `{"requestID":"r","conferenceID":"914 083","participantIDs":["a1"]}`, wantField: "conferenceID", wantErr: "conferenceID: contains a space at character 4"},
		{name: "conferenceID too long", payload: `{"requestID":"r","conferenceID":"` + strings.Repeat("c", 65) + `","participantIDs":["a1"]}`, wantField: "conferenceID", wantErr: "conferenceID: is 65 characters long; the limit is 64"},
		{name: "conferenceID array", payload: `{"requestID":"r","conferenceID":["914083136"],"participantIDs":["a1"]}`, wantField: "conferenceID", wantErr: "conferenceID: must be a string, not an array"},
		{
			name:      "subject mismatch",
			subject:   schemas.DefaultRequestSubjectPrefix + ".xyz",
			payload:   `{"requestID":"r","conferenceID":"abc","participantIDs":["a1"]}`,
			wantField: "conferenceID",
			wantErr:   `conferenceID: "abc" does not match the subject's last token "xyz"`,
		},
		{name: "subject under another prefix", subject: "other.914083136", payload: payload(`["a1"]`), wantField: "subject", wantErr: `subject: "other.914083136" is not meeting.disconnect.requests.<conferenceID>`},
		{name: "subject with an extra token", subject: testSubject + ".x", payload: payload(`["a1"]`), wantField: "subject", wantErr: "is not meeting.disconnect.requests.<conferenceID>"},
		{name: "subject is the bare prefix", subject: schemas.DefaultRequestSubjectPrefix, payload: payload(`["a1"]`), wantField: "subject"},
		{name: "participantIDs empty", payload: payload(`[]`), wantField: "participantIDs", wantErr: "participantIDs: must list at least one participant ID"},
		{name: "participantIDs a string", payload: payload(`"a1"`), wantField: "participantIDs", wantErr: "participantIDs: must be an array of strings, not a string"},
		{name: "participantIDs null", payload: payload(`null`), wantField: "participantIDs", wantErr: "participantIDs: must be an array of strings, not null"},
		{name: "participant ID a number", payload: payload(`["a1",7]`), wantField: "participantIDs[1]", wantErr: "participantIDs[1]: must be a string, not a number"},
		{name: "participant ID null", payload: payload(`[null]`), wantField: "participantIDs[0]", wantErr: "participantIDs[0]: must be a string, not null"},
		{name: "participant ID with space", payload: payload(`["a","b","c","John Smith"]`), wantField: "participantIDs[3]", wantErr: "participantIDs[3]: contains a space at character 5"},
		{name: "participant ID with tab", payload: payload(`["a\tb"]`), wantField: "participantIDs[0]", wantErr: "participantIDs[0]: contains U+0009 at character 2"},
		{name: "participant ID not ASCII", payload: payload(`["josé"]`), wantField: "participantIDs[0]", wantErr: `participantIDs[0]: contains "é" (U+00E9) at character 4; a participant ID is printable ASCII without spaces`},
		{name: "participant ID empty", payload: payload(`["a",""]`), wantField: "participantIDs[1]", wantErr: "participantIDs[1]: must not be empty"},
		{name: "participant ID too long", payload: payload(`["` + strings.Repeat("p", 129) + `"]`), wantField: "participantIDs[0]", wantErr: "participantIDs[0]: is 129 characters long; the limit is 128"},
		{name: "501 IDs", payload: payload(idList(501, 8)), wantField: "participantIDs", wantErr: "participantIDs: lists 501 IDs; the limit is 500 per request"},
		{name: "10,000 IDs", payload: payload(`[` + strings.Repeat(`"a",`, 9999) + `"a"]`), wantField: "participantIDs", wantErr: "participantIDs: lists 10000 IDs; the limit is 500 per request, split the list into several requests"},
		{name: "limit counts repeats", payload: payload(`["a","a","a"]`), opts: schemas.DecodeOptions{MaxParticipants: 2}, wantField: "participantIDs", wantErr: "lists 3 IDs; the limit is 2"},
		{name: "reason with newline", payload: payload(`["a1"]`, `,"reason":"line one\nline two"`), wantField: "reason", wantErr: "reason: contains control character U+000A at character 9"},
		{name: "reason with DEL", payload: payload(`["a1"]`, `,"reason":"x`+"\x7f"+`"`), wantField: "reason", wantErr: "reason: contains control character U+007F"},
		{name: "reason with C1 control", payload: payload(`["a1"]`, `,"reason":"x\u0085"`), wantField: "reason", wantErr: "reason: contains control character U+0085"},
		{name: "reason too long", payload: payload(`["a1"]`, `,"reason":"`+strings.Repeat("é", 1025)+`"`), wantField: "reason", wantErr: "reason: is 1025 characters long; the limit is 1024"},
		{name: "reason a boolean", payload: payload(`["a1"]`, `,"reason":false`), wantField: "reason", wantErr: "reason: must be a string, not a boolean"},
		{name: "requestedBy too long", payload: payload(`["a1"]`, `,"requestedBy":"`+strings.Repeat("u", 257)+`"`), wantField: "requestedBy", wantErr: "requestedBy: is 257 characters long; the limit is 256"},
		{name: "requestedBy with escape", payload: payload(`["a1"]`, `,"requestedBy":"\u001b[31mroot"`), wantField: "requestedBy", wantErr: "requestedBy: contains control character U+001B at character 1"},
		{name: "expiresAt unparsable", payload: payload(`["a1"]`, `,"expiresAt":"tomorrow"`), wantField: "expiresAt", wantErr: `expiresAt: "tomorrow" is not an RFC 3339 date-time with a time zone; write it like "2025-06-01T12:30:00Z"`},
		{name: "expiresAt without time zone", payload: payload(`["a1"]`, `,"expiresAt":"2025-06-01T12:30:00"`), wantField: "expiresAt", wantErr: "is not an RFC 3339 date-time with a time zone"},
		{name: "expiresAt month 13", payload: payload(`["a1"]`, `,"expiresAt":"2025-13-01T12:30:00Z"`), wantField: "expiresAt", wantErr: `expiresAt: "2025-13-01T12:30:00Z" is not a valid date-time: month out of range`},
		{name: "expiresAt leap second", payload: payload(`["a1"]`, `,"expiresAt":"2016-12-31T23:59:60Z"`), wantField: "expiresAt", wantErr: "is not an RFC 3339 date-time with a time zone"},
		{name: "expiresAt unix seconds", payload: payload(`["a1"]`, `,"expiresAt":1748780000`), wantField: "expiresAt", wantErr: "expiresAt: must be a string, not a number"},
		{name: "expiresAt null", payload: payload(`["a1"]`, `,"expiresAt":null`), wantField: "expiresAt", wantErr: "expiresAt: must be a string, not null"},
		{name: "replayOf empty", payload: payload(`["a1"]`, `,"replayOf":""`), wantField: "replayOf", wantErr: "replayOf: must not be empty"},
		{name: "replayOf null", payload: payload(`["a1"]`, `,"replayOf":null`), wantField: "replayOf", wantErr: "replayOf: must be a string, not null"},
		{name: "replayOf a number", payload: payload(`["a1"]`, `,"replayOf":7`), wantField: "replayOf", wantErr: "replayOf: must be a string, not a number"},
		{name: "replayOf too long", payload: payload(`["a1"]`, `,"replayOf":"`+strings.Repeat("r", 129)+`"`), wantField: "replayOf", wantErr: "replayOf: is 129 characters long; the limit is 128"},
		{name: "replayOf with slash", payload: payload(`["a1"]`, `,"replayOf":"req/0"`), wantField: "replayOf", wantErr: `replayOf: contains "/" (U+002F) at character 4; a request ID may only contain`},
		{name: "replayOf twice", payload: payload(`["a1"]`, `,"replayOf":"a","replayOf":"b"`), wantField: "replayOf", wantErr: "replayOf: appears more than once"},
		{name: "expiresAt before year 0 in UTC", payload: payload(`["a1"]`, `,"expiresAt":"0000-01-01T00:00:00+01:00"`), wantField: "expiresAt", wantErr: "is outside the years 0000 to 9999 in UTC"},
	}
}

func TestDecodeRequest(t *testing.T) {
	for _, tt := range decodeCases() {
		t.Run(tt.name, func(t *testing.T) {
			subject := tt.subject
			if subject == "" {
				subject = testSubject
			}
			got, err := schemas.DecodeRequest(subject, []byte(tt.payload), tt.opts)
			if tt.wantErr == "" && tt.wantField == "" {
				require.NoError(t, err)
				require.NotNil(t, got)
				if tt.want != nil {
					require.Equal(t, tt.want, got)
				}
				return
			}
			require.Error(t, err)
			require.Nil(t, got)
			var verr *schemas.ValidationError
			require.ErrorAs(t, err, &verr)
			require.Equal(t, tt.wantField, verr.Field)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestDecodeRequestRefusesLargeListsQuickly guards against work that grows
// with the list before the limit is checked. The bound is loose enough for
// the race detector on a slow machine.
func TestDecodeRequestRefusesLargeListsQuickly(t *testing.T) {
	data := []byte(payload(`[` + strings.Repeat(`"a",`, 15999) + `"a"]`))
	require.LessOrEqual(t, len(data), schemas.MaxPayloadBytes)
	start := time.Now()
	_, err := schemas.DecodeRequest(testSubject, data, schemas.DecodeOptions{})
	elapsed := time.Since(start)
	require.ErrorContains(t, err, "participantIDs: lists 16000 IDs; the limit is 500")
	require.Less(t, elapsed, time.Second)
}

func BenchmarkDecodeRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"3 IDs", []byte(payload(`["a1","b2","c3"]`, `,"reason":"end of meeting","expiresAt":"2025-06-01T12:30:00Z"`))},
		{"500 IDs", []byte(payload(idList(500, 32)))},
		{"10000 IDs refused", []byte(payload(`[` + strings.Repeat(`"a",`, 9999) + `"a"]`))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				_, _ = schemas.DecodeRequest(testSubject, bc.data, schemas.DecodeOptions{})
			}
		})
	}
}

func TestConferenceIDFromSubject(t *testing.T) {
	const prefix = schemas.DefaultRequestSubjectPrefix
	tests := []struct {
		name    string
		subject string
		prefix  string
		want    string
		wantOK  bool
	}{
		{name: "one token", subject: prefix + ".914083136", prefix: prefix, want: "914083136", wantOK: true},
		{name: "prefix with trailing dot", subject: prefix + ".914083136", prefix: prefix + ".", want: "914083136", wantOK: true},
		{name: "token not checked", subject: prefix + ".*", prefix: prefix, want: "*", wantOK: true},
		{name: "two tokens", subject: prefix + ".914.083", prefix: prefix},
		{name: "empty token", subject: prefix + ".", prefix: prefix},
		{name: "bare prefix", subject: prefix, prefix: prefix},
		{name: "other prefix", subject: "meeting.disconnect.results.914083136", prefix: prefix},
		{name: "prefix is only a string prefix", subject: prefix + "x.914083136", prefix: prefix},
		{name: "empty subject", subject: "", prefix: prefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := schemas.ConferenceIDFromSubject(tt.subject, tt.prefix)
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestValidateConferenceID(t *testing.T) {
	tests := []struct {
		id      string
		wantErr string
	}{
		{id: "914083136"},
		{id: "conf_A-1"},
		{id: "", wantErr: "conferenceID: must not be empty"},
		{id: "a.b", wantErr: `conferenceID: contains "." at character 2`},
		{id: ">", wantErr: "a NATS subject wildcard"},
		{id: "é", wantErr: `conferenceID: contains "é" (U+00E9) at character 1`},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := schemas.ValidateConferenceID(tt.id)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			var verr *schemas.ValidationError
			require.ErrorAs(t, err, &verr)
			require.Equal(t, "conferenceID", verr.Field)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestValidateToken(t *testing.T) {
	const secret = "stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb"
	tests := []struct {
		name    string
		token   string
		wantErr string
	}{
		{name: "raw token", token: secret},
		{name: "basic", token: "Basic c3RiYWY4ZmEyZWE4YTFiMGUzYWIyZTAwN2E4NWE3NWY4OGM1NWQ1ZjZkNWMxOTEyZGZi"},
		{name: "basic in lower case", token: "basic c3Ri"},
		{name: "every printable byte", token: "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"},
		{name: "1024 bytes", token: strings.Repeat("a", 1024)},
		{name: "empty", token: "", wantErr: "X-Conference-Authorization: is empty"},
		{name: "1025 bytes", token: strings.Repeat("a", 1025), wantErr: "is 1025 bytes long; the limit is 1024"},
		{name: "space", token: "stb af8f", wantErr: `contains a space at byte 4; only the form "Basic <base64>" may contain one`},
		{name: "bearer", token: "Bearer " + secret, wantErr: "contains a space at byte 7"},
		{name: "CR LF", token: secret + "\r\nX-Evil: 1", wantErr: "has a control character at byte 52"},
		{name: "NUL", token: "a\x00", wantErr: "has a control character at byte 2"},
		{name: "DEL", token: "a\x7f", wantErr: "has a control character at byte 2"},
		{name: "non-ASCII", token: "tökén", wantErr: "has a non-ASCII byte at byte 2"},
		{name: "basic without value", token: "Basic ", wantErr: `is "Basic " with nothing after it`},
		{name: "basic with a second space", token: "Basic c3Ri c3Ri", wantErr: `has a space at byte 11 after "Basic "`},
		{name: "basic with a non-base64 character", token: "Basic c3Ri-", wantErr: `has a character that is not allowed at byte 11 after "Basic "`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := schemas.ValidateToken(tt.token)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			var verr *schemas.ValidationError
			require.ErrorAs(t, err, &verr)
			require.Equal(t, schemas.TokenHeader, verr.Field)
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), "af8f", "the error must not echo the token")
		})
	}
}

func TestValidationErrorWithoutField(t *testing.T) {
	err := error(&schemas.ValidationError{Problem: "payload is empty; send a JSON object"})
	require.EqualError(t, err, "payload is empty; send a JSON object")
	err = fmt.Errorf("decode request: %w", &schemas.ValidationError{Field: "reason", Problem: "is too long"})
	var verr *schemas.ValidationError
	require.True(t, errors.As(err, &verr))
	require.EqualError(t, verr, "reason: is too long")
}

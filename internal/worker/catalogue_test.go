package worker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/schemas"
)

// hostile is one malformed or hostile message and what its dead letter's
// error must mention.
type hostile struct {
	name    string
	subject string // defaults to the conference "c"
	data    string
	header  nats.Header
	want    string
}

func catalogue(token string) []hostile {
	n := 0
	valid := func(extra string) string {
		n++
		return fmt.Sprintf(`{"requestID":"bad-%d","conferenceID":"c","participantIDs":["p-1"]%s}`, n, extra)
	}
	ids := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`"p-%d"`, i)
		}
		return strings.Join(parts, ",")
	}
	tenThousand := make([]string, 10000)
	for i := range tenThousand {
		tenThousand[i] = `"` + strconv.FormatInt(int64(i), 36) + `"`
	}
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	return []hostile{
		{name: "not JSON", data: "hang up p-1 please", want: "JSON"},
		{name: "empty payload", data: "", want: "empty"},
		{name: "JSON array", data: `["p-1"]`, want: "object"},
		{name: "JSON string", data: `"p-1"`, want: "object"},
		{name: "JSON null", data: `null`, want: "object"},
		{name: "empty object", data: `{}`, want: "requestID"},
		{name: "missing requestID", data: `{"conferenceID":"c","participantIDs":["p-1"]}`, want: "requestID"},
		{name: "missing conferenceID", data: `{"requestID":"m","participantIDs":["p-1"]}`, want: "conferenceID"},
		{name: "missing participantIDs", data: `{"requestID":"m","conferenceID":"c"}`, want: "participantIDs"},
		{name: "empty participantIDs", data: `{"requestID":"m","conferenceID":"c","participantIDs":[]}`, want: "participantIDs"},
		{name: "requestID a number", data: `{"requestID":7,"conferenceID":"c","participantIDs":["p-1"]}`, want: "requestID"},
		{name: "participantIDs a string", data: `{"requestID":"m","conferenceID":"c","participantIDs":"p-1"}`, want: "participantIDs"},
		{name: "participant ID a number", data: `{"requestID":"m","conferenceID":"c","participantIDs":[1]}`, want: "participantIDs[0]"},
		{name: "null field", data: `{"requestID":null,"conferenceID":"c","participantIDs":["p-1"]}`, want: "requestID"},
		{name: "empty requestID", data: `{"requestID":"","conferenceID":"c","participantIDs":["p-1"]}`, want: "requestID"},
		{name: "requestID too long", data: `{"requestID":"` + strings.Repeat("r", 129) + `","conferenceID":"c","participantIDs":["p-1"]}`, want: "requestID"},
		{name: "requestID with a slash", data: `{"requestID":"a/b","conferenceID":"c","participantIDs":["p-1"]}`, want: "requestID"},
		{name: "conferenceID with a dot", subject: "x", data: `{"requestID":"m","conferenceID":"c.x","participantIDs":["p-1"]}`, want: "conferenceID"},
		{name: "conferenceID with a star", subject: "x", data: `{"requestID":"m","conferenceID":"*","participantIDs":["p-1"]}`, want: "conferenceID"},
		{name: "conferenceID with a greater-than", subject: "x", data: `{"requestID":"m","conferenceID":">","participantIDs":["p-1"]}`, want: "conferenceID"},
		{name: "conferenceID not the subject's", data: `{"requestID":"m","conferenceID":"other","participantIDs":["p-1"]}`, want: "subject"},
		{name: "subject one token too deep", subject: "c.extra", data: valid(""), want: "subject"},
		{name: "10,000 participant IDs", data: `{"requestID":"m","conferenceID":"c","participantIDs":[` + strings.Join(tenThousand, ",") + `]}`, want: "10000"},
		{name: "501 participant IDs", data: `{"requestID":"m","conferenceID":"c","participantIDs":[` + ids(501) + `]}`, want: "501"},
		{name: "participant ID with a space", data: `{"requestID":"m","conferenceID":"c","participantIDs":["p 1"]}`, want: "participantIDs[0]"},
		{name: "participant ID too long", data: `{"requestID":"m","conferenceID":"c","participantIDs":["` + strings.Repeat("p", 129) + `"]}`, want: "participantIDs[0]"},
		{name: "participant ID with NUL", data: `{"requestID":"m","conferenceID":"c","participantIDs":["p\u00001"]}`, want: "participantIDs[0]"},
		{name: "reason with a bell", data: valid(`,"reason":"a\u0007b"`), want: "reason"},
		{name: "reason too long", data: valid(`,"reason":"` + strings.Repeat("x", 1025) + `"`), want: "reason"},
		{name: "requestedBy too long", data: valid(`,"requestedBy":"` + strings.Repeat("x", 257) + `"`), want: "requestedBy"},
		{name: "expiresAt unparsable", data: valid(`,"expiresAt":"tomorrow"`), want: "expiresAt"},
		{name: "expiresAt without zone", data: valid(`,"expiresAt":"2026-11-25T10:00:00"`), want: "expiresAt"},
		{name: "unknown field", data: valid(`,"dryRun":true`), want: "dryRun"},
		{name: "repeated key", data: `{"requestID":"m","requestID":"n","conferenceID":"c","participantIDs":["p-1"]}`, want: "more than once"},
		{name: "data after the object", data: valid("") + `{"again":1}`, want: "after"},
		{name: "invalid UTF-8", data: "{\"requestID\":\"m\xff\",\"conferenceID\":\"c\",\"participantIDs\":[\"p-1\"]}", want: "UTF-8"},
		{name: "payload over 64 KiB", data: valid(`,"reason":"` + strings.Repeat("x", 70000) + `"`), want: "limit"},
		{name: "nested 10,000 deep", data: `{"requestID":` + deep + `}`, want: "requestID"},
		{name: "token header with a control character", data: valid(""), header: nats.Header{schemas.TokenHeader: []string{"stb\x01abc"}}, want: schemas.TokenHeader},
		{name: "token header twice", data: valid(""), header: nats.Header{schemas.TokenHeader: []string{token, token}}, want: schemas.TokenHeader},
		{name: "token header with CR/LF", data: valid(""), header: nats.Header{schemas.TokenHeader: []string{token + "\r\nX-Injected: 1"}}, want: schemas.TokenHeader},
	}
}

func TestHostileMessagesAreDeadLetteredOnceWhileValidTrafficFlows(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("c", participants("p", 60)...)
	cases := catalogue(tok)
	require.GreaterOrEqual(t, len(cases), 25)
	h.start(nil)
	for i, c := range cases {
		subject := schemas.DefaultRequestSubjectPrefix + ".c"
		if c.subject != "" {
			subject = schemas.DefaultRequestSubjectPrefix + "." + c.subject
		}
		h.raw(subject, []byte(c.data), c.header)
		h.request(fmt.Sprintf("ok-%d", i), "c", tok, fmt.Sprintf("p-%d", i+1))
	}
	s, rep := h.audit(tok)
	require.Equal(t, len(cases), rep.ByStatus[schemas.StatusSucceeded], "valid traffic flowed")
	require.Equal(t, len(cases), rep.ByReason[schemas.ReasonInvalidRequest])

	errs := map[int]string{}
	for _, dl := range s.DeadLetters {
		require.Equal(t, schemas.ReasonInvalidRequest, dl.Reason)
		require.True(t, strings.HasPrefix(dl.Subject, schemas.DefaultRequestSubjectPrefix+"."))
		payload := string(dl.Request)
		if dl.PayloadBase64 != "" || len(dl.Request) == 0 {
			b, err := base64.StdEncoding.DecodeString(dl.PayloadBase64)
			require.NoError(t, err)
			payload = string(b)
		}
		for k, v := range dl.Headers {
			if strings.EqualFold(k, schemas.TokenHeader) {
				require.Equal(t, []string{"[redacted]"}, v, "the token never reaches a dead letter")
			}
		}
		found := -1
		for i, c := range cases {
			if c.data == payload || equalJSON(c.data, payload) {
				found = i
				break
			}
		}
		require.GreaterOrEqual(t, found, 0, "dead letter %q matches a case", dl.Error)
		_, dup := errs[found]
		require.False(t, dup, "case %q dead-lettered twice", cases[found].name)
		errs[found] = dl.Error
	}
	for i, c := range cases {
		e, ok := errs[i]
		require.True(t, ok, "case %q was dead-lettered", c.name)
		require.Contains(t, e, c.want, "case %q names the problem", c.name)
		require.NotContains(t, e, tok, "case %q: no token in the error", c.name)
	}
}

// equalJSON compares two JSON texts by value: a dead letter re-encodes
// the original JSON payload (compacted, HTML characters escaped).
func equalJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

package ops_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/schemas"
)

func TestReadDraftsRefusesAllWithTheDecodersError(t *testing.T) {
	input := `{"requestID":"r1","conferenceID":"914083136","participantIDs":["a1"]}

{"requestID":"r2","conferenceID":"914083136","participantIDs":["a1","John Smith"]}
{"requestID":"r3","conferenceID":"914083136","participantIDs":["a1"]}
`
	drafts, err := ops.ReadDrafts(strings.NewReader(input), ops.PublishConfig{})
	require.Nil(t, drafts)
	bad := `{"requestID":"r2","conferenceID":"914083136","participantIDs":["a1","John Smith"]}`
	_, decoderErr := schemas.DecodeRequest(requestSubject, []byte(bad), schemas.DecodeOptions{})
	require.EqualError(t, err, "line 3: "+decoderErr.Error())

	for _, tc := range []struct{ line, want string }{
		{`not json`, "line 1: payload is not valid JSON"},
		{`{"requestID":"r","participantIDs":["a"]}`, "line 1: conferenceID: is required"},
		{`{"requestID":"r","conferenceID":"a.b","participantIDs":["a"]}`, `line 1: conferenceID: contains "." at character 2`},
		{`{"requestID":"r","conferenceID":"c","participantIDs":["a"],"dryRun":true}`, `line 1: unknown field "dryRun"`},
	} {
		_, err := ops.ReadDrafts(strings.NewReader(tc.line), ops.PublishConfig{})
		require.ErrorContains(t, err, tc.want)
	}
	_, err = ops.ReadDrafts(strings.NewReader("\n \n"), ops.PublishConfig{})
	require.ErrorContains(t, err, "no request")
}

func TestNewDraftChecksWithTheWorkersLimits(t *testing.T) {
	ids := make([]string, 501)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%d", i)
	}
	_, err := ops.NewDraft(schemas.Request{RequestID: "r", ConferenceID: "c", ParticipantIDs: ids}, ops.PublishConfig{})
	require.ErrorContains(t, err, "participantIDs: lists 501 IDs; the limit is 500")
	_, err = ops.NewDraft(schemas.Request{RequestID: "r", ConferenceID: "c", ParticipantIDs: ids[:3]}, ops.PublishConfig{MaxParticipants: 2})
	require.ErrorContains(t, err, "participantIDs: lists 3 IDs; the limit is 2")

	d, err := ops.NewDraft(schemas.Request{RequestID: "r", ConferenceID: "c", ParticipantIDs: []string{"a", "a"}},
		ops.PublishConfig{SubjectPrefix: "acme.requests"})
	require.NoError(t, err)
	require.Equal(t, "acme.requests.c", d.Subject)
	require.Equal(t, []string{"a"}, d.Request.ParticipantIDs)
}

func TestPublishReportsSequencesAndDuplicates(t *testing.T) {
	e := newEnv(t)
	input := `{"requestID":"r1","conferenceID":"914083136","participantIDs":["a1"]}
{"requestID":"r2","conferenceID":"c2","participantIDs":["b1","b2"],"reason":"<spam>"}
{"requestID":"r1","conferenceID":"914083136","participantIDs":["a1"]}
`
	cfg := ops.PublishConfig{Token: testToken}
	drafts, err := ops.ReadDrafts(strings.NewReader(input), cfg)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, ops.Publish(e.ctx, e.js, drafts, cfg, ops.Output{W: &out, JSON: true}))
	lines := jsonLines(t, &out)
	require.Len(t, lines, 3)
	require.Equal(t, map[string]any{"requestID": "r1", "conferenceID": "914083136", "subject": requestSubject,
		"stream": schemas.DefaultRequestStream, "sequence": 1.0, "duplicate": false}, lines[0])
	require.Equal(t, 2.0, lines[1]["sequence"])
	require.Equal(t, true, lines[2]["duplicate"])
	require.Equal(t, 1.0, lines[2]["sequence"], "a duplicate reports the first one's sequence")
	require.NotContains(t, out.String(), testToken)

	msgs := e.msgs(t, schemas.DefaultRequestStream)
	require.Len(t, msgs, 2)
	require.Equal(t, "r1", msgs[0].Header.Get(schemas.MsgIDHeader))
	require.Equal(t, testToken, msgs[0].Header.Get(schemas.TokenHeader))
	require.Equal(t, "r2", msgs[1].Header.Get(schemas.MsgIDHeader))
	got, err := schemas.DecodeRequest(schemas.DefaultRequestSubjectPrefix+".c2", msgs[1].Data, schemas.DecodeOptions{})
	require.NoError(t, err)
	require.Equal(t, "<spam>", got.Reason)

	out.Reset()
	require.NoError(t, ops.Publish(e.ctx, e.js, drafts[:1], ops.PublishConfig{}, ops.Output{W: &out}))
	require.Equal(t, "duplicate r1 (conference 914083136): the stream DISCONNECT_REQUESTS already holds it at sequence 1; not stored again\n", out.String())
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(good, []byte("  "+testToken+"\n"), 0o600))
	tok, err := ops.ReadTokenFile(good)
	require.NoError(t, err)
	require.Equal(t, testToken, tok)

	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("Bearer "+testToken), 0o600))
	_, err = ops.ReadTokenFile(bad)
	require.ErrorContains(t, err, "X-Conference-Authorization: contains a space")
	require.NotContains(t, err.Error(), testToken[3:])
}

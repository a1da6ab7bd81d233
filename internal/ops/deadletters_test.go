package ops_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// validPayload is a valid request; expiresAt is set when not empty.
func validPayload(reqID, conf, expiresAt string) []byte {
	extra := ""
	if expiresAt != "" {
		extra = `,"expiresAt":"` + expiresAt + `"`
	}
	return fmt.Appendf(nil, `{"requestID":%q,"conferenceID":%q,"participantIDs":["a1","b2"],"reason":"spam"%s}`, reqID, conf, extra)
}

// deadLetter publishes the dead letter of a request message carrying
// payload and a control token, built and published as the worker does.
func (e *env) deadLetter(t *testing.T, reqID, conf string, reason schemas.DeadLetterReason, payload []byte) {
	t.Helper()
	subject := schemas.DefaultRequestSubjectPrefix + "." + cmp.Or(conf, "914083136")
	src := outcome.Source{
		Stream: schemas.DefaultRequestStream, Subject: subject, StreamSequence: 7, Deliveries: 1, Payload: payload,
		Headers:    map[string][]string{schemas.MsgIDHeader: {cmp.Or(reqID, "x")}, schemas.TokenHeader: {testToken}},
		ReceivedAt: time.Now(),
	}
	errText := "the meeting API refused the hang-up"
	if _, err := schemas.DecodeRequest(subject, payload, schemas.DecodeOptions{}); err != nil {
		errText = err.Error()
	}
	dl := src.DeadLetter(reason, errText, time.Now(), "w1")
	dl.RequestID, dl.ConferenceID = reqID, conf
	pub, err := outcome.NewPublisher(outcome.Config{}, e.js)
	require.NoError(t, err)
	msgID := reqID
	if msgID == "" {
		msgID = outcome.InvalidMsgID(src.Stream, uint64(time.Now().UnixNano()))
	}
	require.NoError(t, pub.PublishDeadLetter(e.ctx, dl, msgID))
}

// fourDeadLetters publishes a valid rejected request (c1), a binary
// message, a request with an unknown field (c2), and a valid request of
// c1 whose expiresAt has passed.
func (e *env) fourDeadLetters(t *testing.T) {
	t.Helper()
	e.deadLetter(t, "r1", "c1", schemas.ReasonRejected, validPayload("r1", "c1", ""))
	e.deadLetter(t, "", "", schemas.ReasonInvalidRequest, []byte{0xff, 0xd8, 0xff})
	e.deadLetter(t, "r3", "c2", schemas.ReasonInvalidRequest, []byte(`{"requestID":"r3","conferenceID":"c2","participantIDs":["a1"],"dryRun":true}`))
	e.deadLetter(t, "r4", "c1", schemas.ReasonRetriesExhausted, validPayload("r4", "c1", "2025-06-01T12:00:00Z"))
}

func (e *env) deadLetters(t *testing.T, cfg ops.DeadLetterConfig) *ops.DeadLetters {
	t.Helper()
	d, err := ops.NewDeadLetters(cfg, e.js)
	require.NoError(t, err)
	return d
}

func sequencesOf(entries []*ops.Entry) []uint64 {
	out := []uint64{}
	for _, e := range entries {
		out = append(out, e.Sequence)
	}
	return out
}

func TestListTellsWhatCanBeReplayed(t *testing.T) {
	e := newEnv(t)
	e.fourDeadLetters(t)
	d := e.deadLetters(t, ops.DeadLetterConfig{})
	entries, err := d.List(e.ctx, ops.Filter{})
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3, 4}, sequencesOf(entries))
	require.Equal(t, "r1", entries[0].Request.RequestID)
	require.Empty(t, entries[0].NotReplayable)
	require.Nil(t, entries[1].Request)
	require.Equal(t, "not a valid request: payload is not valid UTF-8 (first bad byte at offset 0)", entries[1].NotReplayable)
	require.Equal(t, `not a valid request: unknown field "dryRun"; a request has only requestID, conferenceID, participantIDs, reason, requestedBy, expiresAt and replayOf (the worker refuses what it might misread)`,
		entries[2].NotReplayable)
	require.NotNil(t, entries[3].Request, "an expired request is still a valid one")

	for _, tc := range []struct {
		f    ops.Filter
		want []uint64
	}{
		{ops.Filter{Reason: schemas.ReasonInvalidRequest}, []uint64{2, 3}},
		{ops.Filter{Conference: "c1"}, []uint64{1, 4}},
		{ops.Filter{Conference: "c1", Reason: schemas.ReasonRejected}, []uint64{1}},
		{ops.Filter{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, []uint64{1, 2, 3, 4}},
		{ops.Filter{Since: time.Now().Add(time.Hour)}, []uint64{}},
		{ops.Filter{Until: time.Now().Add(-time.Hour)}, []uint64{}},
		{ops.Filter{Conference: "nobody"}, []uint64{}},
	} {
		got, err := d.List(e.ctx, tc.f)
		require.NoError(t, err)
		require.Equal(t, tc.want, sequencesOf(got), "%+v", tc.f)
	}
	_, err = d.List(e.ctx, ops.Filter{Reason: "lost"})
	require.ErrorContains(t, err, `Reason: must be invalid_request`)

	// List leaves no consumer behind.
	st, err := e.js.Stream(e.ctx, schemas.DefaultDeadLetterStream)
	require.NoError(t, err)
	info, err := st.Info(e.ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Consumers)

	var out bytes.Buffer
	require.NoError(t, ops.WriteList(ops.Output{W: &out}, entries))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 5)
	require.Regexp(t, `^#1  \S+  c1  r1  rejected  not replayed$`, lines[0])
	require.Regexp(t, `^#2  \S+  -  -  invalid_request  cannot be replayed: not a valid request: payload is not valid UTF-8`, lines[1])
	require.Equal(t, "4 dead letters", lines[4])

	out.Reset()
	require.NoError(t, ops.WriteList(ops.Output{W: &out, JSON: true}, entries[:2]))
	items := jsonLines(t, &out)
	require.Equal(t, true, items[0]["replayable"])
	require.Equal(t, "rejected", items[0]["reason"])
	require.Equal(t, false, items[1]["replayable"])
}

func TestShowPrintsTheStoredDeadLetterWithoutSecrets(t *testing.T) {
	e := newEnv(t)
	e.fourDeadLetters(t)
	d := e.deadLetters(t, ops.DeadLetterConfig{})
	entry, err := d.Get(e.ctx, 1)
	require.NoError(t, err)

	var out bytes.Buffer
	require.NoError(t, ops.WriteEntry(ops.Output{W: &out, JSON: true}, entry))
	require.NotContains(t, out.String(), testToken)
	var shown struct {
		Sequence   uint64              `json:"sequence"`
		Subject    string              `json:"subject"`
		Headers    map[string][]string `json:"headers"`
		DeadLetter schemas.DeadLetter  `json:"deadLetter"`
		Replayable bool                `json:"replayable"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &shown))
	require.Equal(t, uint64(1), shown.Sequence)
	require.Equal(t, schemas.DefaultDeadLetterSubjectPrefix+".c1", shown.Subject)
	require.Equal(t, []string{"r1"}, shown.Headers[schemas.MsgIDHeader], "the dead-letter message's own headers")
	require.Equal(t, []string{schemas.Redacted}, shown.DeadLetter.Headers[schemas.TokenHeader])
	require.Equal(t, schemas.ReasonRejected, shown.DeadLetter.Reason)
	require.JSONEq(t, string(validPayload("r1", "c1", "")), string(shown.DeadLetter.Request))
	require.True(t, shown.Replayable)

	out.Reset()
	require.NoError(t, ops.WriteEntry(ops.Output{W: &out}, entry))
	require.Contains(t, out.String(), "dead letter #1, stored ")
	require.Contains(t, out.String(), `"X-Conference-Authorization": [`+"\n"+`      "[redacted]"`)
	require.Contains(t, out.String(), "not replayed\n")

	_, err = d.Get(e.ctx, 99)
	require.ErrorContains(t, err, "dead letter 99: there is no message at that sequence in DISCONNECT_DLQ")
}

func TestShowRedactsASecretStoredInTheClear(t *testing.T) {
	e := newEnv(t)
	dl := schemas.DeadLetter{Reason: schemas.ReasonRejected, Error: "x", RequestID: "r1", ConferenceID: "c1",
		Subject: requestSubject, Request: validPayload("r1", "914083136", ""),
		Headers: map[string][]string{"X-Api-Token": {testToken}, "X-Trace": {"t1"}}}
	data, err := json.Marshal(dl)
	require.NoError(t, err)
	_, err = e.js.Publish(e.ctx, schemas.DefaultDeadLetterSubjectPrefix+".c1", data, jetstream.WithMsgID("r1"))
	require.NoError(t, err)
	entry, err := e.deadLetters(t, ops.DeadLetterConfig{}).Get(e.ctx, 1)
	require.NoError(t, err)
	for _, asJSON := range []bool{true, false} {
		var out bytes.Buffer
		require.NoError(t, ops.WriteEntry(ops.Output{W: &out, JSON: asJSON}, entry))
		require.NotContains(t, out.String(), testToken)
		require.Contains(t, out.String(), "t1")
	}
}

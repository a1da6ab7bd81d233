package ops_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/schemas"
)

// replayed decodes the requests in the request stream.
func (e *env) replayed(t *testing.T) []*schemas.Request {
	t.Helper()
	var out []*schemas.Request
	for _, m := range e.msgs(t, schemas.DefaultRequestStream) {
		// The stream stores requests under their partition's subject.
		req, err := schemas.DecodeRequest(schemas.DefaultRequestSubjectPrefix+"."+peekConference(t, m.Data), m.Data, schemas.DecodeOptions{})
		require.NoError(t, err)
		require.Equal(t, req.RequestID, m.Header.Get(schemas.MsgIDHeader), "Nats-Msg-Id is the new request ID")
		out = append(out, req)
	}
	return out
}

func peekConference(t *testing.T, data []byte) string {
	t.Helper()
	var v struct {
		ConferenceID string `json:"conferenceID"`
	}
	require.NoError(t, json.Unmarshal(data, &v))
	return v.ConferenceID
}

func (e *env) replayRecord(t *testing.T, requestID string) *ops.ReplayRecord {
	t.Helper()
	entries, err := e.deadLetters(t, ops.DeadLetterConfig{}).List(e.ctx, ops.Filter{})
	require.NoError(t, err)
	for _, en := range entries {
		if en.Request != nil && en.Request.RequestID == requestID {
			return en.Replays
		}
	}
	return nil
}

func TestReplayPublishesANewRequestAndRecordsIt(t *testing.T) {
	e := newEnv(t)
	e.fourDeadLetters(t)
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	d := e.deadLetters(t, ops.DeadLetterConfig{Now: func() time.Time { return now }})

	var out bytes.Buffer
	err := d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{1}, Yes: true, Token: testToken}, ops.Output{W: &out})
	require.NoError(t, err)
	require.Equal(t, "#1 r1 (conference c1): replay as r1.r1\n"+
		"#1 r1 (conference c1): replayed as r1.r1 (stream DISCONNECT_REQUESTS, sequence 1)\n", out.String())
	reqs := e.replayed(t)
	require.Len(t, reqs, 1)
	require.Equal(t, &schemas.Request{RequestID: "r1.r1", ConferenceID: "c1", ParticipantIDs: []string{"a1", "b2"},
		Reason: "spam", ReplayOf: "r1"}, reqs[0])
	msg := e.msgs(t, schemas.DefaultRequestStream)[0]
	require.Equal(t, testToken, msg.Header.Get(schemas.TokenHeader))
	require.NotContains(t, out.String(), testToken)

	rec := e.replayRecord(t, "r1")
	require.Equal(t, &ops.ReplayRecord{RequestID: "r1", Replays: []ops.Replay{{RequestID: "r1.r1", At: now, DeadLetterSequence: 1}}}, rec)

	// Listed as replayed.
	out.Reset()
	entries, err := d.List(e.ctx, ops.Filter{Reason: schemas.ReasonRejected})
	require.NoError(t, err)
	require.NoError(t, ops.WriteList(ops.Output{W: &out}, entries))
	require.Contains(t, out.String(), "rejected  replayed as r1.r1 at 2026-11-25T18:00:00Z\n")

	// Once more only with Again, as the next replay.
	out.Reset()
	err = d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{1}, Yes: true}, ops.Output{W: &out})
	require.EqualError(t, err, "1 of the 1 dead letters named were not replayed")
	require.Contains(t, out.String(), "#1 r1 (conference c1): skipped: already replayed as r1.r1 at 2026-11-25T18:00:00Z; --again replays it once more")
	require.Len(t, e.replayed(t), 1)

	out.Reset()
	require.NoError(t, d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{1}, Yes: true, Again: true}, ops.Output{W: &out, JSON: true}))
	lines := jsonLines(t, &out)
	require.Equal(t, "replay", lines[0]["action"])
	require.Equal(t, map[string]any{"sequence": 1.0, "requestID": "r1", "conferenceID": "c1", "action": "replayed",
		"replayedAs": "r1.r2", "stream": "DISCONNECT_REQUESTS", "streamSequence": 2.0}, lines[len(lines)-1])
	reqs = e.replayed(t)
	require.Len(t, reqs, 2)
	require.Equal(t, "r1.r2", reqs[1].RequestID)
	require.Equal(t, "r1", reqs[1].ReplayOf)
	require.Empty(t, e.msgs(t, schemas.DefaultRequestStream)[1].Header.Get(schemas.TokenHeader), "no token given: none sent")
	require.Len(t, e.replayRecord(t, "r1").Replays, 2)
}

func TestReplayRefusesWhatIsNotAValidRequest(t *testing.T) {
	e := newEnv(t)
	e.fourDeadLetters(t)
	d := e.deadLetters(t, ops.DeadLetterConfig{})
	var out bytes.Buffer
	err := d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{2, 3}, Yes: true}, ops.Output{W: &out})
	require.EqualError(t, err, "2 of the 2 dead letters named were not replayed")
	require.Contains(t, out.String(), "#2 - (conference -): skipped: cannot be replayed: not a valid request: payload is not valid UTF-8")
	require.Contains(t, out.String(), `#3 r3 (conference c2): skipped: cannot be replayed: not a valid request: unknown field "dryRun"`)
	require.Contains(t, out.String(), "nothing to replay\n")
	require.Zero(t, e.count(t, schemas.DefaultRequestStream))

	// Selected by a filter, they are skipped and the valid one replayed.
	out.Reset()
	require.NoError(t, d.Replay(e.ctx, ops.ReplayOptions{Filter: ops.Filter{Conference: "c2"}, Yes: true}, ops.Output{W: &out}))
	require.Zero(t, e.count(t, schemas.DefaultRequestStream))
}

func TestReplayOfAPassedExpiryNeedsANewOne(t *testing.T) {
	e := newEnv(t)
	e.fourDeadLetters(t)
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	d := e.deadLetters(t, ops.DeadLetterConfig{Now: func() time.Time { return now }})
	var out bytes.Buffer
	err := d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{4}, Yes: true}, ops.Output{W: &out})
	require.Error(t, err)
	require.Contains(t, out.String(), "skipped: its expiresAt 2025-06-01T12:00:00Z has passed")
	require.NoError(t, d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{4}, Yes: true, ExpiresIn: 10 * time.Minute}, ops.Output{W: &out}))
	reqs := e.replayed(t)
	require.Len(t, reqs, 1)
	require.Equal(t, now.Add(10*time.Minute), *reqs[0].ExpiresAt)
}

func TestReplayDryRunAndRefusedConfirmationPublishNothing(t *testing.T) {
	e := newEnv(t)
	e.fourDeadLetters(t)
	d := e.deadLetters(t, ops.DeadLetterConfig{})
	var out bytes.Buffer
	require.NoError(t, d.Replay(e.ctx, ops.ReplayOptions{Filter: ops.Filter{Conference: "c1"}, DryRun: true, ExpiresIn: time.Hour}, ops.Output{W: &out}))
	require.Equal(t, "#1 r1 (conference c1): replay as r1.r1\n#4 r4 (conference c1): replay as r4.r1\n"+
		"dry run: 2 dead letters would be replayed; nothing published\n", out.String())
	require.Zero(t, e.count(t, schemas.DefaultRequestStream))
	_, err := e.js.KeyValue(e.ctx, ops.DefaultReplayBucket)
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound, "a dry run writes nothing")

	for _, answer := range []string{"n\n", "\n", "", "no\n", "yes please\n"} {
		var prompt bytes.Buffer
		out.Reset()
		err := d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{1}, Confirm: strings.NewReader(answer), Prompt: &prompt}, ops.Output{W: &out})
		require.ErrorIs(t, err, ops.ErrNotConfirmed, "answer %q", answer)
		require.Equal(t, "replay 1 dead letters? [y/N] ", prompt.String())
		require.Zero(t, e.count(t, schemas.DefaultRequestStream))
	}
	var prompt bytes.Buffer
	require.NoError(t, d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{1}, Confirm: strings.NewReader("Y\n"), Prompt: &prompt}, ops.Output{W: &out}))
	require.Len(t, e.replayed(t), 1)
}

func TestConcurrentReplaysOfOneDeadLetterPublishOnce(t *testing.T) {
	e := newEnv(t)
	const n = 5
	for i := range n {
		id := "r" + string(rune('a'+i))
		e.deadLetter(t, id, "c1", schemas.ReasonRejected, validPayload(id, "c1", ""))
	}
	for seq := uint64(1); seq <= n; seq++ {
		const callers = 3
		errs := make([]error, callers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range callers {
			d := e.deadLetters(t, ops.DeadLetterConfig{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{seq}, Yes: true}, ops.Output{W: &bytes.Buffer{}})
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			}
		}
		require.Equal(t, 1, ok, "one caller replays dead letter %d: %v", seq, errors.Join(errs...))
		require.Equal(t, seq, e.count(t, schemas.DefaultRequestStream), "one replay more per dead letter")
	}
}

func TestAFailedPublishTakesTheRecordBack(t *testing.T) {
	e := newEnv(t)
	e.fourDeadLetters(t)
	// Nothing listens on this prefix: the publish gets no ack.
	d := e.deadLetters(t, ops.DeadLetterConfig{RequestSubjectPrefix: "nowhere.requests"})
	e.deadLetter(t, "r5", "c1", schemas.ReasonRejected, validPayload("r5", "c1", ""))
	// The dead letter's subject is under the worker's prefix; under
	// another one it is not a valid request.
	entries, err := d.List(e.ctx, ops.Filter{})
	require.NoError(t, err)
	require.Contains(t, entries[0].NotReplayable, "subject: ")

	require.NoError(t, e.js.DeleteStream(e.ctx, schemas.DefaultRequestStream))
	d = e.deadLetters(t, ops.DeadLetterConfig{})
	var out bytes.Buffer
	err = d.Replay(e.ctx, ops.ReplayOptions{Sequences: []uint64{1}, Yes: true}, ops.Output{W: &out})
	require.ErrorContains(t, err, "dead letter 1: publish request r1.r1")
	require.Contains(t, out.String(), "#1 r1 (conference c1): failed: publish request r1.r1")
	require.Nil(t, e.replayRecord(t, "r1"), "the record is taken back")
}

package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// result publishes a result as the worker does.
func (e *env) result(t *testing.T, reqID, conf string, status schemas.Status) {
	t.Helper()
	pub, err := outcome.NewPublisher(outcome.Config{}, e.js)
	require.NoError(t, err)
	r := &schemas.Result{RequestID: reqID, ConferenceID: conf, ParticipantIDs: []string{"a1"}, Status: status,
		Disconnected: []string{"a1"}, Attempts: 1, ReceivedAt: time.Now(), CompletedAt: time.Now(), WorkerID: "w1"}
	if status == schemas.StatusFailed {
		r.Disconnected, r.FailedParticipantIDs = nil, []string{"a1"}
	}
	_, err = pub.PublishResult(e.ctx, r)
	require.NoError(t, err)
}

// tailed decodes what Tail wrote as JSON lines.
func tailed(t *testing.T, out *bytes.Buffer) []ops.Event {
	t.Helper()
	var evs []ops.Event
	dec := json.NewDecoder(out)
	for dec.More() {
		var ev ops.Event
		require.NoError(t, dec.Decode(&ev))
		evs = append(evs, ev)
	}
	return evs
}

func requestIDOf(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v struct {
		RequestID string `json:"requestID"`
	}
	require.NoError(t, json.Unmarshal(raw, &v))
	return v.RequestID
}

func TestTailFiltersResultsFromThePast(t *testing.T) {
	e := newEnv(t)
	e.result(t, "r1", "c1", schemas.StatusSucceeded)
	e.result(t, "r2", "c2", schemas.StatusFailed)
	e.result(t, "r3", "c1", schemas.StatusFailed)
	e.result(t, "r4", "c1", schemas.StatusSucceeded)

	tail := func(cfg ops.TailConfig) []string {
		t.Helper()
		cfg.Since = time.Now().Add(-time.Hour)
		var out bytes.Buffer
		require.NoError(t, ops.Tail(e.ctx, e.js, cfg, ops.Output{W: &out, JSON: true}))
		var ids []string
		for _, ev := range tailed(t, &out) {
			require.Equal(t, schemas.DefaultResultStream, ev.Stream)
			ids = append(ids, requestIDOf(t, ev.Result))
		}
		return ids
	}
	require.Equal(t, []string{"r1", "r2", "r3", "r4"}, tail(ops.TailConfig{Count: 4}))
	require.Equal(t, []string{"r1", "r3"}, tail(ops.TailConfig{Conference: "c1", Count: 2}))
	require.Equal(t, []string{"r3"}, tail(ops.TailConfig{Conference: "c1", Status: schemas.StatusFailed, Count: 1}))
	require.Equal(t, []string{"r2", "r3"}, tail(ops.TailConfig{Status: schemas.StatusFailed, Count: 2}))

	// A start after everything stored: nothing old, so the next one is new.
	ctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, ops.Tail(ctx, e.js, ops.TailConfig{Since: time.Now().Add(time.Hour), Count: 1}, ops.Output{W: &out}))
	require.Empty(t, out.String(), "ended by its context, having seen nothing")
}

func TestTailFollowsOnlyNewEventsByDefault(t *testing.T) {
	e := newEnv(t)
	e.result(t, "old", "c1", schemas.StatusSucceeded)
	var out bytes.Buffer
	var tailErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tailErr = ops.Tail(e.ctx, e.js, ops.TailConfig{Count: 1}, ops.Output{W: &out})
	}()
	st, err := e.js.Stream(e.ctx, schemas.DefaultResultStream)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := st.Info(e.ctx)
		return err == nil && info.State.Consumers == 1
	}, 10*time.Second, 10*time.Millisecond, "tail's consumer")
	e.result(t, "new", "c1", schemas.StatusExpired)
	wg.Wait()
	require.NoError(t, tailErr)
	require.Regexp(t, `^\S+ #2 result c1 new expired: 1 disconnected, 0 already gone, 0 failed, 1 calls\n$`, out.String())
}

func TestTailDeadLettersByReason(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "r1", "c1", schemas.ReasonRejected, validPayload("r1", "c1", ""))
	e.deadLetter(t, "r2", "c1", schemas.ReasonMaxDeliveries, validPayload("r2", "c1", ""))
	e.deadLetter(t, "", "", schemas.ReasonInvalidRequest, []byte{0xff, 0xfe})
	var out bytes.Buffer
	require.NoError(t, ops.Tail(e.ctx, e.js, ops.TailConfig{DeadLetters: true, Reason: schemas.ReasonMaxDeliveries,
		Since: time.Now().Add(-time.Minute), Count: 1}, ops.Output{W: &out, JSON: true}))
	evs := tailed(t, &out)
	require.Len(t, evs, 1)
	require.Equal(t, schemas.DefaultDeadLetterStream, evs[0].Stream)
	require.Equal(t, "r2", requestIDOf(t, evs[0].DeadLetter))

	out.Reset()
	require.NoError(t, ops.Tail(e.ctx, e.js, ops.TailConfig{DeadLetters: true, Since: time.Now().Add(-time.Minute), Count: 3},
		ops.Output{W: &out}))
	require.Contains(t, out.String(), " #3 dead letter - - invalid_request: payload is not valid UTF-8")
}

func TestTailRefusesFiltersThatDoNotApply(t *testing.T) {
	for _, tc := range []struct {
		cfg  ops.TailConfig
		want string
	}{
		{ops.TailConfig{Status: "done"}, `Status: must be succeeded, failed or expired, got "done"`},
		{ops.TailConfig{DeadLetters: true, Status: schemas.StatusFailed}, "Status: dead letters have no status"},
		{ops.TailConfig{Reason: schemas.ReasonRejected}, "Reason: results have no reason"},
		{ops.TailConfig{DeadLetters: true, Reason: "gone"}, `Reason: must be invalid_request, rejected, retries_exhausted or max_deliveries, got "gone"`},
		{ops.TailConfig{Conference: "a.b"}, `Conference: conferenceID: contains "."`},
		{ops.TailConfig{Count: -1}, "Count: must not be negative"},
	} {
		require.ErrorContains(t, tc.cfg.Validate(), tc.want)
	}
}

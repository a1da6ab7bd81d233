package audit

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/schemas"
)

func ok(id string, ids ...string) schemas.Result {
	return schemas.Result{RequestID: id, ConferenceID: "c", ParticipantIDs: ids, Status: schemas.StatusSucceeded, Disconnected: ids}
}

func failed(id string, ids ...string) schemas.Result {
	return schemas.Result{RequestID: id, ConferenceID: "c", ParticipantIDs: ids, Status: schemas.StatusFailed, FailedParticipantIDs: ids}
}

func baseExpect() Expect {
	return Expect{
		Valid:        map[string]Sent{"r1": {ConferenceID: "c", ParticipantIDs: []string{"a"}}, "r2": {ConferenceID: "c", ParticipantIDs: []string{"b"}}},
		Invalid:      1,
		Disconnected: map[string]map[string]bool{"c": {"a": true}},
		Secrets:      []string{"stb-secret"},
	}
}

func baseSnapshot() *Snapshot {
	return &Snapshot{
		Results: []schemas.Result{ok("r1", "a"), failed("r2", "b")},
		DeadLetters: []schemas.DeadLetter{
			{Reason: schemas.ReasonRejected, RequestID: "r2", ConferenceID: "c"},
			{Reason: schemas.ReasonInvalidRequest},
		},
	}
}

func TestCheckPassesAConsistentSnapshot(t *testing.T) {
	rep := Check(baseSnapshot(), baseExpect())
	require.Empty(t, rep.Violations)
	require.True(t, rep.OK())
	require.Equal(t, 1, rep.ByStatus[schemas.StatusSucceeded])
	require.Equal(t, 1, rep.ByReason[schemas.ReasonInvalidRequest])
	require.Equal(t, 2, rep.Requested)
	require.Equal(t, 1, rep.Disconnected)
}

func TestCheckFindsEachViolation(t *testing.T) {
	cases := map[string]struct {
		mutate func(*Snapshot, *Expect)
		want   string
	}{
		"two results":                {func(s *Snapshot, _ *Expect) { s.Results = append(s.Results, ok("r1", "a")) }, "2 results"},
		"no result":                  {func(s *Snapshot, _ *Expect) { s.Results = s.Results[:1]; s.DeadLetters = s.DeadLetters[1:] }, "no result"},
		"failed without dead letter": {func(s *Snapshot, _ *Expect) { s.DeadLetters = s.DeadLetters[1:] }, "0 dead letters, want 1"},
		"succeeded with dead letter": {func(s *Snapshot, _ *Expect) {
			s.DeadLetters = append(s.DeadLetters, schemas.DeadLetter{Reason: schemas.ReasonRejected, RequestID: "r1"})
		}, "1 dead letters, want 0"},
		"invalid not dead-lettered": {func(_ *Snapshot, e *Expect) { e.Invalid = 2 }, "2 invalid messages published, 1"},
		"reported gone but never removed": {func(s *Snapshot, _ *Expect) {
			s.Results[1] = schemas.Result{RequestID: "r2", ConferenceID: "c", ParticipantIDs: []string{"b"}, Status: schemas.StatusSucceeded, AlreadyGone: []string{"b"}}
			s.DeadLetters = s.DeadLetters[1:]
		}, "never removed"},
		"removed but never requested": {func(_ *Snapshot, e *Expect) { e.Disconnected["c"]["zed"] = true }, "never requested"},
		"participant without outcome": {func(s *Snapshot, _ *Expect) { s.Results[0].Disconnected = nil }, "has no outcome"},
		"result for unknown request":  {func(s *Snapshot, _ *Expect) { s.Results = append(s.Results, ok("r9", "a")) }, "unknown request"},
		"secret in an event": {func(s *Snapshot, _ *Expect) {
			raw, _ := json.Marshal(schemas.DeadLetter{Error: "token stb-secret rejected"})
			s.Raw = append(s.Raw, raw)
		}, "secret"},
		"succeeded with failures": {func(s *Snapshot, _ *Expect) { s.Results[0].FailedParticipantIDs = []string{"a"} }, "succeeded with failed participants"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, e := baseSnapshot(), baseExpect()
			tc.mutate(s, &e)
			rep := Check(s, e)
			require.False(t, rep.OK())
			require.True(t, containsAny(rep.Violations, tc.want), "violations %q lack %q", rep.Violations, tc.want)
		})
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

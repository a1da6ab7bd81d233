package meetingsim

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewValidatesConfig(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{TokenLifetime: -time.Second}, "Config.TokenLifetime must not be negative"},
		{Config{Mode: Mode(7)}, "Config.Mode must be ModeLenient or ModeStrict"},
		{Config{TokenMode: TokenMode(7)}, "Config.TokenMode must be TokenModeMany or TokenModeOneLive"},
		{Config{Faults: Faults{SpikeRate: 2}}, "Config.Faults.SpikeRate must be within [0, 1]"},
		{Config{MaxRecords: -1}, "Config.MaxRecords must not be negative"},
	}
	for _, tc := range cases {
		_, err := New(tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}
	s, err := New(Config{})
	require.NoError(t, err)
	require.Equal(t, ModeLenient, s.Mode())
	require.Equal(t, DefaultTokenLifetime, s.TokenLifetime())
	require.Equal(t, TokenModeMany, s.TokenMode())
}

func TestMeetingManagement(t *testing.T) {
	s, err := New(Config{})
	require.NoError(t, err)

	require.ErrorContains(t, s.AddMeeting(Meeting{HostPassword: "x"}), "Meeting.ID must not be empty")
	require.ErrorContains(t, s.AddMeeting(Meeting{ID: "a"}), "Meeting.HostPassword must not be empty")
	require.ErrorContains(t, s.AddMeeting(Meeting{ID: "a", HostPassword: "x", State: 9}), "Meeting.State")
	require.ErrorContains(t, s.AddMeeting(Meeting{ID: "a", HostPassword: "x", Participants: []string{""}}), "Meeting.Participants")

	require.NoError(t, s.AddMeeting(Meeting{ID: "a", HostPassword: "x", Participants: []string{"2", "1", "2"}}))
	require.ErrorIs(t, s.AddMeeting(Meeting{ID: "a", HostPassword: "y"}), ErrMeetingExists)
	require.Equal(t, []string{"1", "2"}, s.Online("a"))
	require.Nil(t, s.Online("nope"))

	require.ErrorIs(t, s.Join("nope", "1"), ErrMeetingNotFound)
	require.Error(t, s.Join("a", ""))
	require.ErrorIs(t, s.SetMeetingState("nope", StateEnded), ErrMeetingNotFound)
	require.Error(t, s.SetMeetingState("a", MeetingState(5)))

	_, err = s.IssueToken("nope")
	require.ErrorIs(t, err, ErrMeetingNotFound)
	require.NoError(t, s.SetMeetingState("a", StateNotStarted))
	_, err = s.IssueToken("a")
	require.ErrorIs(t, err, ErrMeetingNotRunning)
	require.NoError(t, s.SetMeetingState("a", StateRunning))
	tok, err := s.IssueToken("a")
	require.NoError(t, err)
	require.Regexp(t, `^stb[0-9a-f]{48}$`, tok)

	require.Equal(t, []MeetingSummary{{ID: "a", State: StateRunning, Online: 2}}, s.Meetings())
}

func TestRecordsAreCopies(t *testing.T) {
	e := newEnv(t, Config{})
	require.Equal(t, http.StatusOK, e.hangUp(confID, e.token(confID), "p-0001").status)

	calls := e.sim.Calls()
	calls[0].ParticipantIDs[0] = "changed"
	calls[0].Status = 999
	ds := e.sim.Disconnects()
	ds[0].ParticipantID = "changed"
	st := e.sim.Stats()
	st.CallsByStatus[200] = 999
	f := e.sim.Faults()
	f.Errors = append(f.Errors, ErrorFault{Rate: 1})

	require.Equal(t, []string{"p-0001"}, e.sim.Calls()[0].ParticipantIDs)
	require.Equal(t, 200, e.sim.Calls()[0].Status)
	require.Equal(t, "p-0001", e.sim.Disconnects()[0].ParticipantID)
	require.Equal(t, 1, e.sim.Stats().CallsByStatus[200])
	require.Empty(t, e.sim.Faults().Errors)
}

func TestMaxRecordsKeepsNewest(t *testing.T) {
	e := newEnv(t, Config{MaxRecords: 3})
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = fmt.Sprintf("x-%02d", i)
	}
	require.NoError(t, e.sim.Join(confID, ids...))
	tok := e.token(confID)
	for _, id := range ids {
		require.Equal(t, http.StatusOK, e.hangUp(confID, tok, id).status)
	}
	calls := e.sim.Calls()
	require.Len(t, calls, 3)
	require.Equal(t, []string{"x-09"}, calls[2].ParticipantIDs)
	ds := e.sim.Disconnects()
	require.Len(t, ds, 3)
	require.Equal(t, "x-07", ds[0].ParticipantID)
	require.Equal(t, 10, e.sim.Stats().Calls, "counters are never trimmed")
	require.Equal(t, 10, e.sim.Stats().Disconnects)
}

func TestConcurrentHangUps(t *testing.T) {
	const workers, perWorker = 16, 40
	sim, err := New(Config{Seed: 1, Faults: Faults{Errors: []ErrorFault{{Rate: 0.1}}}})
	require.NoError(t, err)
	ids := make([]string, perWorker)
	for i := range ids {
		ids[i] = fmt.Sprintf("u-%03d", i)
	}
	require.NoError(t, sim.AddMeeting(Meeting{ID: confID, HostPassword: password, Participants: ids}))
	e := serve(t, sim, nil)
	tok := e.token(confID)

	// Every worker tries to hang up every participant, so calls overlap;
	// others change the settings and read the records meanwhile.
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for _, id := range ids {
				e.hangUp(confID, tok, id)
			}
		})
	}
	wg.Go(func() {
		for i := range perWorker {
			sim.SetMode(Mode(i % 2))
			sim.SetFaults(Faults{Errors: []ErrorFault{{Rate: 0.1}}})
			_ = sim.Stats()
			_ = sim.Calls()
			_ = sim.Meetings()
			_ = sim.Online(confID)
		}
		sim.SetMode(ModeLenient)
	})
	wg.Wait()

	// Hang up whoever is left, then everyone was disconnected exactly once.
	sim.SetFaults(Faults{})
	if left := sim.Online(confID); len(left) > 0 {
		require.Equal(t, http.StatusOK, e.hangUp(confID, tok, left...).status)
	}
	require.Empty(t, sim.Online(confID))
	count := map[string]int{}
	for _, d := range sim.Disconnects() {
		count[d.ParticipantID]++
	}
	require.Len(t, count, len(ids))
	for id, n := range count {
		require.Equal(t, 1, n, "participant %s", id)
	}
	st := sim.Stats()
	require.Equal(t, len(ids), st.Disconnects)
	require.Equal(t, len(sim.Calls()), st.Calls)
}

func TestGenerateMeetings(t *testing.T) {
	ms := GenerateMeetings(2, 3, "pw")
	require.Equal(t, []Meeting{
		{ID: "conf-0001", HostPassword: "pw", Participants: []string{"p-0001", "p-0002", "p-0003"}},
		{ID: "conf-0002", HostPassword: "pw", Participants: []string{"p-0001", "p-0002", "p-0003"}},
	}, ms)
	require.Empty(t, GenerateMeetings(0, 3, "pw"))
}

func TestTextEncodings(t *testing.T) {
	for _, m := range []Mode{ModeLenient, ModeStrict} {
		b, err := m.MarshalText()
		require.NoError(t, err)
		var got Mode
		require.NoError(t, got.UnmarshalText(b))
		require.Equal(t, m, got)
	}
	_, err := Mode(3).MarshalText()
	require.Error(t, err)
	m, err := ParseMode("STRICT")
	require.NoError(t, err)
	require.Equal(t, ModeStrict, m)
	_, err = ParseMode("nope")
	require.Error(t, err)

	for _, st := range []MeetingState{StateRunning, StateNotStarted, StateEnded} {
		b, err := st.MarshalText()
		require.NoError(t, err)
		var got MeetingState
		require.NoError(t, got.UnmarshalText(b))
		require.Equal(t, st, got)
	}
	require.Equal(t, "MeetingState(9)", MeetingState(9).String())
}

func TestExpiredTokensArePruned(t *testing.T) {
	clock := newFakeClock()
	s, err := New(Config{Now: clock.Now, TokenLifetime: time.Minute})
	require.NoError(t, err)
	require.NoError(t, s.AddMeeting(Meeting{ID: "a", HostPassword: "x"}))
	for range minTokenPrune {
		_, err := s.IssueToken("a")
		require.NoError(t, err)
	}
	clock.Advance(time.Minute)
	live, err := s.IssueToken("a")
	require.NoError(t, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.tokens, 1)
	require.Contains(t, s.tokens, live)
}

func TestRejectAsMalformedRejectsWholeCall(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	e.sim.RejectAsMalformed("p-0002")
	e.hangUp(confID, tok, "p-0001", "p-0002").requireError(t, http.StatusBadRequest, CodeParamEmpty)
	require.Len(t, e.sim.Online(confID), 4, "a rejected call removes nobody")
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)
	e.sim.RejectAsMalformed()
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0002").status)
	require.Equal(t, []string{"p-0003", "p-0004"}, e.sim.Online(confID))
}

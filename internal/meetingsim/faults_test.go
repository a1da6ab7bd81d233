package meetingsim

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestInjectedErrorRemovesNobody(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	e.sim.SetFaults(Faults{Errors: []ErrorFault{{Rate: 1, Status: 500, Code: "MMC.111070003", Message: "SERVER_BUSY"}}})

	r := e.hangUp(confID, tok, "p-0001")
	r.requireError(t, http.StatusInternalServerError, "MMC.111070003")
	require.Equal(t, "SERVER_BUSY", r.apiError(t).ErrorMsg)
	require.Equal(t, participants, e.sim.Online(confID))
	require.Empty(t, e.sim.Disconnects())
	require.Equal(t, []Call{{
		Time: e.clock.Now(), ConferenceID: confID, ParticipantIDs: []string{"p-0001"},
		Status: 500, Code: "MMC.111070003", RequestID: r.header.Get(HeaderRequestID),
		Injected: true, Fault: "error", Answered: e.clock.Now(),
	}}, e.sim.Calls())
	require.Equal(t, 1, e.sim.Stats().InjectedFaults)

	// Tokens still come: errors apply to hang-ups only.
	require.NotEmpty(t, e.token(confID))

	e.sim.SetFaults(Faults{})
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)
}

func TestInjectedErrorDefaults(t *testing.T) {
	e := newEnv(t, Config{Faults: Faults{Errors: []ErrorFault{{Rate: 1}}}})
	r := e.hangUp(confID, e.token(confID), "p-0001")
	r.requireError(t, http.StatusInternalServerError, CodeServiceError)
	require.Equal(t, messages[CodeServiceError], r.apiError(t).ErrorMsg)

	e.sim.SetFaults(Faults{Errors: []ErrorFault{{Rate: 1, Status: 400, Code: "MMC.111072049"}}})
	r = e.hangUp(confID, e.token(confID), "p-0001")
	r.requireError(t, http.StatusBadRequest, "MMC.111072049")
	require.Equal(t, "INJECTED_ERROR", r.apiError(t).ErrorMsg)
}

func TestFlowControlSendsRetryAfter(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	e.sim.SetFaults(Faults{FlowControlRate: 1, RetryAfter: 1500 * time.Millisecond})

	r := e.hangUp(confID, tok, "p-0001")
	r.requireError(t, http.StatusTooManyRequests, CodeFlowControl)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	require.Equal(t, participants, e.sim.Online(confID))
	calls := e.sim.Calls()
	require.Len(t, calls, 1)
	require.True(t, calls[0].Injected)
	require.Equal(t, "flow_control", calls[0].Fault)

	e.sim.SetFaults(Faults{FlowControlRate: 1})
	r = e.hangUp(confID, tok, "p-0001")
	r.requireError(t, http.StatusTooManyRequests, CodeFlowControl)
	require.Empty(t, r.header.Get("Retry-After"))
}

func TestOutageFailsEveryVendorCall(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	e.sim.SetDown(true)

	e.tokenCall(confID, hostHeaders()).requireError(t, http.StatusServiceUnavailable, CodeServiceError)
	e.hangUp(confID, tok, "p-0001").requireError(t, http.StatusServiceUnavailable, CodeServiceError)
	e.mustDo(http.MethodGet, PathRealTimeInfo+"?conferenceID="+confID, map[string]string{HeaderAuthorization: tok}, "").
		requireError(t, http.StatusServiceUnavailable, CodeServiceError)
	require.Equal(t, participants, e.sim.Online(confID))
	calls := e.sim.Calls()
	require.Len(t, calls, 1)
	require.Equal(t, "outage", calls[0].Fault)

	// The admin API keeps working during an outage.
	require.Equal(t, http.StatusOK, e.mustDo(http.MethodGet, "/_sim/state", nil, "").status)

	e.sim.SetDown(false)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)
}

func TestOutageCanDropConnections(t *testing.T) {
	e := newEnv(t, Config{Faults: Faults{Down: true, DropConnections: true}})
	_, err := e.do(context.Background(), http.MethodPost, PathHangUp+"?conferenceID="+confID,
		map[string]string{HeaderAuthorization: "stb00"}, `{"bulkHangUpParticipants":["p-0001"]}`)
	require.Error(t, err)
	calls := e.sim.Calls()
	require.Len(t, calls, 1)
	require.Equal(t, 0, calls[0].Status)
	require.Equal(t, "dropped", calls[0].Fault)
	require.Equal(t, []string{"p-0001"}, calls[0].ParticipantIDs)
	require.Equal(t, participants, e.sim.Online(confID))
}

func TestOutageWindows(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	start := e.clock.Now().Add(time.Minute)
	e.sim.SetFaults(Faults{DownWindows: []Window{{Start: start, End: start.Add(time.Minute)}}})

	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)
	e.clock.Advance(time.Minute)
	e.hangUp(confID, tok, "p-0002").requireError(t, http.StatusServiceUnavailable, CodeServiceError)
	e.clock.Advance(59 * time.Second)
	e.hangUp(confID, tok, "p-0002").requireError(t, http.StatusServiceUnavailable, CodeServiceError)
	e.clock.Advance(time.Second)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0002").status)
	require.Equal(t, []string{"p-0003", "p-0004"}, e.sim.Online(confID))
}

func TestLatencyDelaysCalls(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	e.sim.SetFaults(Faults{LatencyBase: 30 * time.Millisecond, LatencyJitter: 10 * time.Millisecond})
	start := time.Now()
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)

	e.sim.SetFaults(Faults{SpikeRate: 1, SpikeLatency: 40 * time.Millisecond})
	start = time.Now()
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0002").status)
	require.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond)
}

func TestLatencyStopsWhenClientLeaves(t *testing.T) {
	e := newEnv(t, Config{Faults: Faults{LatencyBase: time.Hour}})
	tok, err := e.sim.IssueToken(confID)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = e.do(ctx, http.MethodPost, PathHangUp+"?conferenceID="+confID,
		map[string]string{HeaderAuthorization: tok}, `{"bulkHangUpParticipants":["p-0001"]}`)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The handler notices the client left, records it and returns; the
	// server's Close in Cleanup would hang otherwise.
	require.Eventually(t, func() bool { return len(e.sim.Calls()) == 1 }, 5*time.Second, 5*time.Millisecond)
	c := e.sim.Calls()[0]
	require.Equal(t, 0, c.Status)
	require.Equal(t, "canceled", c.Fault)
	require.True(t, c.Injected)
	require.Equal(t, participants, e.sim.Online(confID))
}

func TestFaultsNeverRemoveParticipants(t *testing.T) {
	const n = 300
	sim, err := New(Config{Seed: 7, Faults: Faults{
		FlowControlRate: 0.2,
		Errors: []ErrorFault{
			{Rate: 0.2, Status: 500, Code: "MMC.111070003"},
			{Rate: 0.1, Status: 400, Code: "MMC.111072009"},
		},
	}})
	require.NoError(t, err)
	e := serve(t, sim, nil)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("u-%03d", i)
	}
	require.NoError(t, sim.AddMeeting(Meeting{ID: confID, HostPassword: password, Participants: ids}))
	tok, err := sim.IssueToken(confID)
	require.NoError(t, err)

	byID := map[string]int{}
	for _, id := range ids {
		byID[id] = e.hangUp(confID, tok, id).status
	}
	online := map[string]bool{}
	for _, id := range sim.Online(confID) {
		online[id] = true
	}
	failed := 0
	for _, id := range ids {
		if byID[id] == http.StatusOK {
			require.False(t, online[id], "%s: answered 200 but still online", id)
		} else {
			failed++
			require.True(t, online[id], "%s: answered %d but removed", id, byID[id])
		}
	}
	require.Greater(t, failed, n/4)
	require.Less(t, failed, 3*n/4)

	injected := map[string]bool{}
	for _, c := range sim.Calls() {
		if c.Injected {
			injected[c.RequestID] = true
		}
	}
	require.Len(t, injected, failed)
	for _, d := range sim.Disconnects() {
		require.False(t, injected[d.RequestID], "disconnect %v by an injected fault", d)
	}
	st := sim.Stats()
	require.Equal(t, failed, st.InjectedFaults)
	require.Equal(t, n-failed, st.Disconnects)
}

func TestSameSeedSameFaults(t *testing.T) {
	statuses := func(seed uint64) []int {
		e := newEnv(t, Config{Seed: seed, Faults: Faults{Errors: []ErrorFault{{Rate: 0.5}}}})
		tok := e.token(confID)
		var out []int
		for range 40 {
			out = append(out, e.hangUp(confID, tok, "nobody").status)
		}
		return out
	}
	a, b, c := statuses(42), statuses(42), statuses(43)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
	require.Contains(t, a, 200)
	require.Contains(t, a, 500)
}

func TestFaultsValidate(t *testing.T) {
	now := time.Now()
	cases := []struct {
		f    Faults
		want string
	}{
		{Faults{LatencyBase: -1}, "Faults.LatencyBase must not be negative"},
		{Faults{LatencyJitter: -1}, "Faults.LatencyJitter must not be negative"},
		{Faults{SpikeLatency: -1}, "Faults.SpikeLatency must not be negative"},
		{Faults{RetryAfter: -1}, "Faults.RetryAfter must not be negative"},
		{Faults{SpikeRate: 1.5}, "Faults.SpikeRate must be within [0, 1]"},
		{Faults{FlowControlRate: -0.1}, "Faults.FlowControlRate must be within [0, 1]"},
		{Faults{Errors: []ErrorFault{{Rate: 2}}}, "Faults.Errors[0].Rate must be within [0, 1]"},
		{Faults{Errors: []ErrorFault{{Rate: 0.5}, {Rate: 0.1, Status: 200}}}, "Faults.Errors[1].Status must be 0 or within 400 to 599"},
		{Faults{Errors: []ErrorFault{{Rate: 0.6}, {Rate: 0.6}}}, "Faults.Errors rates must add up to at most 1"},
		{Faults{DownWindows: []Window{{Start: now, End: now}}}, "Faults.DownWindows[0].End must be after Start"},
	}
	for _, tc := range cases {
		require.ErrorContains(t, tc.f.Validate(), tc.want)
	}
	require.NoError(t, Faults{
		LatencyBase: time.Second, SpikeRate: 1, FlowControlRate: 1,
		Errors:      []ErrorFault{{Rate: 0.5, Status: 503}, {Rate: 0.5}},
		DownWindows: []Window{{Start: now, End: now.Add(time.Second)}},
	}.Validate())
}

func TestFaultsJSONRoundTrip(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := Faults{
		LatencyBase: 250 * time.Millisecond, LatencyJitter: time.Second, SpikeRate: 0.01, SpikeLatency: 5 * time.Second,
		Errors:          []ErrorFault{{Rate: 0.1, Status: 500, Code: "MMC.111070003", Message: "x"}},
		FlowControlRate: 0.05, RetryAfter: 2 * time.Second, Down: true, DropConnections: true,
		DownWindows: []Window{{Start: now, End: now.Add(time.Minute)}},
	}
	b, err := f.MarshalJSON()
	require.NoError(t, err)
	require.Contains(t, string(b), `"latencyBase":"250ms"`)
	var got Faults
	require.NoError(t, got.UnmarshalJSON(b))
	require.Equal(t, f, got)

	require.Error(t, got.UnmarshalJSON([]byte(`{"latencyBase":"soon"}`)))
	require.Error(t, got.UnmarshalJSON([]byte(`{"latency":"1s"}`)))
}

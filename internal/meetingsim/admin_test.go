package meetingsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireNoSecrets fails if body holds the host password or a token.
func requireNoSecrets(t *testing.T, body []byte, tokens ...string) {
	t.Helper()
	require.NotContains(t, string(body), password)
	require.NotContains(t, strings.ToLower(string(body)), "password")
	for _, tok := range tokens {
		require.NotContains(t, string(body), tok)
	}
	require.NotRegexp(t, `stb[0-9a-f]{48}`, string(body))
}

func TestAdminState(t *testing.T) {
	e := newEnv(t, Config{Mode: ModeStrict})
	tok := e.token(confID)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)

	r := e.mustDo(http.MethodGet, "/_sim/state", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.header.Get("Content-Type"), "application/json")
	requireNoSecrets(t, r.body, tok)
	var st struct {
		Mode     string           `json:"mode"`
		Meetings []MeetingSummary `json:"meetings"`
		Stats    Stats            `json:"stats"`
		Faults   Faults           `json:"faults"`
	}
	require.NoError(t, json.Unmarshal(r.body, &st))
	require.Equal(t, "strict", st.Mode)
	require.Equal(t, []MeetingSummary{{ID: confID, State: StateRunning, Online: 3}}, st.Meetings)
	require.Equal(t, 1, st.Stats.Calls)
	require.Equal(t, map[int]int{200: 1}, st.Stats.CallsByStatus)
	require.Equal(t, 1, st.Stats.TokensIssued)
}

func TestAdminPutFaults(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)

	r := e.mustDo(http.MethodPut, "/_sim/faults", nil,
		`{"errors":[{"rate":1,"status":503,"code":"MMC.111070003","message":"BUSY"}],"latencyBase":"1ms"}`)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, time.Millisecond, e.sim.Faults().LatencyBase)
	e.hangUp(confID, tok, "p-0001").requireError(t, 503, "MMC.111070003")

	for _, bad := range []string{
		`{"errors":[{"rate":2}]}`,
		`{"spikeRate":-1}`,
		`{"latencyBase":"soon"}`,
		`{"latency":"1s"}`,
		`not json`,
	} {
		r = e.mustDo(http.MethodPut, "/_sim/faults", nil, bad)
		require.Equal(t, http.StatusBadRequest, r.status, "body %s", bad)
		require.Contains(t, string(r.body), `"error"`)
	}
	require.Len(t, e.sim.Faults().Errors, 1, "a rejected update changes nothing")

	r = e.mustDo(http.MethodPut, "/_sim/faults", nil, `{"flowControlRate":1,"retryAfter":"3s"}`)
	require.Equal(t, http.StatusOK, r.status)
	r = e.hangUp(confID, tok, "p-0001")
	r.requireError(t, http.StatusTooManyRequests, CodeFlowControl)
	require.Equal(t, "3", r.header.Get("Retry-After"))

	r = e.mustDo(http.MethodPut, "/_sim/faults", nil, `{"down":true}`)
	require.Equal(t, http.StatusOK, r.status)
	e.hangUp(confID, tok, "p-0001").requireError(t, http.StatusServiceUnavailable, CodeServiceError)

	r = e.mustDo(http.MethodGet, "/_sim/faults", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), `"down":true`)

	require.Equal(t, http.StatusOK, e.mustDo(http.MethodPut, "/_sim/faults", nil, `{}`).status)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)
	require.Equal(t, participants[1:], e.sim.Online(confID))
}

func TestAdminMode(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.mustDo(http.MethodPut, "/_sim/mode", nil, `{"mode":"strict"}`)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"mode":"strict"}`, string(r.body))
	require.Equal(t, ModeStrict, e.sim.Mode())
	e.hangUp(confID, e.token(confID), "ghost").requireError(t, 400, CodeParticipantNotFound)

	require.Equal(t, http.StatusOK, e.mustDo(http.MethodPut, "/_sim/mode", nil, `{"mode":"lenient"}`).status)
	require.Equal(t, ModeLenient, e.sim.Mode())
	r = e.mustDo(http.MethodGet, "/_sim/mode", nil, "")
	require.JSONEq(t, `{"mode":"lenient"}`, string(r.body))

	for _, bad := range []string{`{"mode":"chaotic"}`, `{}`, `{"mode":1}`} {
		require.Equal(t, http.StatusBadRequest, e.mustDo(http.MethodPut, "/_sim/mode", nil, bad).status, bad)
	}
	require.Equal(t, ModeLenient, e.sim.Mode())
}

func TestAdminMeetings(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.mustDo(http.MethodPost, "/_sim/meetings", nil,
		`{"id":"conf-0002","hostPassword":"`+password+`","participants":["a","b"],"state":"not_started"}`)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	requireNoSecrets(t, r.body)
	require.JSONEq(t, `{"id":"conf-0002","state":"not_started","online":2}`, string(r.body))

	r = e.mustDo(http.MethodPost, "/_sim/meetings", nil, `{"id":"conf-0002","hostPassword":"x"}`)
	require.Equal(t, http.StatusConflict, r.status)
	for _, bad := range []string{`{"id":"","hostPassword":"x"}`, `{"id":"y"}`, `{"id":"y","hostPassword":"x","state":"paused"}`, `{"conferenceID":"y"}`} {
		require.Equal(t, http.StatusBadRequest, e.mustDo(http.MethodPost, "/_sim/meetings", nil, bad).status, bad)
	}

	r = e.mustDo(http.MethodPut, "/_sim/meetings/conf-0002/state", nil, `{"state":"running"}`)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	r = e.mustDo(http.MethodPost, "/_sim/meetings/conf-0002/join", nil, `{"participants":["c"]}`)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	r = e.mustDo(http.MethodGet, "/_sim/meetings/conf-0002", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	requireNoSecrets(t, r.body)
	require.JSONEq(t, `{"id":"conf-0002","state":"running","online":3,"participants":["a","b","c"]}`, string(r.body))

	// The meeting added over HTTP works with the vendor API.
	r = e.tokenCall("conf-0002", hostHeaders())
	require.Equal(t, http.StatusOK, r.status)

	require.Equal(t, http.StatusNotFound, e.mustDo(http.MethodGet, "/_sim/meetings/nope", nil, "").status)
	require.Equal(t, http.StatusNotFound, e.mustDo(http.MethodPut, "/_sim/meetings/nope/state", nil, `{"state":"ended"}`).status)
	require.Equal(t, http.StatusNotFound, e.mustDo(http.MethodPost, "/_sim/meetings/nope/join", nil, `{"participants":["a"]}`).status)
	require.Equal(t, http.StatusBadRequest, e.mustDo(http.MethodPut, "/_sim/meetings/conf-0002/state", nil, `{}`).status)
}

func TestAdminExpireTokens(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	r := e.mustDo(http.MethodPost, "/_sim/tokens/expire", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"expired":1}`, string(r.body))
	e.hangUp(confID, tok, "p-0001").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	require.Equal(t, http.StatusOK, e.hangUp(confID, e.token(confID), "p-0001").status)
}

func TestAdminRecords(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	ok := e.hangUp(confID, tok, "p-0001", "p-0002")
	e.hangUp(confID, "", "p-0003").requireError(t, 401, CodeTokenInvalid)

	r := e.mustDo(http.MethodGet, "/_sim/calls", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	requireNoSecrets(t, r.body, tok)
	var calls []Call
	require.NoError(t, json.Unmarshal(r.body, &calls))
	require.Equal(t, e.sim.Calls(), calls)

	r = e.mustDo(http.MethodGet, "/_sim/disconnects", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	requireNoSecrets(t, r.body, tok)
	var ds []Disconnect
	require.NoError(t, json.Unmarshal(r.body, &ds))
	require.Len(t, ds, 2)
	require.Equal(t, ok.header.Get(HeaderRequestID), ds[0].RequestID)

	r = e.mustDo(http.MethodPost, "/_sim/reset", nil, "")
	require.Equal(t, http.StatusNoContent, r.status)
	require.Empty(t, e.sim.Calls())
	require.Empty(t, e.sim.Disconnects())
	require.Equal(t, 0, e.sim.Stats().Calls)
	require.Equal(t, participants[2:], e.sim.Online(confID), "reset keeps meetings")

	r = e.mustDo(http.MethodGet, "/_sim/calls", nil, "")
	require.JSONEq(t, `[]`, string(r.body))
}

func TestAdminUnknownEndpoint(t *testing.T) {
	e := newEnv(t, Config{})
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/_sim/nope"},
		{http.MethodDelete, "/_sim/state"},
		{http.MethodGet, "/_sim/tokens/expire"},
	} {
		r := e.mustDo(c.method, c.path, nil, "")
		require.Equal(t, http.StatusNotFound, r.status, "%s %s", c.method, c.path)
		require.Contains(t, string(r.body), `"error"`)
	}
}

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

func TestAdminTokenConfig(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.mustDo(http.MethodGet, "/_sim/tokens/config", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"lifetime":"30m0s","mode":"many"}`, string(r.body))

	r = e.mustDo(http.MethodPost, "/_sim/tokens/config", nil, `{"lifetime":"4s","mode":"one-live"}`)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"lifetime":"4s","mode":"one-live"}`, string(r.body))
	require.Equal(t, 4*time.Second, e.sim.TokenLifetime())
	require.Equal(t, TokenModeOneLive, e.sim.TokenMode())

	// Both settings are in force over the vendor API.
	first := e.tokenResp(confID, hostHeaders())
	require.Equal(t, e.clock.Now().Add(4*time.Second).UnixMilli(), first.Data.ExpireTime)
	require.Equal(t, int64(4), first.Data.ConfTokenExpireTime)
	second := e.token(confID)
	e.hangUp(confID, first.Data.Token, "p-0001").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	require.Equal(t, http.StatusOK, e.hangUp(confID, second, "p-0001").status)

	// Each field is optional; PUT does the same as POST.
	r = e.mustDo(http.MethodPut, "/_sim/tokens/config", nil, `{"mode":"many"}`)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"lifetime":"4s","mode":"many"}`, string(r.body))
	r = e.mustDo(http.MethodPost, "/_sim/tokens/config", nil, `{"lifetime":"1m"}`)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"lifetime":"1m0s","mode":"many"}`, string(r.body))
	r = e.mustDo(http.MethodPost, "/_sim/tokens/config", nil, `{}`)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"lifetime":"1m0s","mode":"many"}`, string(r.body))
	third := e.token(confID)
	require.Equal(t, http.StatusOK, e.hangUp(confID, second, "p-0002").status, "many: the earlier token lives on")
	require.Equal(t, http.StatusOK, e.hangUp(confID, third, "p-0003").status)

	for _, c := range []struct{ body, msg string }{
		{`{"lifetime":"0s"}`, `"lifetime" must be positive, got 0s`},
		{`{"lifetime":"-1s","mode":"one-live"}`, `"lifetime" must be positive, got -1s`},
		{`{"lifetime":"soon"}`, `invalid duration`},
		{`{"lifetime":4}`, `cannot unmarshal number`},
		{`{"mode":"single"}`, `want many or one-live`},
		{`{"lifetime":"2s","mode":"bogus"}`, `want many or one-live`},
		{`{"mode":1}`, `cannot unmarshal number`},
		{`{"ttl":"1s"}`, `unknown field "ttl"`},
		{`{"mode":"many"} {}`, `unexpected data after the JSON value`},
		{`not json`, `invalid character`},
		{``, `EOF`},
	} {
		r = e.mustDo(http.MethodPost, "/_sim/tokens/config", nil, c.body)
		require.Equal(t, http.StatusBadRequest, r.status, "body %s", c.body)
		var answer struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(r.body, &answer), "body %s", c.body)
		require.Contains(t, answer.Error, "decode token config: ", "body %s", c.body)
		require.Contains(t, answer.Error, c.msg, "body %s", c.body)
	}
	require.Equal(t, time.Minute, e.sim.TokenLifetime(), "a rejected update changes nothing")
	require.Equal(t, TokenModeMany, e.sim.TokenMode(), "a rejected update changes nothing")

	r = e.mustDo(http.MethodGet, "/_sim/state", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	requireNoSecrets(t, r.body, first.Data.Token, second, third)
	var st struct {
		Tokens json.RawMessage `json:"tokens"`
		Stats  Stats           `json:"stats"`
	}
	require.NoError(t, json.Unmarshal(r.body, &st))
	require.JSONEq(t, `{"lifetime":"1m0s","mode":"many"}`, string(st.Tokens))
	require.Equal(t, map[string]int{confID: 3}, st.Stats.TokenCallsByConference)
	require.Equal(t, 1, st.Stats.TokensReplaced)
}

package meetingsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func hostHeaders() map[string]string {
	return map[string]string{HeaderPassword: password, HeaderLoginType: "1"}
}

func TestTokenReturnsVendorShape(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.tokenCall(confID, hostHeaders())
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Contains(t, r.header.Get("Content-Type"), "application/json")

	var raw map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw))
	require.ElementsMatch(t, []string{"data", "addressToken", "gloablPublicIP"}, keys(raw))
	data, ok := raw["data"].(map[string]any)
	require.True(t, ok)
	require.ElementsMatch(t, []string{"token", "expireTime", "confTokenExpireTime", "role", "tmpWsToken",
		"wsURL", "userID", "orgID", "vmrCurrentConfID"}, keys(data))

	var tr tokenResponse
	require.NoError(t, json.Unmarshal(r.body, &tr))
	require.Regexp(t, `^stb[0-9a-f]{48}$`, tr.Data.Token)
	require.Equal(t, e.clock.Now().Add(30*time.Minute).UnixMilli(), tr.Data.ExpireTime)
	require.Equal(t, int64(1800), tr.Data.ConfTokenExpireTime)
	require.Equal(t, 1, tr.Data.Role)
	require.Equal(t, confID, tr.Data.VmrCurrentConfID)
	require.Equal(t, "127.0.0.1", tr.GloablPublicIP)
	require.Equal(t, 1, e.sim.Stats().TokensIssued)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestTokenLifetimeIsConfigurable(t *testing.T) {
	e := newEnv(t, Config{TokenLifetime: 5 * time.Minute})
	r := e.tokenCall(confID, hostHeaders())
	var tr tokenResponse
	require.NoError(t, json.Unmarshal(r.body, &tr))
	require.Equal(t, int64(300), tr.Data.ConfTokenExpireTime)
	require.Equal(t, e.clock.Now().Add(5*time.Minute).UnixMilli(), tr.Data.ExpireTime)
}

func TestTokenExpires(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)

	e.clock.Advance(30*time.Minute - time.Millisecond)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)

	e.clock.Advance(time.Millisecond)
	e.hangUp(confID, tok, "p-0002").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	require.Equal(t, []string{"p-0002", "p-0003", "p-0004"}, e.sim.Online(confID))
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t, Config{})
	require.NoError(t, e.sim.AddMeeting(Meeting{ID: "ended", HostPassword: password, State: StateEnded}))
	require.NoError(t, e.sim.AddMeeting(Meeting{ID: "later", HostPassword: password, State: StateNotStarted}))
	other := e.sim.mustAddRunning(t, "other")
	otherTok, err := e.sim.IssueToken(other)
	require.NoError(t, err)

	cases := []struct {
		name   string
		conf   string
		header map[string]string
		status int
		code   string
	}{
		{"wrong password", confID, map[string]string{HeaderPassword: "nope", HeaderLoginType: "1"}, 400, CodeAuthFailed},
		{"unknown meeting", "404404", hostHeaders(), 400, CodeAuthFailed},
		{"missing conferenceID", "", hostHeaders(), 400, CodeParamError},
		{"missing login type", confID, map[string]string{HeaderPassword: password}, 400, CodeParamError},
		{"login type not 1", confID, map[string]string{HeaderPassword: password, HeaderLoginType: "0"}, 400, CodeParamError},
		{"no password nor token", confID, map[string]string{HeaderLoginType: "1"}, 400, CodeParamError},
		{"meeting ended", "ended", hostHeaders(), 400, CodeMeetingEnded},
		{"meeting not started", "later", hostHeaders(), 400, CodeMeetingNotStarted},
		{"keep-alive of unknown token", confID, map[string]string{HeaderLoginType: "1", HeaderAuthorization: "stb00"}, 401, CodeTokenInvalid},
		{"keep-alive of another meeting's token", confID, map[string]string{HeaderLoginType: "1", HeaderAuthorization: otherTok}, 400, CodeAuthFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.tokenCall(tc.conf, tc.header).requireError(t, tc.status, tc.code)
		})
	}
	require.Equal(t, len(cases), e.sim.Stats().TokenRequests)
	require.Equal(t, 1, e.sim.Stats().TokensIssued) // only IssueToken
}

// mustAddRunning adds a running meeting with participants and returns its ID.
func (s *Simulator) mustAddRunning(t *testing.T, id string) string {
	t.Helper()
	require.NoError(t, s.AddMeeting(Meeting{ID: id, HostPassword: password, Participants: participants}))
	return id
}

func TestTokenKeepAlive(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	e.clock.Advance(20 * time.Minute)

	// Keep-alive without a password extends the same token.
	r := e.tokenCall(confID, map[string]string{HeaderLoginType: "1", HeaderAuthorization: tok})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var tr tokenResponse
	require.NoError(t, json.Unmarshal(r.body, &tr))
	require.Equal(t, tok, tr.Data.Token)
	require.Equal(t, e.clock.Now().Add(30*time.Minute).UnixMilli(), tr.Data.ExpireTime)

	e.clock.Advance(20 * time.Minute) // 40 minutes after issue, 20 after keep-alive
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)

	// Expired: keep-alive alone fails, with the password a new token comes.
	e.clock.Advance(time.Hour)
	e.tokenCall(confID, map[string]string{HeaderLoginType: "1", HeaderAuthorization: tok}).
		requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	h := hostHeaders()
	h[HeaderAuthorization] = tok
	r = e.tokenCall(confID, h)
	require.Equal(t, http.StatusOK, r.status)
	require.NoError(t, json.Unmarshal(r.body, &tr))
	require.NotEqual(t, tok, tr.Data.Token)

	st := e.sim.Stats()
	require.Equal(t, 2, st.TokensIssued)
	require.Equal(t, 1, st.TokensRenewed)
}

func TestHangUpRemovesParticipants(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)

	r := e.hangUp(confID, tok, "p-0001", "p-0003")
	require.Equal(t, http.StatusOK, r.status)
	require.Empty(t, r.body)
	reqID := r.header.Get(HeaderRequestID)

	require.Equal(t, []string{"p-0002", "p-0004"}, e.sim.Online(confID))
	now := e.clock.Now()
	require.Equal(t, []Disconnect{
		{ConferenceID: confID, ParticipantID: "p-0001", Time: now, RequestID: reqID},
		{ConferenceID: confID, ParticipantID: "p-0003", Time: now, RequestID: reqID},
	}, e.sim.Disconnects())
	require.Equal(t, []Call{{
		Time: now, ConferenceID: confID, ParticipantIDs: []string{"p-0001", "p-0003"},
		Status: 200, RequestID: reqID, Answered: now,
	}}, e.sim.Calls())
	st := e.sim.Stats()
	require.Equal(t, 1, st.Calls)
	require.Equal(t, map[int]int{200: 1}, st.CallsByStatus)
	require.Equal(t, 2, st.Disconnects)
}

func TestHangUpAcceptsBasicToken(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	r := e.hangUp(confID, "Basic "+base64.StdEncoding.EncodeToString([]byte(tok)), "p-0002")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, []string{"p-0001", "p-0003", "p-0004"}, e.sim.Online(confID))

	e.hangUp(confID, "Basic !!not-base64", "p-0003").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
}

func TestHangUpErrors(t *testing.T) {
	e := newEnv(t, Config{})
	expiring := e.sim.mustAddRunning(t, "expiring")
	expiredTok := e.token(expiring)
	e.sim.ExpireTokens()
	tok := e.token(confID)
	other := e.sim.mustAddRunning(t, "other")
	otherTok := e.token(other)
	ended := e.sim.mustAddRunning(t, "ended")
	endedTok := e.token(ended)
	require.NoError(t, e.sim.SetMeetingState(ended, StateEnded))
	later := e.sim.mustAddRunning(t, "later")
	laterTok := e.token(later)
	require.NoError(t, e.sim.SetMeetingState(later, StateNotStarted))

	valid := `{"bulkHangUpParticipants":["p-0001"]}`
	cases := []struct {
		name      string
		conf, tok string
		body      string
		status    int
		code      string
	}{
		{"missing token", confID, "", valid, 401, CodeTokenInvalid},
		{"unknown token", confID, "stb" + "00112233445566778899aabbccddeeff0011223344556677", valid, 401, CodeTokenInvalid},
		{"expired token", expiring, expiredTok, valid, 401, CodeTokenInvalid},
		{"token of another meeting", confID, otherTok, valid, 400, CodeAuthFailed},
		{"missing conferenceID", "", tok, valid, 400, CodeParamError},
		{"empty body", confID, tok, "", 400, CodeEmptyBody},
		{"bad JSON", confID, tok, `{"bulkHangUpParticipants":`, 400, CodeJSONError},
		{"wrong JSON type", confID, tok, `{"bulkHangUpParticipants":[1,2]}`, 400, CodeJSONError},
		{"empty list", confID, tok, `{"bulkHangUpParticipants":[]}`, 400, CodeParamEmpty},
		{"no list", confID, tok, `{}`, 400, CodeParamEmpty},
		{"unknown meeting", "404404", tok, valid, 400, CodeMeetingNotFound},
		{"meeting ended", ended, endedTok, valid, 400, CodeMeetingEnded},
		{"meeting not started", later, laterTok, valid, 400, CodeMeetingNotStarted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.sim.Reset()
			r := e.hangUpRaw(tc.conf, tc.tok, tc.body)
			r.requireError(t, tc.status, tc.code)
			calls := e.sim.Calls()
			require.Len(t, calls, 1)
			require.Equal(t, tc.status, calls[0].Status)
			require.Equal(t, tc.code, calls[0].Code)
			require.False(t, calls[0].Injected)
			require.Equal(t, r.header.Get(HeaderRequestID), calls[0].RequestID)
			require.Empty(t, e.sim.Disconnects())
		})
	}
	for _, m := range []string{confID, other, ended, later, expiring} {
		require.Equal(t, participants, e.sim.Online(m), "meeting %s", m)
	}
}

func TestHangUpLenientIgnoresIDsNotOnline(t *testing.T) {
	e := newEnv(t, Config{Mode: ModeLenient})
	tok := e.token(confID)
	r := e.hangUp(confID, tok, "ghost", "p-0001", "p-0001", "")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, []string{"p-0002", "p-0003", "p-0004"}, e.sim.Online(confID))
	require.Len(t, e.sim.Disconnects(), 1)

	// Hanging up someone already gone succeeds and disconnects nobody.
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)
	require.Len(t, e.sim.Disconnects(), 1)
}

func TestHangUpStrictRejectsWholeCall(t *testing.T) {
	e := newEnv(t, Config{Mode: ModeStrict})
	tok := e.token(confID)
	e.hangUp(confID, tok, "p-0001", "ghost", "p-0002").requireError(t, http.StatusBadRequest, CodeParticipantNotFound)
	require.Equal(t, participants, e.sim.Online(confID))
	require.Empty(t, e.sim.Disconnects())

	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001", "p-0002").status)
	require.Equal(t, []string{"p-0003", "p-0004"}, e.sim.Online(confID))
	e.hangUp(confID, tok, "p-0001").requireError(t, http.StatusBadRequest, CodeParticipantNotFound)

	e.sim.SetMode(ModeLenient)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001", "p-0003").status)
	require.Equal(t, []string{"p-0004"}, e.sim.Online(confID))
}

func TestHangUpAfterRejoin(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)
	require.NoError(t, e.sim.Join(confID, "p-0001", "p-0009"))
	require.Equal(t, []string{"p-0001", "p-0002", "p-0003", "p-0004", "p-0009"}, e.sim.Online(confID))
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)

	d := e.sim.Disconnects()
	require.Len(t, d, 2)
	require.NotEqual(t, d[0].RequestID, d[1].RequestID)
}

func TestRealTimeInfoListsOnlineParticipants(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0002").status)

	r := e.mustDo(http.MethodGet, PathRealTimeInfo+"?conferenceID="+confID, map[string]string{HeaderAuthorization: tok}, "")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var info struct {
		Participants []map[string]any `json:"participants"`
	}
	require.NoError(t, json.Unmarshal(r.body, &info))
	var pids []string
	for _, p := range info.Participants {
		require.ElementsMatch(t, []string{"pid", "name", "phone", "state", "mute", "hand", "video"}, keys(p))
		require.EqualValues(t, 0, p["state"])
		pids = append(pids, p["pid"].(string))
	}
	require.Equal(t, []string{"p-0001", "p-0003", "p-0004"}, pids)
}

func TestRealTimeInfoErrors(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	other := e.sim.mustAddRunning(t, "other")
	get := func(conf, tok string) response {
		return e.mustDo(http.MethodGet, PathRealTimeInfo+"?conferenceID="+conf, map[string]string{HeaderAuthorization: tok}, "")
	}
	get("", tok).requireError(t, 400, CodeParamError)
	get(confID, "").requireError(t, 401, CodeTokenInvalid)
	get("404404", tok).requireError(t, 400, CodeMeetingNotFound)
	get(other, tok).requireError(t, 400, CodeAuthFailed)
	require.NoError(t, e.sim.SetMeetingState(confID, StateEnded))
	get(confID, tok).requireError(t, 400, CodeMeetingEnded)
	require.Equal(t, 5, e.sim.Stats().RealTimeInfoRequests)
}

func TestUnknownAPIIsNotFound(t *testing.T) {
	e := newEnv(t, Config{})
	e.mustDo(http.MethodGet, "/v1/mmc/control/conferences/nope", nil, "").requireError(t, 404, CodeAPINotFound)
	e.mustDo(http.MethodGet, PathHangUp, nil, "").requireError(t, 404, CodeAPINotFound)
	e.mustDo(http.MethodPost, PathToken, nil, "").requireError(t, 404, CodeAPINotFound)
}

func TestRequestIDsAreUnique(t *testing.T) {
	e := newEnv(t, Config{})
	seen := map[string]bool{}
	for range 50 {
		r := e.hangUp(confID, "", "p-0001")
		id := r.header.Get(HeaderRequestID)
		require.False(t, seen[id], "duplicate request ID %s", id)
		seen[id] = true
	}
}

func TestDecodeHangUpBody(t *testing.T) {
	cases := []struct {
		body string
		ids  []string
		code string
	}{
		{``, nil, CodeEmptyBody},
		{" \n\t", nil, CodeEmptyBody},
		{`{"bulkHangUpParticipants":["a","b"]}`, []string{"a", "b"}, ""},
		{`{"bulkHangUpParticipants":["a"],"other":1}`, []string{"a"}, ""},
		{`{"bulkHangUpParticipants":[]}`, nil, CodeParamEmpty},
		{`{"bulkHangUpParticipants":null}`, nil, CodeParamEmpty},
		{`null`, nil, CodeParamEmpty},
		{`[]`, nil, CodeJSONError},
		{`{"bulkHangUpParticipants":"a"}`, nil, CodeJSONError},
		{`{"bulkHangUpParticipants":["a"]} x`, nil, CodeJSONError},
	}
	for _, tc := range cases {
		ids, e := decodeHangUpBody([]byte(tc.body))
		if tc.code == "" {
			require.Nil(t, e, "body %q", tc.body)
			require.Equal(t, tc.ids, ids)
			continue
		}
		require.NotNil(t, e, "body %q", tc.body)
		require.Equal(t, tc.code, e.Code, "body %q", tc.body)
		require.Equal(t, http.StatusBadRequest, e.Status)
	}
}

func FuzzDecodeHangUpBody(f *testing.F) {
	f.Add([]byte(`{"bulkHangUpParticipants":["ba9acb1e216d11eabc5165c2b91ad427"]}`))
	f.Add([]byte(`{"bulkHangUpParticipants":[]}`))
	f.Add([]byte(`{`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, e := decodeHangUpBody(body)
		if e == nil {
			require.NotEmpty(t, ids)
			return
		}
		require.Equal(t, http.StatusBadRequest, e.Status)
		require.NotEmpty(t, e.Message)
	})
}

func TestParseAuthorization(t *testing.T) {
	tok := "stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb"
	b64 := base64.StdEncoding.EncodeToString([]byte(tok))
	cases := map[string]string{
		tok:              tok,
		"  " + tok + " ": tok,
		"Basic " + b64:   tok,
		"basic " + b64:   tok,
		"Basic  " + b64:  tok,
		"Basic %%%":      "",
		"":               "",
		"Basic ":         "",
		"Bearer " + tok:  "Bearer " + tok,
	}
	for in, want := range cases {
		require.Equal(t, want, parseAuthorization(in), "header %q", in)
	}
}

// A call names its caller in the records when it carries X-Sim-Caller,
// and runs from its arrival to its answer, after the injected latency.
func TestCallRecordsCallerAndAnswerTime(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.token(confID)
	h := map[string]string{"Content-Type": "application/json", HeaderAuthorization: tok, HeaderCaller: "worker-2"}
	r := e.mustDo(http.MethodPost, PathHangUp+"?conferenceID="+confID, h, `{"bulkHangUpParticipants":["p-0001"]}`)
	require.Equal(t, http.StatusOK, r.status)
	calls := e.sim.Calls()
	require.Len(t, calls, 1)
	require.Equal(t, "worker-2", calls[0].Caller)
	require.False(t, calls[0].Answered.Before(calls[0].Time))
	e.hangUp(confID, tok, "p-0002")
	require.Empty(t, e.sim.Calls()[1].Caller, "no header, no caller")
}

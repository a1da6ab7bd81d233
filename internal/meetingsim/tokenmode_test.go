package meetingsim

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tokenResp calls the token API for conf with header, requires success and
// returns the answer.
func (e *env) tokenResp(conf string, header map[string]string) tokenResponse {
	e.t.Helper()
	r := e.tokenCall(conf, header)
	require.Equal(e.t, http.StatusOK, r.status, "body: %s", r.body)
	var tr tokenResponse
	require.NoError(e.t, json.Unmarshal(r.body, &tr))
	return tr
}

// keepAliveHeaders are the headers of a keep-alive of tok without the
// password.
func keepAliveHeaders(tok string) map[string]string {
	return map[string]string{HeaderLoginType: "1", HeaderAuthorization: tok}
}

// realTimeInfo calls the realTimeInfo API for conf with tok.
func (e *env) realTimeInfo(conf, tok string) response {
	e.t.Helper()
	return e.mustDo(http.MethodGet, PathRealTimeInfo+"?conferenceID="+conf, map[string]string{HeaderAuthorization: tok}, "")
}

func TestParseTokenMode(t *testing.T) {
	for in, want := range map[string]TokenMode{
		"many":     TokenModeMany,
		"MANY":     TokenModeMany,
		"one-live": TokenModeOneLive,
		"One-Live": TokenModeOneLive,
	} {
		got, err := ParseTokenMode(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "one", "one_live", "single", "lenient"} {
		_, err := ParseTokenMode(bad)
		require.ErrorContains(t, err, "want many or one-live", bad)
	}

	for _, m := range []TokenMode{TokenModeMany, TokenModeOneLive} {
		b, err := m.MarshalText()
		require.NoError(t, err)
		var back TokenMode
		require.NoError(t, back.UnmarshalText(b))
		require.Equal(t, m, back)
	}
	require.Equal(t, "many", TokenModeMany.String())
	require.Equal(t, "one-live", TokenModeOneLive.String())
	require.Equal(t, "TokenMode(7)", TokenMode(7).String())
	_, err := TokenMode(7).MarshalText()
	require.Error(t, err)
	m := TokenModeOneLive
	require.Error(t, m.UnmarshalText([]byte("bogus")))
	require.Equal(t, TokenModeOneLive, m, "a failed UnmarshalText changes nothing")
}

func TestTokenModeOneLiveEndsEarlierTokens(t *testing.T) {
	e := newEnv(t, Config{TokenMode: TokenModeOneLive})
	require.Equal(t, TokenModeOneLive, e.sim.TokenMode())
	other := e.sim.mustAddRunning(t, "other")
	otherTok := e.token(other)

	first := e.token(confID)
	require.Equal(t, http.StatusOK, e.hangUp(confID, first, "p-0001").status, "the only token works")
	second := e.token(confID)
	require.NotEqual(t, first, second)

	// The first token is gone, exactly as if it had expired.
	e.hangUp(confID, first, "p-0002").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	e.realTimeInfo(confID, first).requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	e.tokenCall(confID, keepAliveHeaders(first)).requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	require.Equal(t, []string{"p-0002", "p-0003", "p-0004"}, e.sim.Online(confID), "a call with an ended token removes nobody")

	require.Equal(t, http.StatusOK, e.hangUp(confID, second, "p-0002").status)
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, second).status)
	require.Equal(t, []string{"p-0003", "p-0004"}, e.sim.Online(confID))

	// Only the meeting of the new token is affected.
	require.Equal(t, http.StatusOK, e.hangUp(other, otherTok, "p-0001").status)

	// IssueToken follows the same rule.
	third, err := e.sim.IssueToken(confID)
	require.NoError(t, err)
	e.hangUp(confID, second, "p-0003").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	require.Equal(t, http.StatusOK, e.hangUp(confID, third, "p-0003").status)

	// The password with an ended token gets a new token, as with an expired
	// one.
	h := hostHeaders()
	h[HeaderAuthorization] = second
	fourth := e.tokenResp(confID, h).Data.Token
	require.NotContains(t, []string{first, second, third}, fourth)
	e.hangUp(confID, third, "p-0004").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)

	st := e.sim.Stats()
	require.Equal(t, 5, st.TokensIssued)
	require.Equal(t, 3, st.TokensReplaced)
	require.Equal(t, 0, st.TokensRenewed)
}

func TestTokenModeOneLiveCountsOnlyValidTokensAsReplaced(t *testing.T) {
	e := newEnv(t, Config{TokenMode: TokenModeOneLive})
	first := e.token(confID)
	e.clock.Advance(DefaultTokenLifetime)
	e.hangUp(confID, first, "p-0001").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)

	second := e.token(confID)
	require.Equal(t, 0, e.sim.Stats().TokensReplaced, "an expired token was not replaced")
	e.token(confID)
	require.Equal(t, 1, e.sim.Stats().TokensReplaced)
	e.hangUp(confID, second, "p-0001").requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
}

func TestTokenModeOneLiveKeepAliveKeepsToken(t *testing.T) {
	e := newEnv(t, Config{TokenMode: TokenModeOneLive})
	tok := e.token(confID)
	e.clock.Advance(20 * time.Minute)

	tr := e.tokenResp(confID, keepAliveHeaders(tok))
	require.Equal(t, tok, tr.Data.Token)
	require.Equal(t, e.clock.Now().Add(DefaultTokenLifetime).UnixMilli(), tr.Data.ExpireTime)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0001").status)

	// A keep-alive that also sends the password returns the same token too,
	// and ends nothing.
	h := hostHeaders()
	h[HeaderAuthorization] = tok
	require.Equal(t, tok, e.tokenResp(confID, h).Data.Token)
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0002").status)
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, tok).status)

	e.clock.Advance(20 * time.Minute) // 40 minutes after issue, 20 after keep-alive
	require.Equal(t, http.StatusOK, e.hangUp(confID, tok, "p-0003").status)

	st := e.sim.Stats()
	require.Equal(t, 1, st.TokensIssued)
	require.Equal(t, 2, st.TokensRenewed)
	require.Equal(t, 0, st.TokensReplaced)
}

func TestTokenModeManyKeepsEveryToken(t *testing.T) {
	e := newEnv(t, Config{})
	require.Equal(t, TokenModeMany, e.sim.TokenMode(), "the default")
	first := e.token(confID)
	second := e.token(confID)
	third, err := e.sim.IssueToken(confID)
	require.NoError(t, err)
	require.Len(t, map[string]bool{first: true, second: true, third: true}, 3)

	require.Equal(t, http.StatusOK, e.hangUp(confID, first, "p-0001").status)
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, first).status)
	require.Equal(t, http.StatusOK, e.hangUp(confID, second, "p-0002").status)
	require.Equal(t, http.StatusOK, e.hangUp(confID, third, "p-0003").status)
	require.Equal(t, first, e.tokenResp(confID, keepAliveHeaders(first)).Data.Token)

	st := e.sim.Stats()
	require.Equal(t, 3, st.TokensIssued)
	require.Equal(t, 0, st.TokensReplaced)
}

func TestSetTokenModeAtRunTime(t *testing.T) {
	e := newEnv(t, Config{})
	first := e.token(confID)
	second := e.token(confID)

	require.NoError(t, e.sim.SetTokenMode(TokenModeOneLive))
	require.Equal(t, TokenModeOneLive, e.sim.TokenMode())
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, first).status, "switching ends no token")
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, second).status, "switching ends no token")

	third := e.token(confID)
	e.realTimeInfo(confID, first).requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	e.realTimeInfo(confID, second).requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, third).status)
	require.Equal(t, 2, e.sim.Stats().TokensReplaced)

	require.NoError(t, e.sim.SetTokenMode(TokenModeMany))
	fourth := e.token(confID)
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, third).status)
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, fourth).status)

	require.ErrorContains(t, e.sim.SetTokenMode(TokenMode(9)), "TokenModeMany or TokenModeOneLive")
	require.Equal(t, TokenModeMany, e.sim.TokenMode(), "an invalid mode changes nothing")
}

func TestSetTokenLifetimeAtRunTime(t *testing.T) {
	e := newEnv(t, Config{})
	require.Equal(t, DefaultTokenLifetime, e.sim.TokenLifetime())
	old := e.token(confID)

	require.NoError(t, e.sim.SetTokenLifetime(5*time.Minute))
	require.Equal(t, 5*time.Minute, e.sim.TokenLifetime())
	tr := e.tokenResp(confID, hostHeaders())
	require.Equal(t, e.clock.Now().Add(5*time.Minute).UnixMilli(), tr.Data.ExpireTime)
	require.Equal(t, int64(300), tr.Data.ConfTokenExpireTime)
	short := tr.Data.Token

	// The new token ends at 5 minutes; the token issued before the change
	// keeps its 30.
	e.clock.Advance(5*time.Minute - time.Millisecond)
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, short).status)
	e.clock.Advance(time.Millisecond)
	e.realTimeInfo(confID, short).requireError(t, http.StatusUnauthorized, CodeTokenInvalid)
	require.Equal(t, http.StatusOK, e.realTimeInfo(confID, old).status)

	// A keep-alive after the change gives the new lifetime.
	tr = e.tokenResp(confID, keepAliveHeaders(old))
	require.Equal(t, old, tr.Data.Token)
	require.Equal(t, e.clock.Now().Add(5*time.Minute).UnixMilli(), tr.Data.ExpireTime)
	require.Equal(t, int64(300), tr.Data.ConfTokenExpireTime)
	e.clock.Advance(5 * time.Minute)
	e.realTimeInfo(confID, old).requireError(t, http.StatusUnauthorized, CodeTokenInvalid)

	for _, bad := range []time.Duration{0, -time.Second} {
		require.ErrorContains(t, e.sim.SetTokenLifetime(bad), "must be positive", bad)
	}
	require.Equal(t, 5*time.Minute, e.sim.TokenLifetime(), "a bad lifetime changes nothing")
}

func TestTokenCallsByConference(t *testing.T) {
	e := newEnv(t, Config{})
	other := e.sim.mustAddRunning(t, "other")
	tok := e.token(confID)
	e.token(confID)
	e.tokenResp(confID, keepAliveHeaders(tok))
	e.tokenCall(confID, map[string]string{HeaderPassword: "nope", HeaderLoginType: "1"}).
		requireError(t, http.StatusBadRequest, CodeAuthFailed)
	e.token(other)
	e.tokenCall("", hostHeaders()).requireError(t, http.StatusBadRequest, CodeParamError)
	_, err := e.sim.IssueToken(other) // not a call
	require.NoError(t, err)

	st := e.sim.Stats()
	require.Equal(t, map[string]int{confID: 4, other: 1}, st.TokenCallsByConference)
	require.Equal(t, 6, st.TokenRequests)
	require.Equal(t, 4, e.sim.TokenCalls(confID))
	require.Equal(t, 1, e.sim.TokenCalls(other))
	require.Equal(t, 0, e.sim.TokenCalls("nope"))

	st.TokenCallsByConference[confID] = 99
	require.Equal(t, 4, e.sim.Stats().TokenCallsByConference[confID], "Stats returns a copy")

	e.sim.Reset()
	require.Equal(t, map[string]int{}, e.sim.Stats().TokenCallsByConference)
	require.Equal(t, 0, e.sim.TokenCalls(confID))
}

func TestTokenModeOneLiveConcurrentIssue(t *testing.T) {
	e := newEnv(t, Config{TokenMode: TokenModeOneLive})
	const n = 20
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := e.do(t.Context(), http.MethodGet, PathToken+"?conferenceID="+confID, hostHeaders(), "")
			if err != nil || r.status != http.StatusOK {
				return
			}
			var tr tokenResponse
			if json.Unmarshal(r.body, &tr) == nil {
				tokens[i] = tr.Data.Token
			}
		})
	}
	wg.Wait()
	live := 0
	for _, tok := range tokens {
		require.NotEmpty(t, tok)
		if e.realTimeInfo(confID, tok).status == http.StatusOK {
			live++
		}
	}
	require.Equal(t, 1, live, "exactly one token of the meeting survives")
	st := e.sim.Stats()
	require.Equal(t, n, st.TokensIssued)
	require.Equal(t, n-1, st.TokensReplaced)
	require.Equal(t, n, e.sim.TokenCalls(confID))
}

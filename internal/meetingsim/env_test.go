package meetingsim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Test fixtures shared by the tests of this package.
const (
	confID   = "914083136"
	password = "host-secret"
)

var participants = []string{"p-0001", "p-0002", "p-0003", "p-0004"}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a simulator served over real HTTP, with one running meeting.
type env struct {
	t     *testing.T
	sim   *Simulator
	srv   *httptest.Server
	clock *fakeClock
}

// newEnv starts a simulator with cfg (its clock replaced by a fake one
// unless cfg.Now is set) and adds the meeting confID with participants.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	clock := newFakeClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	sim, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, sim.AddMeeting(Meeting{ID: confID, HostPassword: password, Participants: participants}))
	return serve(t, sim, clock)
}

// serve serves sim over HTTP until the test ends.
func serve(t *testing.T, sim *Simulator, clock *fakeClock) *env {
	t.Helper()
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, sim: sim, srv: srv, clock: clock}
}

// response is an HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// apiError decodes the vendor error body and checks its envelope: JSON
// content type and the request ID of the header.
func (r response) apiError(t *testing.T) errorBody {
	t.Helper()
	require.Contains(t, r.header.Get("Content-Type"), "application/json")
	var e errorBody
	require.NoError(t, json.Unmarshal(r.body, &e), "body: %s", r.body)
	require.Equal(t, r.header.Get(HeaderRequestID), e.RequestID)
	require.NotEmpty(t, e.ErrorMsg)
	return e
}

// requireError checks that r is the vendor error status/code.
func (r response) requireError(t *testing.T, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, code, r.apiError(t).ErrorCode)
}

// do sends a request and reads the answer.
func (e *env) do(ctx context.Context, method, path string, header map[string]string, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, nil
}

// mustDo is do that fails the test on a transport error.
func (e *env) mustDo(method, path string, header map[string]string, body string) response {
	e.t.Helper()
	r, err := e.do(context.Background(), method, path, header, body)
	require.NoError(e.t, err)
	require.Regexp(e.t, `^[0-9a-f]{32}$`, r.header.Get(HeaderRequestID))
	return r
}

// tokenCall calls the token API for conf with the given headers.
func (e *env) tokenCall(conf string, header map[string]string) response {
	e.t.Helper()
	return e.mustDo(http.MethodGet, PathToken+"?conferenceID="+url.QueryEscape(conf), header, "")
}

// token obtains a token for conf with the host password.
func (e *env) token(conf string) string {
	e.t.Helper()
	r := e.tokenCall(conf, map[string]string{HeaderPassword: password, HeaderLoginType: "1"})
	require.Equal(e.t, http.StatusOK, r.status, "body: %s", r.body)
	var tr tokenResponse
	require.NoError(e.t, json.Unmarshal(r.body, &tr))
	return tr.Data.Token
}

// hangUp sends a hang-up call with a raw body.
func (e *env) hangUpRaw(conf, token, body string) response {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		h[HeaderAuthorization] = token
	}
	path := PathHangUp
	if conf != "" {
		path += "?conferenceID=" + url.QueryEscape(conf)
	}
	return e.mustDo(http.MethodPost, path, h, body)
}

// hangUp sends a hang-up call for ids.
func (e *env) hangUp(conf, token string, ids ...string) response {
	e.t.Helper()
	b, err := json.Marshal(map[string][]string{"bulkHangUpParticipants": ids})
	require.NoError(e.t, err)
	return e.hangUpRaw(conf, token, string(b))
}

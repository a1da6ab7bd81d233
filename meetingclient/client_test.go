package meetingclient_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/buildinfo"
	mc "github.com/hangup-dev/hangup/meetingclient"
)

const (
	testToken    = "stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb"
	testPassword = "host-pw-8812"
	// A conference ID that needs query escaping.
	awkwardConferenceID = "914 083&x=1/ü+?"
)

// request is what a test server saw.
type request struct {
	method string
	path   string
	query  string // raw query
	conf   string // decoded conferenceID
	header http.Header
	body   []byte
}

// recordingServer starts a server that records requests on the returned
// channel and answers with respond. The channel's buffer holds the first 16
// requests, more than any test that reads them makes; later ones are not
// recorded, so that the handler never blocks.
func recordingServer(t *testing.T, respond http.HandlerFunc) (*httptest.Server, <-chan request) {
	t.Helper()
	seen := make(chan request, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case seen <- request{
			method: r.Method,
			path:   r.URL.Path,
			query:  r.URL.RawQuery,
			conf:   r.URL.Query().Get("conferenceID"),
			header: r.Header.Clone(),
			body:   body,
		}:
		default:
		}
		respond(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

// newClient returns a client of srv that is closed when the test ends.
func newClient(t *testing.T, cfg mc.Config) *mc.Client {
	t.Helper()
	c, err := mc.New(cfg)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func vendorError(status int, code, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "req-"+strconv.Itoa(status))
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"error_code":%q,"error_msg":%q}`, code, msg)
	}
}

func requireAPIError(t *testing.T, err error) *mc.APIError {
	t.Helper()
	require.Error(t, err)
	ae, ok := errors.AsType[*mc.APIError](err)
	require.True(t, ok, "want *APIError, got %T: %v", err, err)
	return ae
}

func TestNewValidatesConfig(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("not a certificate"), 0o600))

	tests := []struct {
		name string
		cfg  mc.Config
		want string // substring of the error; "" for no error
	}{
		{name: "zero value", cfg: mc.Config{}},
		{name: "http with prefix", cfg: mc.Config{BaseURL: "http://127.0.0.1:8080/sim/"}},
		{name: "upper-case scheme", cfg: mc.Config{BaseURL: "HTTPS://api-intl.meeting.huaweicloud.com"}},
		{name: "unparsable", cfg: mc.Config{BaseURL: "::nope"}, want: "BaseURL"},
		{name: "no scheme", cfg: mc.Config{BaseURL: "api.meeting.huaweicloud.com"}, want: "BaseURL"},
		{name: "other scheme", cfg: mc.Config{BaseURL: "ftp://example.com"}, want: "BaseURL must use scheme https or http"},
		{name: "no host", cfg: mc.Config{BaseURL: "https://"}, want: "BaseURL must have a host"},
		{name: "user info", cfg: mc.Config{BaseURL: "https://u:secret@example.com"}, want: "BaseURL must not hold user info"},
		{name: "query", cfg: mc.Config{BaseURL: "https://example.com/?a=1"}, want: "BaseURL must not have a query"},
		{name: "fragment", cfg: mc.Config{BaseURL: "https://example.com/#x"}, want: "BaseURL must not have a fragment"},
		{name: "negative timeout", cfg: mc.Config{Timeout: -time.Second}, want: "Timeout must not be negative"},
		{name: "negative conns", cfg: mc.Config{MaxConnsPerHost: -1}, want: "MaxConnsPerHost must not be negative"},
		{name: "user agent with newline", cfg: mc.Config{UserAgent: "a\r\nX-Evil: 1"}, want: "UserAgent"},
		{name: "missing CA file", cfg: mc.Config{CAFile: filepath.Join(dir, "missing.pem")}, want: "CAFile"},
		{name: "CA file without certificates", cfg: mc.Config{CAFile: junk}, want: "CAFile"},
		{name: "CA file with transport", cfg: mc.Config{CAFile: junk, Transport: http.DefaultTransport}, want: "CAFile must be empty when Transport is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := mc.New(tt.cfg)
			if tt.want == "" {
				require.NoError(t, err)
				c.Close()
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "secret")
		})
	}
}

func TestHangUpRequest(t *testing.T) {
	srv, seen := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "bd6c09db2be3f986c2382c01deb240e6")
		w.WriteHeader(http.StatusOK)
	})
	c := newClient(t, mc.Config{BaseURL: srv.URL + "/prefix/", UserAgent: "hangup-test/1"})

	resp, err := c.HangUp(t.Context(), awkwardConferenceID, testToken, []string{"ba9acb1e216d11eabc5165c2b91ad427", "p2"})
	require.NoError(t, err)
	require.Equal(t, mc.Response{Status: 200, RequestID: "bd6c09db2be3f986c2382c01deb240e6"}, resp)

	r := <-seen
	require.Equal(t, http.MethodPost, r.method)
	require.Equal(t, "/prefix/v1/mmc/control/conferences/participants/delete", r.path)
	require.Equal(t, "conferenceID=914+083%26x%3D1%2F%C3%BC%2B%3F", r.query)
	require.Equal(t, awkwardConferenceID, r.conf)
	require.Equal(t, testToken, r.header.Get("X-Conference-Authorization"))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "hangup-test/1", r.header.Get("User-Agent"))
	require.Empty(t, r.header.Get("X-Password"))
	require.Empty(t, r.header.Get("X-Access-Token"))
	require.JSONEq(t, `{"bulkHangUpParticipants":["ba9acb1e216d11eabc5165c2b91ad427","p2"]}`, string(r.body))
}

// A 200 is a success whatever its body says.
func TestHangUpIgnoresSuccessBody(t *testing.T) {
	srv, _ := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"error_code":"MMC.111072008","garbage`)
	})
	c := newClient(t, mc.Config{BaseURL: srv.URL})
	resp, err := c.HangUp(t.Context(), "914083136", testToken, []string{"p1"})
	require.NoError(t, err)
	require.Equal(t, 200, resp.Status)
}

func TestDefaultUserAgent(t *testing.T) {
	srv, seen := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {})
	c := newClient(t, mc.Config{BaseURL: srv.URL})
	_, err := c.HangUp(t.Context(), "914083136", testToken, []string{"p1"})
	require.NoError(t, err)
	r := <-seen
	require.Equal(t, buildinfo.UserAgent(), r.header.Get("User-Agent"))
	require.True(t, strings.HasPrefix(r.header.Get("User-Agent"), "hangup/"))
}

// The exact shape of the vendor's token response, misspelt gloablPublicIP
// included.
const tokenResponseBody = `{
  "data": {
    "token": "stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb",
    "expireTime": 1576650040000,
    "confTokenExpireTime": 1800,
    "role": 1,
    "tmpWsToken": "tmp-ws-token",
    "wsURL": "wss://100.94.23.40:443/cms/open/websocket/confctl/increment/conn?confID=914083136&tmpToken=tmp-ws-token",
    "userID": "a1b2c3",
    "orgID": "org-1",
    "vmrCurrentConfID": "914083136"
  },
  "addressToken": "address-token",
  "gloablPublicIP": "203.0.113.7"
}`

func TestCreateConfTokenRequestAndResponse(t *testing.T) {
	srv, seen := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "tok-req-1")
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		_, _ = io.WriteString(w, tokenResponseBody)
	})
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	tok, err := c.CreateConfToken(t.Context(), awkwardConferenceID, testPassword)
	require.NoError(t, err)
	require.Equal(t, &mc.ConfToken{
		Token:      testToken,
		ExpireTime: time.UnixMilli(1576650040000),
		Lifetime:   30 * time.Minute,
		Role:       1,
		RequestID:  "tok-req-1",
	}, tok)

	r := <-seen
	require.Equal(t, http.MethodGet, r.method)
	require.Equal(t, "/v1/mmc/control/conferences/token", r.path)
	require.Equal(t, "conferenceID=914+083%26x%3D1%2F%C3%BC%2B%3F", r.query)
	require.Equal(t, testPassword, r.header.Get("X-Password"))
	require.Equal(t, "1", r.header.Get("X-Login-Type"))
	require.NotEmpty(t, r.header.Get("User-Agent"))
	require.Empty(t, r.header.Values("X-Conference-Authorization"))
	require.Empty(t, r.header.Get("Content-Type"))
	require.Empty(t, r.body)

	// Keep-alive of the old token.
	_, err = c.CreateConfToken(t.Context(), "914083136", testPassword, mc.WithOldToken("cnr-old-token"))
	require.NoError(t, err)
	r = <-seen
	require.Equal(t, "cnr-old-token", r.header.Get("X-Conference-Authorization"))
	require.Equal(t, testPassword, r.header.Get("X-Password"))
	require.Equal(t, "conferenceID=914083136", r.query)
}

func TestCreateConfTokenBadSuccessBodies(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{name: "not JSON", body: "<html>portal</html>", want: "decode response"},
		{name: "no token", body: `{"data":{"expireTime":1}}`, want: "response has no token"},
		{name: "empty", body: "", want: "decode response"},
		{name: "too large", body: `{"data":{"token":"` + strings.Repeat("a", 70<<10) + `"}}`, want: "decode response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("X-Request-Id", "r1")
				_, _ = io.WriteString(w, tt.body)
			})
			c := newClient(t, mc.Config{BaseURL: srv.URL})
			_, err := c.CreateConfToken(t.Context(), "914083136", testPassword)
			ae := requireAPIError(t, err)
			require.Equal(t, 200, ae.Status)
			require.Equal(t, mc.ClassRetryable, ae.Class)
			require.Equal(t, "r1", ae.RequestID)
			require.Contains(t, ae.Message, tt.want)
		})
	}
}

// A wrong host password is permanent on create token, while the same code on
// a call made with a token asks for a new token.
func TestConfNotFoundOrAuthFailedByCall(t *testing.T) {
	srv, _ := recordingServer(t, vendorError(400, "MMC.111072065", "CONF_NOT_FOUND_OR_AUTH_FAILED"))
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	_, err := c.CreateConfToken(t.Context(), "914083136", testPassword)
	require.Equal(t, mc.ClassPermanent, mc.ClassOf(err))
	require.EqualError(t, err, "create token: HTTP 400 MMC.111072065 CONF_NOT_FOUND_OR_AUTH_FAILED (request req-400)")

	_, err = c.HangUp(t.Context(), "914083136", testToken, []string{"p1"})
	require.Equal(t, mc.ClassAuthExpired, mc.ClassOf(err))

	_, err = c.RealTimeInfo(t.Context(), "914083136", testToken)
	require.Equal(t, mc.ClassAuthExpired, mc.ClassOf(err))
}

func TestRealTimeInfo(t *testing.T) {
	srv, seen := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "rt-1")
		_, _ = io.WriteString(w, `{
		  "confInfo": {"chairID": "p1"},
		  "attendees": [{"name": "Invited Only"}],
		  "participants": [
		    {"pid": "p1", "name": "Alice", "phone": "+8613800000000", "state": 0, "mute": 1, "hand": 0, "video": 1},
		    {"pid": "p2", "name": "Bob", "phone": "sip:bob@example.com", "state": 2, "mute": 0, "hand": 1, "video": 0}
		  ]
		}`)
	})
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	info, err := c.RealTimeInfo(t.Context(), awkwardConferenceID, testToken)
	require.NoError(t, err)
	require.Equal(t, &mc.MeetingInfo{
		RequestID: "rt-1",
		Participants: []mc.Participant{
			{PID: "p1", Name: "Alice", Phone: "+8613800000000", State: mc.StateInMeeting, Mute: 1, Hand: 0, Video: 1},
			{PID: "p2", Name: "Bob", Phone: "sip:bob@example.com", State: mc.StateJoining, Mute: 0, Hand: 1, Video: 0},
		},
	}, info)

	r := <-seen
	require.Equal(t, http.MethodGet, r.method)
	require.Equal(t, "/v1/mmc/control/conferences/realTimeInfo", r.path)
	require.Equal(t, awkwardConferenceID, r.conf)
	require.Equal(t, testToken, r.header.Get("X-Conference-Authorization"))
	require.Empty(t, r.header.Get("X-Password"))
}

func TestVendorErrorThroughServer(t *testing.T) {
	srv, _ := recordingServer(t, vendorError(400, "MMC.111072008", "PARTICIPANT_NOT_FOUND"))
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	resp, err := c.HangUp(t.Context(), "914083136", testToken, []string{"p1"})
	ae := requireAPIError(t, err)
	require.Equal(t, mc.APIError{
		Op:        mc.OpHangUp,
		Status:    400,
		Code:      "MMC.111072008",
		Message:   "PARTICIPANT_NOT_FOUND",
		RequestID: "req-400",
		Class:     mc.ClassParticipantGone,
	}, *ae)
	require.Equal(t, "hang up: HTTP 400 MMC.111072008 PARTICIPANT_NOT_FOUND (request req-400)", err.Error())
	require.Equal(t, mc.Response{Status: 400, RequestID: "req-400"}, resp)
}

// Statuses without a body, from a real server: the conference ID says which
// status to answer.
func TestStatusWithoutBody(t *testing.T) {
	srv, _ := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(r.URL.Query().Get("conferenceID"))
		if status == http.StatusFound {
			w.Header().Set("Location", "https://elsewhere.example/")
		}
		w.WriteHeader(status)
	})
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	tests := []struct {
		status int
		want   mc.Class
	}{
		{401, mc.ClassAuthExpired},
		{403, mc.ClassForbidden},
		{429, mc.ClassFlowControl},
		{500, mc.ClassRetryable},
		{502, mc.ClassRetryable},
		{503, mc.ClassRetryable},
		{404, mc.ClassPermanent},
		{400, mc.ClassPermanent},
		{302, mc.ClassPermanent}, // redirects are not followed
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			for _, call := range calls(c) {
				err := call(t.Context(), strconv.Itoa(tt.status))
				ae := requireAPIError(t, err)
				require.Equal(t, tt.status, ae.Status)
				require.Equal(t, tt.want, ae.Class)
				require.Empty(t, ae.Code)
				require.Empty(t, ae.Message)
			}
		})
	}
}

// calls returns the three calls of c, reduced to their error.
func calls(c *mc.Client) map[string]func(ctx context.Context, conf string) error {
	return map[string]func(ctx context.Context, conf string) error{
		mc.OpHangUp: func(ctx context.Context, conf string) error {
			_, err := c.HangUp(ctx, conf, testToken, []string{"p1"})
			return err
		},
		mc.OpCreateToken: func(ctx context.Context, conf string) error {
			_, err := c.CreateConfToken(ctx, conf, testPassword, mc.WithOldToken(testToken))
			return err
		},
		mc.OpRealTimeInfo: func(ctx context.Context, conf string) error {
			_, err := c.RealTimeInfo(ctx, conf, testToken)
			return err
		},
	}
}

func TestMalformedErrorBodiesThroughServer(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   mc.Class
	}{
		{name: "non-JSON", status: 400, body: "Bad Request", want: mc.ClassPermanent},
		{name: "HTML 502", status: 502, body: "<html><body>Bad Gateway</body></html>", want: mc.ClassRetryable},
		{name: "truncated JSON", status: 401, body: `{"error_code":"MMC.1110`, want: mc.ClassAuthExpired},
		{name: "empty", status: 400, body: "", want: mc.ClassPermanent},
		{name: "huge", status: 400, body: `{"error_code":"MMC.111072008","error_msg":"` + strings.Repeat("z", 4<<20) + `"}`, want: mc.ClassPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := newClient(t, mc.Config{BaseURL: srv.URL})
			_, err := c.HangUp(t.Context(), "914083136", testToken, []string{"p1"})
			ae := requireAPIError(t, err)
			require.Equal(t, tt.status, ae.Status)
			require.Equal(t, tt.want, ae.Class)
			require.Empty(t, ae.Code)
			require.LessOrEqual(t, len(ae.Message), 256)
		})
	}
}

func TestRetryAfterThroughServer(t *testing.T) {
	date := time.Date(2019, 12, 18, 6, 20, 40, 0, time.UTC)
	srv, _ := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("conferenceID") == "date" {
			w.Header().Set("Date", date.Format(http.TimeFormat))
			w.Header().Set("Retry-After", date.Add(2*time.Minute).Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	_, err := c.HangUp(t.Context(), "seconds", testToken, []string{"p1"})
	ae := requireAPIError(t, err)
	require.Equal(t, mc.ClassFlowControl, ae.Class)
	require.Equal(t, 3*time.Second, ae.RetryAfter)

	_, err = c.HangUp(t.Context(), "date", testToken, []string{"p1"})
	ae = requireAPIError(t, err)
	require.Equal(t, mc.ClassRetryable, ae.Class)
	require.Equal(t, 2*time.Minute, ae.RetryAfter)
}

// blockingServer answers nothing until the request's context ends or the
// test ends. onRequest, if not nil, runs when a request arrives.
func blockingServer(t *testing.T, onRequest func()) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if onRequest != nil {
			onRequest()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv
}

func TestPerCallTimeoutIsRetryable(t *testing.T) {
	srv := blockingServer(t, nil)
	c := newClient(t, mc.Config{BaseURL: srv.URL, Timeout: 50 * time.Millisecond})

	for op, call := range calls(c) {
		t.Run(op, func(t *testing.T) {
			err := call(t.Context(), "914083136")
			ae := requireAPIError(t, err)
			require.Equal(t, op, ae.Op)
			require.Equal(t, 0, ae.Status)
			require.Equal(t, mc.ClassRetryable, ae.Class)
			require.ErrorIs(t, err, mc.ErrCallTimeout)
			require.NotErrorIs(t, err, context.DeadlineExceeded, "only the caller's deadline is DeadlineExceeded")
			require.Equal(t, op+": call timed out after 50ms", err.Error())
		})
	}
}

func TestCallerCancelWrapsContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := blockingServer(t, cancel) // the caller gives up while the server works
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	for op, call := range calls(c) {
		t.Run(op, func(t *testing.T) {
			err := call(ctx, "914083136")
			require.ErrorIs(t, err, context.Canceled)
			_, isAPIError := errors.AsType[*mc.APIError](err)
			require.False(t, isAPIError)
			require.Equal(t, op+": context canceled", err.Error())
		})
	}
}

func TestCallerDeadlineWrapsDeadlineExceeded(t *testing.T) {
	srv := blockingServer(t, nil)
	c := newClient(t, mc.Config{BaseURL: srv.URL, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.HangUp(ctx, "914083136", testToken, []string{"p1"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, mc.ErrCallTimeout)
}

func TestCancelledContextMakesNoRequest(t *testing.T) {
	var hits atomic.Int32
	srv, _ := recordingServer(t, func(http.ResponseWriter, *http.Request) { hits.Add(1) })
	c := newClient(t, mc.Config{BaseURL: srv.URL})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, call := range calls(c) {
		require.ErrorIs(t, call(ctx, "914083136"), context.Canceled)
	}
	require.Zero(t, hits.Load())
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	c := newClient(t, mc.Config{BaseURL: "http://" + addr})
	for op, call := range calls(c) {
		err := call(t.Context(), "914083136")
		ae := requireAPIError(t, err)
		require.Equal(t, op, ae.Op)
		require.Equal(t, 0, ae.Status)
		require.Equal(t, mc.ClassRetryable, ae.Class)
		require.NotNil(t, ae.Err)
		var opErr *net.OpError
		require.ErrorAs(t, err, &opErr)
	}
}

func TestTLSNeedsCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "tls-1")
	}))
	t.Cleanup(srv.Close)

	// Not trusted without the CA.
	c := newClient(t, mc.Config{BaseURL: srv.URL})
	_, err := c.HangUp(t.Context(), "914083136", testToken, []string{"p1"})
	ae := requireAPIError(t, err)
	require.Equal(t, mc.ClassRetryable, ae.Class)
	var unknownAuthority x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknownAuthority)

	// Trusted with it.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(caFile, pemBytes, 0o600))
	c = newClient(t, mc.Config{BaseURL: srv.URL, CAFile: caFile})
	resp, err := c.HangUp(t.Context(), "914083136", testToken, []string{"p1"})
	require.NoError(t, err)
	require.Equal(t, mc.Response{Status: 200, RequestID: "tls-1"}, resp)
}

func TestTransportOverride(t *testing.T) {
	srv, seen := recordingServer(t, func(http.ResponseWriter, *http.Request) {})
	var used atomic.Bool
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})
	c := newClient(t, mc.Config{BaseURL: srv.URL, Transport: rt})
	_, err := c.HangUp(t.Context(), "914083136", testToken, []string{"p1"})
	require.NoError(t, err)
	require.True(t, used.Load())
	<-seen
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Error bodies are drained, so that sequential calls share one connection.
func TestConnectionsAreReused(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("conferenceID") == "fail" {
			vendorError(400, "MMC.111072008", strings.Repeat("m", 8<<10))(w, r)
			return
		}
		_, _ = io.WriteString(w, tokenResponseBody)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	for range 5 {
		_, err := c.HangUp(t.Context(), "fail", testToken, []string{"p1"})
		require.Equal(t, mc.ClassParticipantGone, mc.ClassOf(err))
		_, err = c.HangUp(t.Context(), "ok", testToken, []string{"p1"})
		require.NoError(t, err)
		_, err = c.CreateConfToken(t.Context(), "ok", testPassword)
		require.NoError(t, err)
	}
	require.Equal(t, int32(1), conns.Load())
}

// Nothing the client prints holds the token or the host password, even when
// the server echoes them back.
func TestErrorsNeverHoldSecrets(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		secrets := r.Header.Get("X-Conference-Authorization") + " " + r.Header.Get("X-Password")
		w.Header().Set("X-Request-Id", "id-"+r.Header.Get("X-Conference-Authorization"))
		w.WriteHeader(http.StatusBadRequest)
		// A long message puts the secret at the truncation boundary.
		_ = json.NewEncoder(w).Encode(map[string]string{
			"error_code": r.Header.Get("X-Password"),
			"error_msg":  strings.Repeat("x", 230) + " bad token " + secrets,
		})
	}
	srv, _ := recordingServer(t, echo)
	c := newClient(t, mc.Config{BaseURL: srv.URL})

	check := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			require.NotContains(t, s, testToken)
			require.NotContains(t, s, testPassword)
		}
	}
	for op, call := range calls(c) {
		t.Run(op, func(t *testing.T) { check(t, call(t.Context(), "914083136")) })
	}

	t.Run("invalid header values", func(t *testing.T) {
		_, err := c.CreateConfToken(t.Context(), "914083136", testPassword+"\r\nX-Evil: 1")
		check(t, err)
		require.Equal(t, mc.ClassPermanent, mc.ClassOf(err))
		_, err = c.HangUp(t.Context(), "914083136", testToken+"\n", []string{"p1"})
		check(t, err)
		require.Equal(t, mc.ClassAuthExpired, mc.ClassOf(err))
	})

	t.Run("token printing", func(t *testing.T) {
		tok := mc.ConfToken{Token: testToken, Role: 1}
		for _, s := range []string{tok.String(), fmt.Sprint(tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok), fmt.Sprintf("%v", &tok)} {
			require.NotContains(t, s, testToken)
			require.Contains(t, s, "[redacted]")
		}
	})
}

func TestArgumentsCheckedBeforeAnyRequest(t *testing.T) {
	var hits atomic.Int32
	srv, _ := recordingServer(t, func(http.ResponseWriter, *http.Request) { hits.Add(1) })
	c := newClient(t, mc.Config{BaseURL: srv.URL})
	ctx := t.Context()

	tests := []struct {
		name string
		call func() error
		want mc.Class
	}{
		{"hang up without conference", func() error { _, err := c.HangUp(ctx, " ", testToken, []string{"p1"}); return err }, mc.ClassPermanent},
		{"hang up without token", func() error { _, err := c.HangUp(ctx, "1", "", []string{"p1"}); return err }, mc.ClassAuthExpired},
		{"hang up without participants", func() error { _, err := c.HangUp(ctx, "1", testToken, nil); return err }, mc.ClassPermanent},
		{"hang up with an empty ID", func() error { _, err := c.HangUp(ctx, "1", testToken, []string{"p1", ""}); return err }, mc.ClassBadParameter},
		{"token without conference", func() error { _, err := c.CreateConfToken(ctx, "", testPassword); return err }, mc.ClassPermanent},
		{"token without password", func() error { _, err := c.CreateConfToken(ctx, "1", ""); return err }, mc.ClassPermanent},
		{"token with bad old token", func() error {
			_, err := c.CreateConfToken(ctx, "1", testPassword, mc.WithOldToken("a\x00b"))
			return err
		}, mc.ClassAuthExpired},
		{"real-time info without token", func() error { _, err := c.RealTimeInfo(ctx, "1", ""); return err }, mc.ClassAuthExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := requireAPIError(t, tt.call())
			require.Equal(t, tt.want, ae.Class)
			require.Zero(t, ae.Status)
		})
	}
	require.Zero(t, hits.Load())
}

// Many calls at once through one client: run with -race.
func TestConcurrentCalls(t *testing.T) {
	srv, _ := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {})
	c := newClient(t, mc.Config{BaseURL: srv.URL, MaxConnsPerHost: 4})
	errs := make(chan error, 16) // one per call
	for i := range cap(errs) {
		go func() {
			_, err := c.HangUp(t.Context(), strconv.Itoa(i), testToken, []string{"p1"})
			errs <- err
		}()
	}
	for range cap(errs) {
		require.NoError(t, <-errs)
	}
}

package meetingclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	mc "github.com/hangup-dev/hangup/meetingclient"
)

// Every code of the handling table in shared/API_NOTES.md, classified as the
// table says, for a call made with a token (hang up).
func TestDecodeErrorClassifiesVendorCodes(t *testing.T) {
	tests := []struct {
		code   string
		status int
		want   mc.Class
	}{
		{"MMC.111070005", 400, mc.ClassMeetingGone},
		{"MMC.111071072", 400, mc.ClassMeetingGone},
		{"MMC.111072006", 400, mc.ClassMeetingGone},
		{"MMC.111072003", 400, mc.ClassMeetingEnding},
		{"MMC.111072065", 400, mc.ClassAuthExpired},
		{"MMC.111070004", 400, mc.ClassAuthExpired},
		{"USG.000000004", 401, mc.ClassAuthExpired},
		{"MMC.111070002", 400, mc.ClassForbidden},
		{"MMC.111080002", 400, mc.ClassForbidden},
		{"MMC.111071061", 400, mc.ClassBadParameter},
		{"MMC.111071062", 400, mc.ClassBadParameter},
		{"MMC.111070001", 400, mc.ClassBadParameter},
		{"MMC.111072057", 400, mc.ClassBadParameter},
		{"MMC.111072008", 400, mc.ClassParticipantGone},
		{"MMC.111080004", 400, mc.ClassParticipantGone},
		{"MMC.111082003", 400, mc.ClassParticipantGone},
		{"MMC.111082004", 400, mc.ClassParticipantGone},
		{"MMC.111072005", 400, mc.ClassNotStarted},
		{"MMC.111072004", 400, mc.ClassNotStarted},
		{"MMC.100000429", 400, mc.ClassFlowControl},
		{"MMC.111072049", 400, mc.ClassRetryable},
		{"MMC.111072009", 400, mc.ClassRetryable},
		{"MMC.111072012", 400, mc.ClassRetryable},
		{"MMC.111070003", 400, mc.ClassRetryable},
		{"MMC.111071001", 400, mc.ClassRetryable},
		{"MMC.111071002", 400, mc.ClassRetryable},
		{"MMC.111070113", 400, mc.ClassRetryable},
		{"MMC.111070114", 400, mc.ClassRetryable},
		{"MMC.111084009", 400, mc.ClassRetryable},
		{"MMC.111072064", 400, mc.ClassLocked},
		// A known code wins over the status.
		{"MMC.111072008", 500, mc.ClassParticipantGone},
		{"MMC.111070005", 401, mc.ClassMeetingGone},
		{"USG.000000004", 400, mc.ClassAuthExpired},
		{"MMC.111072049", 403, mc.ClassRetryable},
		// Codes compare case-insensitively.
		{"mmc.111072008", 400, mc.ClassParticipantGone},
		// An unknown code leaves the decision to the status.
		{"MMC.999999999", 400, mc.ClassPermanent},
		{"MMC.999999999", 401, mc.ClassAuthExpired},
		{"MMC.999999999", 403, mc.ClassForbidden},
		{"MMC.999999999", 429, mc.ClassFlowControl},
		{"MMC.999999999", 503, mc.ClassRetryable},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.code, tt.status), func(t *testing.T) {
			body := fmt.Sprintf(`{"error_code":%q,"error_msg":"SOME_MESSAGE"}`, tt.code)
			e := mc.DecodeError(mc.OpHangUp, tt.status, nil, []byte(body))
			require.Equal(t, tt.want, e.Class, "class %s", e.Class)
			require.Equal(t, tt.code, e.Code)
			require.Equal(t, "SOME_MESSAGE", e.Message)
			require.Equal(t, tt.status, e.Status)
		})
	}
}

// MMC.111072065 means "meeting ID or password wrong": the password on create
// token, the token on the calls made with one.
func TestDecodeErrorConfNotFoundOrAuthFailedDependsOnOp(t *testing.T) {
	body := []byte(`{"error_code":"MMC.111072065","error_msg":"CONF_NOT_FOUND_OR_AUTH_FAILED"}`)
	require.Equal(t, mc.ClassPermanent, mc.DecodeError(mc.OpCreateToken, 400, nil, body).Class)
	require.Equal(t, mc.ClassAuthExpired, mc.DecodeError(mc.OpHangUp, 400, nil, body).Class)
	require.Equal(t, mc.ClassAuthExpired, mc.DecodeError(mc.OpRealTimeInfo, 400, nil, body).Class)
}

func TestDecodeErrorClassifiesStatusWithoutBody(t *testing.T) {
	tests := []struct {
		status int
		want   mc.Class
	}{
		{400, mc.ClassPermanent},
		{401, mc.ClassAuthExpired},
		{403, mc.ClassForbidden},
		{404, mc.ClassPermanent},
		{408, mc.ClassRetryable},
		{409, mc.ClassPermanent},
		{429, mc.ClassFlowControl},
		{500, mc.ClassRetryable},
		{502, mc.ClassRetryable},
		{503, mc.ClassRetryable},
		{504, mc.ClassRetryable},
		{599, mc.ClassRetryable},
		{302, mc.ClassPermanent},
		{0, mc.ClassRetryable},
		{600, mc.ClassPermanent},
		{-1, mc.ClassPermanent},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			e := mc.DecodeError(mc.OpHangUp, tt.status, nil, nil)
			require.Equal(t, tt.want, e.Class, "class %s", e.Class)
			require.Empty(t, e.Code)
			require.Empty(t, e.Message)
		})
	}
}

func TestDecodeErrorMalformedBodies(t *testing.T) {
	long := strings.Repeat("x", 10000)
	tests := []struct {
		name     string
		body     string
		wantCode string
		wantMsg  string
		wantReq  string
	}{
		{name: "empty", body: ""},
		{name: "whitespace", body: " \r\n\t "},
		{name: "html", body: "<html><body>502 Bad Gateway</body></html>"},
		{name: "plain text", body: "upstream connect error"},
		{name: "truncated JSON", body: `{"error_code":"MMC.111072008","error_m`},
		{name: "array", body: `[{"error_code":"MMC.111072008"}]`},
		{name: "null", body: `null`},
		{name: "string", body: `"MMC.111072008"`},
		{name: "wrong types", body: `{"error_code":{"a":1},"error_msg":[1,2],"request_id":true}`},
		{name: "numeric code", body: `{"error_code":111072008,"error_msg":"x"}`, wantCode: "111072008", wantMsg: "x"},
		{name: "code with spaces", body: `{"error_code":" MMC.111072008 ","error_msg":"x"}`, wantCode: "MMC.111072008", wantMsg: "x"},
		{name: "code with markup", body: `{"error_code":"MMC.1<script>","error_msg":"x"}`, wantMsg: "x"},
		{name: "code too long", body: `{"error_code":"` + strings.Repeat("A", 65) + `"}`},
		{name: "long message", body: `{"error_code":"MMC.111072008","error_msg":"` + long + `"}`, wantCode: "MMC.111072008", wantMsg: long[:256]},
		{name: "control characters", body: `{"error_msg":"a\u0000b\u001bc\td\ne\u2028f\u00a0g"}`, wantMsg: "abc d efg"},
		{name: "invalid UTF-8", body: "{\"error_msg\":\"a\xffb\"}", wantMsg: "a\ufffdb"},
		{name: "request id in body", body: `{"error_code":"MMC.111072008","request_id":"abc123"}`, wantCode: "MMC.111072008", wantReq: "abc123"},
		{name: "trailing garbage", body: `{"error_code":"MMC.111072008"} trailing`, wantCode: "MMC.111072008"},
		{name: "huge", body: `{"error_code":"MMC.111072008","error_msg":"` + strings.Repeat("y", 1<<20) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mc.DecodeError(mc.OpHangUp, 400, nil, []byte(tt.body))
			require.Equal(t, tt.wantCode, e.Code)
			require.Equal(t, tt.wantMsg, e.Message)
			require.Equal(t, tt.wantReq, e.RequestID)
			if tt.wantCode == "" || tt.wantCode == "111072008" {
				require.Equal(t, mc.ClassPermanent, e.Class)
			}
			require.LessOrEqual(t, len(e.Message), 256)
		})
	}
}

func TestDecodeErrorRequestIDHeaderWinsOverBody(t *testing.T) {
	h := http.Header{"X-Request-Id": {"from-header"}}
	e := mc.DecodeError(mc.OpHangUp, 400, h, []byte(`{"request_id":"from-body"}`))
	require.Equal(t, "from-header", e.RequestID)
}

func TestDecodeErrorRetryAfter(t *testing.T) {
	date := time.Date(2019, 12, 18, 6, 20, 40, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string
		date       string
		want       time.Duration
	}{
		{name: "absent", want: 0},
		{name: "seconds", retryAfter: "120", want: 120 * time.Second},
		{name: "seconds padded", retryAfter: " 7 ", want: 7 * time.Second},
		{name: "zero", retryAfter: "0", want: 0},
		{name: "negative", retryAfter: "-5", want: 0},
		{name: "fraction", retryAfter: "1.5", want: 0},
		{name: "garbage", retryAfter: "soon", want: 0},
		{name: "huge seconds", retryAfter: "99999999999999999999999", want: 24 * time.Hour},
		{name: "days of seconds", retryAfter: "864000", want: 24 * time.Hour},
		{name: "date", retryAfter: date.Add(90 * time.Second).Format(http.TimeFormat), date: date.Format(http.TimeFormat), want: 90 * time.Second},
		{name: "date in the past", retryAfter: date.Add(-time.Minute).Format(http.TimeFormat), date: date.Format(http.TimeFormat), want: 0},
		{name: "date far ahead", retryAfter: "Fri, 31 Dec 9999 23:59:59 GMT", date: date.Format(http.TimeFormat), want: 24 * time.Hour},
		{name: "RFC 850 date", retryAfter: "Wednesday, 18-Dec-19 06:21:40 GMT", date: date.Format(http.TimeFormat), want: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			require.Equal(t, tt.want, mc.DecodeError(mc.OpHangUp, 429, h, nil).RetryAfter)
		})
	}
}

// Without a Date header an HTTP-date is measured against the local clock.
func TestDecodeErrorRetryAfterDateWithoutDateHeader(t *testing.T) {
	h := http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}
	got := mc.DecodeError(mc.OpHangUp, 503, h, nil).RetryAfter
	require.Greater(t, got, 58*time.Minute)
	require.LessOrEqual(t, got, time.Hour)
}

func TestAPIErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  *mc.APIError
		want string
	}{
		{
			name: "vendor error",
			err:  &mc.APIError{Op: mc.OpHangUp, Status: 400, Code: "MMC.111072008", Message: "PARTICIPANT_NOT_FOUND", RequestID: "5f2c"},
			want: "hang up: HTTP 400 MMC.111072008 PARTICIPANT_NOT_FOUND (request 5f2c)",
		},
		{name: "status only", err: &mc.APIError{Op: mc.OpCreateToken, Status: 503}, want: "create token: HTTP 503"},
		{name: "transport", err: &mc.APIError{Op: mc.OpRealTimeInfo, Message: "dial tcp: connection refused"}, want: "real-time info: dial tcp: connection refused"},
		{name: "nothing", err: &mc.APIError{}, want: "no response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.err.Error())
		})
	}
}

func TestClassNamesAndRetryable(t *testing.T) {
	tests := []struct {
		class     mc.Class
		name      string
		retryable bool
	}{
		{mc.ClassRetryable, "retryable", true},
		{mc.ClassFlowControl, "flow_control", true},
		{mc.ClassNotStarted, "not_started", true},
		{mc.ClassLocked, "locked", true},
		{mc.ClassAuthExpired, "auth_expired", false},
		{mc.ClassParticipantGone, "participant_gone", false},
		{mc.ClassBadParameter, "bad_parameter", false},
		{mc.ClassMeetingGone, "meeting_gone", false},
		{mc.ClassMeetingEnding, "meeting_ending", false},
		{mc.ClassForbidden, "forbidden", false},
		{mc.ClassPermanent, "permanent", false},
		{0, "Class(0)", false},
		{12, "Class(12)", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.name, tt.class.String())
			require.Equal(t, tt.retryable, tt.class.Retryable())
			require.Equal(t, tt.name[0] != 'C', tt.class.Valid())
		})
	}
}

func TestClassOf(t *testing.T) {
	ae := &mc.APIError{Op: mc.OpHangUp, Status: 400, Class: mc.ClassParticipantGone}
	require.Equal(t, mc.ClassParticipantGone, mc.ClassOf(ae))
	require.Equal(t, mc.ClassParticipantGone, mc.ClassOf(fmt.Errorf("hang up conference 1: %w", ae)))
	require.Equal(t, mc.ClassRetryable, mc.ClassOf(errors.New("something else")))
	require.Equal(t, mc.ClassRetryable, mc.ClassOf(context.Canceled))
	require.Equal(t, mc.ClassRetryable, mc.ClassOf(&mc.APIError{}), "an APIError without a class")
	require.Equal(t, mc.Class(0), mc.ClassOf(nil))
}

func TestAPIErrorUnwrap(t *testing.T) {
	inner := errors.New("connection reset")
	err := fmt.Errorf("wrapped: %w", &mc.APIError{Op: mc.OpHangUp, Err: inner, Class: mc.ClassRetryable})
	require.ErrorIs(t, err, inner)
}

// FuzzDecodeError feeds DecodeError arbitrary statuses and bodies: it must
// not panic, and its result must hold the documented invariants.
func FuzzDecodeError(f *testing.F) {
	f.Add(400, []byte(`{"error_code":"MMC.111072008","error_msg":"PARTICIPANT_NOT_FOUND","request_id":"5f2c"}`))
	f.Add(401, []byte(`{"error_code":"USG.000000004","error_msg":"token expired"}`))
	f.Add(429, []byte(""))
	f.Add(502, []byte("<html>bad gateway</html>"))
	f.Add(400, []byte("{\"error_msg\":\"a\xff\x00\u2028b\"}"))
	ops := []string{mc.OpHangUp, mc.OpCreateToken, mc.OpRealTimeInfo}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		op := ops[uint(status)%uint(len(ops))]
		h := http.Header{}
		if len(body) > 0 {
			// Let the fuzzer reach the header parsers too.
			h.Set("Retry-After", string(body[:min(len(body), 40)]))
			h.Set("X-Request-Id", string(body[len(body)/2:]))
		}
		e := mc.DecodeError(op, status, h, body)
		if e == nil {
			t.Fatal("nil error")
		}
		if !e.Class.Valid() {
			t.Fatalf("invalid class %d", e.Class)
		}
		if e.Status != status || e.Op != op {
			t.Fatalf("status %d op %q, want %d %q", e.Status, e.Op, status, op)
		}
		for name, s := range map[string]string{"Message": e.Message, "RequestID": e.RequestID, "Code": e.Code} {
			if !printable(s) {
				t.Fatalf("%s %q is not printable", name, s)
			}
		}
		if len(e.Message) > 256 {
			t.Fatalf("Message is %d bytes", len(e.Message))
		}
		if len(e.RequestID) > 128 || len(e.Code) > 64 {
			t.Fatalf("RequestID %d bytes, Code %d bytes", len(e.RequestID), len(e.Code))
		}
		if e.RetryAfter < 0 || e.RetryAfter > 24*time.Hour {
			t.Fatalf("RetryAfter %s", e.RetryAfter)
		}
		if s := e.Error(); !printable(s) {
			t.Fatalf("Error() %q is not printable", s)
		}
	})
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

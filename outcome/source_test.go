package outcome

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/schemas"
)

func TestSecretHeadersAreRedacted(t *testing.T) {
	h := map[string][]string{
		"X-Conference-Authorization": {"stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb"},
		"x-conference-authorization": {"lowercase too"},
		"X-Password":                 {"host-secret"},
		"Authorization":              {"Bearer abc"},
		"X-Api-Token":                {"t"},
		"X-Client-Secret":            {"s"},
		"Nats-Msg-Id":                {"req-1"},
		"X-Trace":                    {"a", "b"},
	}
	out := RedactHeaders(h)
	for _, k := range []string{"X-Conference-Authorization", "x-conference-authorization", "X-Password", "Authorization", "X-Api-Token", "X-Client-Secret"} {
		require.Equal(t, []string{Redacted}, out[k], k)
	}
	require.Equal(t, []string{"req-1"}, out["Nats-Msg-Id"])
	require.Equal(t, []string{"a", "b"}, out["X-Trace"])
	require.Equal(t, "stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb", h["X-Conference-Authorization"][0], "the input is not changed")
	require.Nil(t, RedactHeaders(nil))
}

func TestDeadLetterKeepsThePayloadAndNoSecret(t *testing.T) {
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	src := Source{Stream: "S", Subject: "meeting.disconnect.requests.c", StreamSequence: 7, Deliveries: 2,
		Payload: []byte(`{"requestID":"r"}`), Headers: map[string][]string{schemas.TokenHeader: {"stb-secret"}}, ReceivedAt: now}
	dl := src.DeadLetter(schemas.ReasonInvalidRequest, "bad", now, "w")
	require.JSONEq(t, `{"requestID":"r"}`, string(dl.Request))
	require.Empty(t, dl.PayloadBase64)
	data, err := json.Marshal(dl)
	require.NoError(t, err)
	require.NotContains(t, string(data), "stb-secret")

	src.Payload = []byte{0xff, 'x'}
	dl = src.DeadLetter(schemas.ReasonInvalidRequest, "bad", now, "w")
	require.Nil(t, dl.Request)
	require.Equal(t, "/3g=", dl.PayloadBase64, "a payload that is not JSON is kept as base64")
	require.EqualValues(t, 7, dl.StreamSequence)
	require.EqualValues(t, 2, dl.Deliveries)
}

func TestInvalidMsgIDCannotCollideWithARequestID(t *testing.T) {
	id := InvalidMsgID("DISCONNECT_REQUESTS", 42)
	require.Error(t, schemas.ValidateRequestID(id), "no valid request ID looks like it")
}

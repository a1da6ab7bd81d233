package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/meetingclient"
)

// TestCallCapRefusesBeyondItsLimit holds two hang-up calls in a handler
// that waits, and checks that a third is refused with the vendor's flow
// control answer, which the real client classifies as flow control.
func TestCallCapRefusesBeyondItsLimit(t *testing.T) {
	release := make(chan struct{})
	// Each hang-up call that reaches the handler says so; four at most.
	arrived := make(chan struct{}, 4)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == meetingsim.PathHangUp {
			arrived <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusOK)
	})
	c := NewCallCap(inner, 2)
	srv := httptest.NewServer(c)
	defer srv.Close()

	client, err := meetingclient.New(meetingclient.Config{BaseURL: srv.URL})
	require.NoError(t, err)
	defer client.Close()

	var held sync.WaitGroup
	for range 2 {
		held.Go(func() {
			_, err := client.HangUp(context.Background(), "conf-1", "stb-token", []string{"p-1"})
			require.NoError(t, err)
		})
	}
	<-arrived
	<-arrived

	// Other paths pass, whatever the count.
	resp, err := http.Get(srv.URL + meetingsim.PathRealTimeInfo)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	raw, err := http.Post(srv.URL+meetingsim.PathHangUp, "application/json", bytes.NewReader([]byte(`{"bulkHangUpParticipants":["p-2"]}`)))
	require.NoError(t, err)
	body, err := io.ReadAll(raw.Body)
	require.NoError(t, err)
	_ = raw.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, raw.StatusCode)
	var eb map[string]string
	require.NoError(t, json.Unmarshal(body, &eb))
	require.Equal(t, meetingsim.CodeFlowControl, eb["error_code"])
	require.Equal(t, "SERVER_FLOW_CONTROL", eb["error_msg"])
	require.Equal(t, raw.Header.Get(meetingsim.HeaderRequestID), eb["request_id"])
	require.Regexp(t, `^[0-9a-f]{32}$`, eb["request_id"])

	_, err = client.HangUp(context.Background(), "conf-1", "stb-token", []string{"p-3"})
	require.Equal(t, meetingclient.ClassFlowControl, meetingclient.ClassOf(err))

	close(release)
	held.Wait()
	require.Equal(t, 2, c.Refused())
	require.Equal(t, 2, c.Peak())

	// With the calls done, the next one passes.
	_, err = client.HangUp(context.Background(), "conf-1", "stb-token", []string{"p-4"})
	require.NoError(t, err)
}

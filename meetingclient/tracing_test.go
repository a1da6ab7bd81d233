package meetingclient_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	mc "github.com/hangup-dev/hangup/meetingclient"
)

// callSpan is a context holding the span context of a vendor call.
func callSpan(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tid, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	require.NoError(t, err)
	ts, err := trace.ParseTraceState("vendor=opaque")
	require.NoError(t, err)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

func TestTraceContextIsSentOnlyWhenAskedFor(t *testing.T) {
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	ctx, _ := callSpan(t)

	srv, seen := recordingServer(t, ok)
	off := newClient(t, mc.Config{BaseURL: srv.URL})
	_, err := off.HangUp(ctx, "914083136", testToken, []string{"p-1"})
	require.NoError(t, err)
	got := <-seen
	require.Empty(t, got.header.Get("Traceparent"), "the vendor is a third party: nothing by default")
	require.Empty(t, got.header.Get("Tracestate"))

	on := newClient(t, mc.Config{BaseURL: srv.URL, TracePropagation: true})
	_, err = on.HangUp(ctx, "914083136", testToken, []string{"p-1"})
	require.NoError(t, err)
	got = <-seen
	require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", got.header.Get("Traceparent"))
	require.Equal(t, "vendor=opaque", got.header.Get("Tracestate"))

	// The roster call carries it too.
	_, _ = on.RealTimeInfo(ctx, "914083136", testToken)
	got = <-seen
	require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", got.header.Get("Traceparent"))

	// Without a span in the context there is nothing to send.
	_, err = on.HangUp(context.Background(), "914083136", testToken, []string{"p-1"})
	require.NoError(t, err)
	got = <-seen
	require.Empty(t, got.header.Get("Traceparent"))
}

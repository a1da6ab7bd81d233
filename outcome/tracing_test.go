package outcome

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/schemas"
)

func TestHeaderCarrierReadsTraceHeadersInAnyCase(t *testing.T) {
	h := nats.Header{}
	h.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set("tracestate", "vendor=opaque")
	ctx := propagation.TraceContext{}.Extract(context.Background(), HeaderCarrier(h))
	sc := trace.SpanContextFromContext(ctx)
	require.True(t, sc.IsValid())
	require.True(t, sc.IsRemote())
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sc.TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", sc.SpanID().String())
	require.Equal(t, "vendor=opaque", sc.TraceState().String())
	require.ElementsMatch(t, []string{"Traceparent", "tracestate"}, HeaderCarrier(h).Keys())
	require.Empty(t, HeaderCarrier(h).Get("baggage"))
}

// Results and dead letters published with a span in the context carry its
// traceparent and tracestate; without one, no trace header at all.
func TestOutcomesCarryTheTraceContextOfTheirContext(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	var topo topology.Config
	topo.SetDefaults()
	ctx := context.Background()
	require.NoError(t, topology.Ensure(ctx, js, topo))
	pub, err := NewPublisher(Config{}, js)
	require.NoError(t, err)

	tid, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	require.NoError(t, err)
	ts, err := trace.ParseTraceState("vendor=opaque")
	require.NoError(t, err)
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts}))
	const want = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	now := time.Now()
	result := func(id string) *schemas.Result {
		return &schemas.Result{RequestID: id, ConferenceID: "914083136", ParticipantIDs: []string{"p"},
			Status: schemas.StatusFailed, Disconnected: []string{}, AlreadyGone: []string{}, FailedParticipantIDs: []string{"p"},
			BatchIDs: []string{}, ReceivedAt: now, CompletedAt: now, WorkerID: "w"}
	}
	dl := Source{Subject: "meeting.disconnect.requests.914083136", Payload: []byte(`{}`)}.DeadLetter(schemas.ReasonRejected, "no", now, "w")
	dl.ConferenceID = "914083136"

	_, err = pub.PublishResult(traced, result("traced"))
	require.NoError(t, err)
	require.NoError(t, pub.PublishDeadLetter(traced, dl, "traced"))
	_, err = pub.PublishResult(ctx, result("plain"))
	require.NoError(t, err)
	require.NoError(t, pub.PublishDeadLetter(ctx, dl, "plain"))

	for _, stream := range []string{schemas.DefaultResultStream, schemas.DefaultDeadLetterStream} {
		st, err := js.Stream(ctx, stream)
		require.NoError(t, err)
		first, err := st.GetMsg(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, "traced", first.Header.Get(nats.MsgIdHdr))
		require.Equal(t, want, first.Header.Get("traceparent"), stream)
		require.Equal(t, "vendor=opaque", first.Header.Get("tracestate"), stream)
		second, err := st.GetMsg(ctx, 2)
		require.NoError(t, err)
		require.Equal(t, "plain", second.Header.Get(nats.MsgIdHdr))
		require.Empty(t, second.Header.Get("traceparent"), stream)
		require.Empty(t, second.Header.Get("tracestate"), stream)
	}
}

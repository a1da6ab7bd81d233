package consumer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/schemas"
)

// collect is a Handler that takes everything, acks it at once and keeps
// the span each message came with.
type collect struct {
	mu    sync.Mutex
	spans map[string]trace.Span // by request ID, "invalid" for a rejected message
}

func (h *collect) Capacity(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return 10, nil
}

func (h *collect) keep(key string, span trace.Span, msg dispatcher.Message) error {
	h.mu.Lock()
	h.spans[key] = span
	h.mu.Unlock()
	return msg.Ack()
}

func (h *collect) Submit(_ context.Context, job dispatcher.Job) error {
	return h.keep(job.Request.RequestID, job.Span, job.Msg)
}

func (h *collect) Fail(_ context.Context, job dispatcher.Job, _ schemas.DeadLetterReason, _ string) error {
	return h.keep(job.Request.RequestID, job.Span, job.Msg)
}

func (h *collect) Reject(ctx context.Context, msg dispatcher.Message, _ *schemas.DeadLetter, _ string) error {
	span := trace.SpanFromContext(ctx)
	if !span.SpanContext().IsValid() {
		span = nil
	}
	return h.keep("invalid", span, msg)
}

func (h *collect) taken() map[string]trace.Span {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]trace.Span, len(h.spans))
	for k, v := range h.spans {
		out[k] = v
	}
	return out
}

// consume runs a consumer with tracer over the messages published and
// returns the span each was handed over with.
func consume(t *testing.T, tracer trace.TracerProvider, msgs ...*nats.Msg) map[string]trace.Span {
	t.Helper()
	js, _ := provision(t, 0)
	for _, m := range msgs {
		_, err := js.PublishMsg(context.Background(), m)
		require.NoError(t, err)
	}
	h := &collect{spans: map[string]trace.Span{}}
	c, err := New(Config{WorkerID: "w", FetchWait: 100 * time.Millisecond}, Deps{JetStream: js, Handler: h, Tracer: tracer})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	require.Eventually(t, func() bool { return len(h.taken()) == len(msgs) }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, c.Stop(context.Background()))
	return h.taken()
}

func requestMsg(id, payload, traceparent string) *nats.Msg {
	m := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + ".c1")
	m.Data = []byte(payload)
	m.Header.Set(schemas.MsgIDHeader, id)
	if traceparent != "" {
		m.Header.Set("traceparent", traceparent)
	}
	return m
}

func TestRequestSpanContinuesTheProducersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	spans := consume(t, tp,
		requestMsg("r1", `{"requestID":"r1","conferenceID":"c1","participantIDs":["p1","p2","p3"]}`, parent),
		requestMsg("r2", `{"requestID":"r2","conferenceID":"c1","participantIDs":["p4"]}`, ""),
		requestMsg("bad", `not json`, parent),
	)

	r1 := spans["r1"].(sdktrace.ReadOnlySpan)
	require.Equal(t, SpanRequest, r1.Name())
	require.Equal(t, trace.SpanKindConsumer, r1.SpanKind())
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", r1.SpanContext().TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", r1.Parent().SpanID().String())
	require.True(t, r1.Parent().IsRemote())
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range r1.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	require.Equal(t, "r1", attrs[AttrRequestID].AsString())
	require.Equal(t, "c1", attrs[dispatcher.AttrConferenceID].AsString())
	require.Equal(t, int64(3), attrs[dispatcher.AttrIDs].AsInt64())
	require.Equal(t, int64(1), attrs[AttrStreamSequence].AsInt64())
	require.Equal(t, int64(1), attrs[AttrDeliveries].AsInt64())
	require.Equal(t, "meeting.disconnect.requests.c1", attrs["messaging.destination.name"].AsString())
	for _, kv := range r1.Attributes() {
		require.NotContains(t, kv.Value.String(), "p1", "participant IDs only as a count")
	}
	require.True(t, r1.EndTime().IsZero(), "the handler owns the span until the message is settled")

	r2 := spans["r2"].(sdktrace.ReadOnlySpan)
	require.False(t, r2.Parent().IsValid(), "no traceparent: a root")
	require.NotEqual(t, r1.SpanContext().TraceID(), r2.SpanContext().TraceID())

	bad := spans["invalid"].(sdktrace.ReadOnlySpan)
	require.Equal(t, r1.SpanContext().TraceID(), bad.SpanContext().TraceID())
	require.Equal(t, codes.Error, bad.Status().Code)
}

func TestNoRequestSpanWithoutATracer(t *testing.T) {
	spans := consume(t, nil,
		requestMsg("r1", `{"requestID":"r1","conferenceID":"c1","participantIDs":["p1"]}`, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		requestMsg("bad", `not json`, ""),
	)
	require.Nil(t, spans["r1"])
	require.Nil(t, spans["invalid"])
}

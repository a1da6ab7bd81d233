package consumer

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/buildinfo"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// TracerName is the instrumentation scope of the consumer's spans.
const TracerName = "github.com/hangup-dev/hangup/consumer"

// SpanRequest is the span of one message, from when the consumer took it
// to when it is settled (acked or handed back). Its parent is the trace
// context of the message's traceparent and tracestate headers; without
// them it is a root. The dispatcher adds the outcome and ends it.
const SpanRequest = "hangup.request"

// Attribute keys of the request span, besides the dispatcher's
// (dispatcher.AttrConferenceID, dispatcher.AttrIDs, dispatcher.AttrStatus
// and the others it sets when the outcome is settled).
const (
	AttrRequestID      = attribute.Key("hangup.request_id")
	AttrStreamSequence = attribute.Key("hangup.stream_sequence")
	AttrDeliveries     = attribute.Key("hangup.deliveries")
	statusInvalid      = "invalid"
	statusNotTaken     = "not_taken"
)

// tracing is the consumer's tracer. With no TracerProvider, or the no-op
// one, on is false: no header is read and no span is made.
type tracing struct {
	tracer trace.Tracer
	on     bool
}

func newTracing(tp trace.TracerProvider) tracing {
	if tp == nil {
		return tracing{}
	}
	if _, off := tp.(noop.TracerProvider); off {
		return tracing{}
	}
	return tracing{tracer: tp.Tracer(TracerName, trace.WithInstrumentationVersion(buildinfo.Version())), on: true}
}

// startRequest starts the span of a message just taken, as a child of
// the trace context in its headers; nil when tracing is off.
func (t tracing) startRequest(msg jetstream.Msg, subject string, md *jetstream.MsgMetadata) trace.Span {
	if !t.on {
		return nil
	}
	parent := propagation.TraceContext{}.Extract(context.Background(), outcome.HeaderCarrier(msg.Headers()))
	_, span := t.tracer.Start(parent, SpanRequest,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", subject),
			AttrStreamSequence.Int64(int64(md.Sequence.Stream)),
			AttrDeliveries.Int64(int64(md.NumDelivered)),
		))
	return span
}

// describeRequest adds the decoded request to its span: the IDs, and the
// participants as a count only; nil-safe.
func describeRequest(span trace.Span, req *schemas.Request) {
	if span == nil {
		return
	}
	span.SetAttributes(
		AttrRequestID.String(req.RequestID),
		dispatcher.AttrConferenceID.String(req.ConferenceID),
		dispatcher.AttrIDs.Int(len(req.ParticipantIDs)),
	)
}

// traceInvalid marks the span of a message that is no valid request;
// nil-safe. The cause is the one the dead letter carries, free of
// secrets.
func traceInvalid(span trace.Span, cause error) {
	if span == nil {
		return
	}
	span.SetAttributes(dispatcher.AttrStatus.String(statusInvalid),
		dispatcher.AttrReason.String(string(schemas.ReasonInvalidRequest)))
	span.SetStatus(codes.Error, "invalid request: "+cause.Error())
}

// endNotTaken ends the span of a message the dispatcher did not take (it
// is stopping), which is handed back; nil-safe.
func endNotTaken(span trace.Span) {
	if span == nil {
		return
	}
	span.SetAttributes(dispatcher.AttrStatus.String(statusNotTaken))
	span.End()
}

// withSpan returns ctx with span in it; ctx itself for a nil span.
func withSpan(ctx context.Context, span trace.Span) context.Context {
	if span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, span)
}

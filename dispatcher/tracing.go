package dispatcher

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hangup-dev/hangup/internal/buildinfo"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// TracerName is the instrumentation scope of the dispatcher's spans.
const TracerName = "github.com/hangup-dev/hangup/dispatcher"

// Span names and attribute keys of the dispatcher's spans. The request
// span itself is the consumer's (Job.Span); the dispatcher adds the
// outcome to it and ends it.
const (
	SpanBatch  = "hangup.batch"
	SpanCall   = "hangup.call"
	SpanRoster = "hangup.roster"

	AttrBatchID        = attribute.Key("hangup.batch_id")
	AttrCallID         = attribute.Key("hangup.call_id")
	AttrConferenceID   = attribute.Key("hangup.conference_id")
	AttrIDs            = attribute.Key("hangup.participants")
	AttrRequests       = attribute.Key("hangup.requests")
	AttrAttempt        = attribute.Key("hangup.attempt")
	AttrAttempts       = attribute.Key("hangup.attempts")
	AttrHTTPStatus     = attribute.Key("http.response.status_code")
	AttrHTTPMethod     = attribute.Key("http.request.method")
	AttrErrorCode      = attribute.Key("hangup.error_code")
	AttrErrorClass     = attribute.Key("hangup.error_class")
	AttrAPIRequestID   = attribute.Key("hangup.api_request_id")
	AttrStatus         = attribute.Key("hangup.status")
	AttrReason         = attribute.Key("hangup.dead_letter_reason")
	AttrDelay          = attribute.Key("hangup.delay_seconds")
	AttrFailedIDs      = attribute.Key("hangup.failed_participants")
	AttrOnline         = attribute.Key("hangup.online")
	AttrRetryWait      = attribute.Key("hangup.retry_wait_seconds")
	statusHandedBack   = "handed_back"
	statusNotPublished = "not_published"
)

// tracing is the dispatcher's tracer. With no TracerProvider, or the no-op
// one, on is false and the hot paths make no span, link or attribute.
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

// startBatch starts the span of a batch's call chain: a root of its own,
// linked to the span of every request the batch carries, each of which is
// linked back to it. It returns ctx and nil when tracing is off.
func (t tracing) startBatch(ctx context.Context, b *batch) (context.Context, trace.Span) {
	if !t.on {
		return ctx, nil
	}
	seen := make(map[*request]struct{})
	var links []trace.Link
	for _, id := range b.ids {
		for _, r := range b.waiters[id] {
			if _, ok := seen[r]; ok {
				continue
			}
			seen[r] = struct{}{}
			if r.job.Span != nil {
				links = append(links, trace.Link{SpanContext: r.job.Span.SpanContext()})
			}
		}
	}
	ctx, span := t.tracer.Start(ctx, SpanBatch,
		trace.WithNewRoot(),
		trace.WithLinks(links...),
		trace.WithAttributes(
			AttrBatchID.String(b.id),
			AttrConferenceID.String(b.conference),
			AttrIDs.Int(len(b.ids)),
			AttrRequests.Int(len(seen)),
		))
	back := trace.Link{SpanContext: span.SpanContext(), Attributes: []attribute.KeyValue{AttrBatchID.String(b.id)}}
	for r := range seen {
		if r.job.Span != nil {
			r.job.Span.AddLink(back)
		}
	}
	return ctx, span
}

// endBatch ends a batch's span with what its chain decided; nil-safe.
func endBatch(span trace.Span, out *batchOutcome) {
	if span == nil {
		return
	}
	failed := 0
	for _, o := range out.outcomes {
		if o.kind == idFailed {
			failed++
		}
	}
	span.SetAttributes(AttrFailedIDs.Int(failed))
	if failed > 0 {
		span.SetStatus(codes.Error, strconv.Itoa(failed)+" participant IDs failed")
	}
	span.End()
}

// startCall starts the span of one attempt of a hang-up call, a child of
// the batch's span in ctx. It returns ctx and nil when tracing is off.
func (t tracing) startCall(ctx context.Context, conference string, p *part) (context.Context, trace.Span) {
	if !t.on {
		return ctx, nil
	}
	return t.tracer.Start(ctx, SpanCall,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			AttrCallID.String(p.rec.batchID),
			AttrConferenceID.String(conference),
			AttrIDs.Int(len(p.ids)),
			AttrAttempt.Int(p.rec.attempts),
			AttrHTTPMethod.String("POST"),
		))
}

// endCall ends the span of a call attempt with the vendor's answer;
// nil-safe. Errors from meetingclient hold no secret.
func endCall(span trace.Span, resp meetingclient.Response, err error) {
	if span == nil {
		return
	}
	if err == nil {
		span.SetAttributes(AttrHTTPStatus.Int(resp.Status), AttrAPIRequestID.String(resp.RequestID))
		span.End()
		return
	}
	var apiErr *meetingclient.APIError
	if errors.As(err, &apiErr) {
		if apiErr.Status != 0 {
			span.SetAttributes(AttrHTTPStatus.Int(apiErr.Status))
		}
		if apiErr.Code != "" {
			span.SetAttributes(AttrErrorCode.String(apiErr.Code))
		}
		if apiErr.RequestID != "" {
			span.SetAttributes(AttrAPIRequestID.String(apiErr.RequestID))
		}
	}
	span.SetAttributes(AttrErrorClass.String(meetingclient.ClassOf(err).String()))
	span.SetStatus(codes.Error, err.Error())
	span.End()
}

// retryEvent notes on the batch's span in ctx that a call waits for
// another attempt.
func (t tracing) retryEvent(ctx context.Context, p *part, class meetingclient.Class, wait time.Duration) {
	if !t.on {
		return
	}
	trace.SpanFromContext(ctx).AddEvent("retry", trace.WithAttributes(
		AttrCallID.String(p.rec.batchID), AttrAttempts.Int(p.rec.attempts),
		AttrErrorClass.String(class.String()), AttrRetryWait.Float64(wait.Seconds())))
}

// startRoster starts the span of a look at who is online; see startCall.
func (t tracing) startRoster(ctx context.Context, conference string) (context.Context, trace.Span) {
	if !t.on {
		return ctx, nil
	}
	return t.tracer.Start(ctx, SpanRoster, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(AttrConferenceID.String(conference), AttrHTTPMethod.String("GET")))
}

// endRoster ends a roster span; nil-safe.
func endRoster(span trace.Span, info *meetingclient.MeetingInfo, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	} else {
		span.SetAttributes(AttrOnline.Int(len(info.Participants)), AttrAPIRequestID.String(info.RequestID))
	}
	span.End()
}

// spanFrom returns the span in ctx when it is a real one, else nil: how
// Reject takes the span of an invalid message.
func spanFrom(ctx context.Context) trace.Span {
	span := trace.SpanFromContext(ctx)
	if !span.SpanContext().IsValid() {
		return nil
	}
	return span
}

// traced returns ctx with r's span in it, so that the outcome messages
// carry its trace context; ctx itself when r has none.
func (r *request) traced(ctx context.Context) context.Context {
	if r.job.Span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, r.job.Span)
}

// traceResult records the published outcome on r's span; nil-safe.
func (r *request) traceResult(res *schemas.Result, reason schemas.DeadLetterReason) {
	if r.job.Span == nil {
		return
	}
	r.job.Span.SetAttributes(AttrStatus.String(string(res.Status)), AttrAttempts.Int(res.Attempts))
	if res.ErrorCode != "" {
		r.job.Span.SetAttributes(AttrErrorCode.String(res.ErrorCode))
	}
	if res.Status == schemas.StatusFailed {
		r.job.Span.SetAttributes(AttrReason.String(string(reason)))
		r.job.Span.SetStatus(codes.Error, "failed: "+string(reason))
	}
}

// traceHandBack records on r's span that its message was handed back;
// nil-safe.
func (r *request) traceHandBack() {
	if r.job.Span == nil {
		return
	}
	r.job.Span.SetAttributes(AttrStatus.String(statusHandedBack), AttrDelay.Float64(r.deferDelay.Seconds()))
}

// traceNotPublished records on r's span that its outcome could not be
// published, so its message is left for redelivery; nil-safe.
func (r *request) traceNotPublished(err error) {
	if r.job.Span == nil {
		return
	}
	r.job.Span.SetAttributes(AttrStatus.String(statusNotPublished))
	r.job.Span.SetStatus(codes.Error, err.Error())
}

// endSpan ends r's span once its message is settled; nil-safe.
func (r *request) endSpan() {
	if r.job.Span != nil {
		r.job.Span.End()
	}
}

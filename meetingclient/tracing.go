package meetingclient

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// injectTraceContext sets the W3C traceparent and tracestate headers of the
// span in ctx on h, when the client was configured to send them
// (Config.TracePropagation) and ctx holds a valid span context. The client
// starts no spans of its own: its caller's span is the call's.
func (c *Client) injectTraceContext(ctx context.Context, h http.Header) {
	if !c.propagate || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

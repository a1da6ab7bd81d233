package outcome

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HeaderCarrier lets an OpenTelemetry propagator read and write the
// headers of a NATS message: the W3C traceparent and tracestate of a
// request, of a result and of a dead letter.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key. NATS headers are case-sensitive and
// W3C trace headers are not, so a key not found as written is looked up
// ignoring case.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set sets key to value, as written.
func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// traceContext is how trace context travels on outcome messages.
var traceContext = propagation.TraceContext{}

// traceHeader returns the traceparent (and tracestate) of the span in ctx
// as NATS headers, or nil when ctx holds no valid span context.
func traceHeader(ctx context.Context) nats.Header {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	h := nats.Header{}
	traceContext.Inject(ctx, HeaderCarrier(h))
	return h
}

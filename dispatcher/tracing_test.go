package dispatcher_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap/zaptest"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/schemas"
)

func attrsOf(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// submitTraced submits two requests of one conference, each with a
// request span as the consumer makes them, to a dispatcher whose batches
// hold exactly both (MaxBatch 2).
func submitTraced(t *testing.T, e *env, tracer trace.TracerProvider, tp *sdktrace.TracerProvider, prefix string) {
	t.Helper()
	d, err := dispatcher.New(dispatcher.Config{WorkerID: "w", MaxBatch: 2, Linger: time.Minute, RetryInitial: 20 * time.Millisecond,
		RetryMaxInterval: 50 * time.Millisecond, BreakerThreshold: -1},
		dispatcher.Deps{API: e.client, Publisher: e.pub, Logger: zaptest.NewLogger(t), Tracer: tracer})
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	for _, j := range e.jobs(req(prefix+"a", "c", "p0"), req(prefix+"b", "c", "p1")) {
		_, j.Span = tp.Tracer("test").Start(context.Background(), "request "+j.Request.RequestID,
			trace.WithAttributes(attribute.String("request", j.Request.RequestID)))
		require.NoError(t, d.Submit(context.Background(), j))
	}
}

// endedSpans waits until both request spans have ended and both messages
// are acked, and returns the spans ended.
func endedSpans(t *testing.T, e *env, rec *tracetest.SpanRecorder) []sdktrace.ReadOnlySpan {
	t.Helper()
	var spans []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		spans = rec.Ended()
		n := 0
		for _, s := range spans {
			if _, ok := attrsOf(s)["request"]; ok {
				n++
			}
		}
		return n == 2 && e.requestsLeft() == 0
	}, 20*time.Second, 5*time.Millisecond)
	return spans
}

func TestTracingLinksTheBatchToItsRequestsAndNestsEveryAttempt(t *testing.T) {
	e := newEnv(t, meetingsim.Config{Faults: meetingsim.Faults{
		Errors: []meetingsim.ErrorFault{{Rate: 1, Status: 503, Code: "MMC.111070003"}},
	}}, 30*time.Second)
	e.meeting("c", 2)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	submitTraced(t, e, tp, tp, "")
	// The vendor answers once two attempts have failed.
	require.Eventually(t, func() bool { return len(e.sim.Calls()) >= 2 }, 10*time.Second, 5*time.Millisecond)
	e.sim.SetFaults(meetingsim.Faults{})
	spans := endedSpans(t, e, rec)

	requests := map[string]sdktrace.ReadOnlySpan{}
	var batch sdktrace.ReadOnlySpan
	var calls []sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch {
		case s.Name() == dispatcher.SpanBatch:
			require.Nil(t, batch, "one batch")
			batch = s
		case s.Name() == dispatcher.SpanCall:
			calls = append(calls, s)
		default:
			requests[attrsOf(s)["request"].AsString()] = s
		}
	}
	require.NotNil(t, batch)
	require.False(t, batch.Parent().IsValid(), "a batch is a root of its own")
	var linked []trace.SpanContext
	for _, l := range batch.Links() {
		linked = append(linked, l.SpanContext)
	}
	require.ElementsMatch(t, []trace.SpanContext{requests["a"].SpanContext(), requests["b"].SpanContext()}, linked)
	ba := attrsOf(batch)
	require.Equal(t, "c", ba[dispatcher.AttrConferenceID].AsString())
	require.Equal(t, int64(2), ba[dispatcher.AttrIDs].AsInt64())
	require.Equal(t, int64(2), ba[dispatcher.AttrRequests].AsInt64())
	require.Equal(t, codes.Unset, batch.Status().Code)

	for id, r := range requests {
		require.Len(t, r.Links(), 1, id)
		require.Equal(t, batch.SpanContext(), r.Links()[0].SpanContext, id)
		ra := attrsOf(r)
		require.Equal(t, string(schemas.StatusSucceeded), ra[dispatcher.AttrStatus].AsString(), id)
		require.Equal(t, int64(len(calls)), ra[dispatcher.AttrAttempts].AsInt64(), id)
	}

	// Every attempt is a child of the batch: the failed ones with the
	// vendor's status and code, the last one the success.
	require.GreaterOrEqual(t, len(calls), 3)
	simIDs := map[string]bool{}
	for _, c := range e.sim.Calls() {
		simIDs[c.RequestID] = true
	}
	byAttempt := map[int64]sdktrace.ReadOnlySpan{}
	for _, c := range calls {
		require.Equal(t, batch.SpanContext().SpanID(), c.Parent().SpanID())
		require.Equal(t, batch.SpanContext().TraceID(), c.SpanContext().TraceID())
		a := attrsOf(c)
		require.Equal(t, int64(2), a[dispatcher.AttrIDs].AsInt64())
		require.True(t, simIDs[a[dispatcher.AttrAPIRequestID].AsString()])
		byAttempt[a[dispatcher.AttrAttempt].AsInt64()] = c
	}
	last := int64(len(calls))
	for n := int64(1); n <= last; n++ {
		c, ok := byAttempt[n]
		require.True(t, ok, "attempt %d", n)
		a := attrsOf(c)
		if n < last {
			require.Equal(t, int64(503), a[dispatcher.AttrHTTPStatus].AsInt64())
			require.Equal(t, "MMC.111070003", a[dispatcher.AttrErrorCode].AsString())
			require.Equal(t, codes.Error, c.Status().Code)
			continue
		}
		require.Equal(t, int64(200), a[dispatcher.AttrHTTPStatus].AsInt64())
		require.NotContains(t, a, dispatcher.AttrErrorCode)
		require.Equal(t, codes.Unset, c.Status().Code)
	}
	// One retry event per failed attempt on the batch.
	retries := 0
	for _, ev := range batch.Events() {
		if ev.Name == "retry" {
			retries++
		}
	}
	require.Equal(t, len(calls)-1, retries)
}

// With tracing off the dispatcher makes no span of its own, but still
// finishes the request spans it is handed.
func TestTracingOffStillEndsTheRequestSpans(t *testing.T) {
	e := newEnv(t, meetingsim.Config{}, 30*time.Second)
	e.meeting("c", 2)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for i, off := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		rec.Reset()
		submitTraced(t, e, off, tp, strconv.Itoa(i))
		spans := endedSpans(t, e, rec)
		require.Len(t, spans, 2, "only the request spans")
		for _, s := range spans {
			require.Empty(t, s.Links())
			require.Equal(t, string(schemas.StatusSucceeded), attrsOf(s)[dispatcher.AttrStatus].AsString())
		}
	}
}

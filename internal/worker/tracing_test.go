package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	otelattr "go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/consumer"
	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/schemas"
)

// producerSpan is the span context a producer's traceparent stands for.
func producerSpan(t *testing.T, n int, state string) trace.SpanContext {
	t.Helper()
	tid, err := trace.TraceIDFromHex(fmt.Sprintf("%032x", 0xa1000+n))
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex(fmt.Sprintf("%016x", 0xb2000+n))
	require.NoError(t, err)
	ts, err := trace.ParseTraceState(state)
	require.NoError(t, err)
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts})
}

// traceparent is the W3C header of sc.
func traceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// publishTraced publishes a valid request with a traceparent (and a
// tracestate when sc has one) and remembers it for the audit.
func (h *harness) publishTraced(req schemas.Request, token string, sc trace.SpanContext) {
	h.t.Helper()
	data, err := json.Marshal(req)
	require.NoError(h.t, err)
	msg := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + "." + req.ConferenceID)
	msg.Data = data
	msg.Header.Set(schemas.MsgIDHeader, req.RequestID)
	msg.Header.Set(schemas.TokenHeader, token)
	msg.Header.Set("traceparent", traceparent(sc))
	if ts := sc.TraceState().String(); ts != "" {
		msg.Header.Set("tracestate", ts)
	}
	_, err = h.js.PublishMsg(context.Background(), msg)
	require.NoError(h.t, err)
	h.sent[req.RequestID] = audit.Sent{ConferenceID: req.ConferenceID, ParticipantIDs: req.ParticipantIDs}
}

// vendorHeaders wraps the simulator's handler and records the traceparent
// of every hang-up call it receives ("" for none). With failFirst, it
// answers the first hang-up call of each conference itself with a
// retryable vendor error (500 MMC.111070003), X-Request-Id
// "injected-<conferenceID>".
type vendorHeaders struct {
	failFirst bool
	mu        sync.Mutex
	parent    []string
	failed    map[string]bool
}

func (v *vendorHeaders) serve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/participants/delete") {
			conf := r.URL.Query().Get("conferenceID")
			v.mu.Lock()
			v.parent = append(v.parent, r.Header.Get("traceparent"))
			fail := v.failFirst && !v.failed[conf]
			if fail {
				v.failed[conf] = true
			}
			v.mu.Unlock()
			if fail {
				w.Header().Set("X-Request-Id", "injected-"+conf)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"error_code":"MMC.111070003","error_msg":"SERVICE_ERROR"}`))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (v *vendorHeaders) traceparents() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.parent...)
}

// startTraced starts a worker whose spans go to a recorder, against the
// simulator behind a server that records the trace headers it gets.
func (h *harness) startTraced(failFirst bool, mod func(*Config)) (*tracetest.SpanRecorder, *vendorHeaders) {
	h.t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h.t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	vh := &vendorHeaders{failFirst: failFirst, failed: map[string]bool{}}
	api := httptest.NewServer(vh.serve(h.sim.Handler()))
	h.t.Cleanup(api.Close)
	cfg := h.config()
	cfg.APIBaseURL = api.URL
	if mod != nil {
		mod(&cfg)
	}
	w, err := New(cfg, Deps{Logger: h.log, TracerProvider: tp})
	require.NoError(h.t, err)
	require.NoError(h.t, w.Start(context.Background()))
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return rec, vh
}

// spanAttrs are a span's attributes by key.
func spanAttrs(s sdktrace.ReadOnlySpan) map[otelattr.Key]otelattr.Value {
	out := map[otelattr.Key]otelattr.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// streamMessages reads every message of a stream with its headers.
func (h *harness) streamMessages(stream string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.js.Stream(ctx, stream)
	require.NoError(h.t, err)
	info, err := st.Info(ctx)
	require.NoError(h.t, err)
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		require.NoError(h.t, err)
		out = append(out, m)
	}
	return out
}

// parentOf parses a traceparent header into the span context it names.
func parentOf(t *testing.T, header string) trace.SpanContext {
	t.Helper()
	parts := strings.Split(header, "-")
	require.Len(t, parts, 4, "traceparent %q", header)
	tid, err := trace.TraceIDFromHex(parts[1])
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex(parts[2])
	require.NoError(t, err)
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
}

// A request published with a traceparent is worked in that trace: its
// span is the producer's child, the batch that carried it links to it,
// every vendor call (a retry and the calls of a split included) is a
// child of the batch, and its result and dead letter carry its trace
// context. No token appears in any span.
func TestTracingFollowsRequestsToTheVendorCalls(t *testing.T) {
	h := newHarness(t, meetingsim.Config{Mode: meetingsim.ModeStrict})
	tok := h.meeting("conf", "a", "b")
	overTok := h.meeting("over", "x")
	require.NoError(t, h.sim.SetMeetingState("over", meetingsim.StateEnded))
	soloTok := h.meeting("solo", "s")

	p1, p2, p3, p4 := producerSpan(t, 1, ""), producerSpan(t, 2, "vendor=opaque"), producerSpan(t, 3, ""), producerSpan(t, 4, "")
	// r1 and r2 go out in one batch; ghost is not online, so the strict
	// vendor rejects the whole call and the batch is split.
	h.publishTraced(schemas.Request{RequestID: "r1", ConferenceID: "conf", ParticipantIDs: []string{"a"}}, tok, p1)
	h.publishTraced(schemas.Request{RequestID: "r2", ConferenceID: "conf", ParticipantIDs: []string{"b", "ghost"}}, tok, p2)
	h.neverOnline("conf", "ghost")
	h.publishTraced(schemas.Request{RequestID: "r3", ConferenceID: "over", ParticipantIDs: []string{"x"}}, overTok, p3)
	h.request("r5", "solo", soloTok, "s") // no traceparent
	invalid := nats.Header{}
	invalid.Set("traceparent", traceparent(p4))
	h.raw(schemas.DefaultRequestSubjectPrefix+".conf", []byte("not json"), invalid)

	// The first call of each conference fails with a retryable vendor
	// error.
	rec, vh := h.startTraced(true, func(c *Config) { c.Linger = 300 * time.Millisecond })
	s, _ := h.audit(tok, overTok, soloTok)
	results := resultsByID(s)
	require.Equal(t, schemas.StatusSucceeded, results["r1"].Status)
	require.Equal(t, schemas.StatusSucceeded, results["r2"].Status)
	require.Equal(t, schemas.StatusFailed, results["r3"].Status)

	// A request span ends right after its message is acked, which the
	// audit waited for.
	var spans []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		spans = rec.Ended()
		n := 0
		for _, sp := range spans {
			if sp.Name() == consumer.SpanRequest {
				n++
			}
		}
		return n == 5
	}, 5*time.Second, 5*time.Millisecond)

	for _, sp := range spans {
		for _, kv := range sp.Attributes() {
			for _, secret := range []string{tok, overTok, soloTok} {
				require.NotContains(t, kv.Value.String(), secret, "span %s attribute %s", sp.Name(), kv.Key)
			}
		}
	}

	requests := map[string]sdktrace.ReadOnlySpan{}
	var invalidSpan sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.Name() != consumer.SpanRequest {
			continue
		}
		a := spanAttrs(sp)
		if id, ok := a[consumer.AttrRequestID]; ok {
			requests[id.AsString()] = sp
		} else {
			invalidSpan = sp
		}
	}
	require.Len(t, requests, 4)

	// Request spans: children of the producers' spans, or roots without a
	// traceparent.
	for id, parent := range map[string]trace.SpanContext{"r1": p1, "r2": p2, "r3": p3} {
		sp := requests[id]
		require.Equal(t, parent.TraceID(), sp.SpanContext().TraceID(), id)
		require.Equal(t, parent.SpanID(), sp.Parent().SpanID(), id)
		require.True(t, sp.Parent().IsRemote(), id)
		require.Equal(t, trace.SpanKindConsumer, sp.SpanKind())
	}
	require.Equal(t, "vendor=opaque", requests["r2"].SpanContext().TraceState().String())
	require.False(t, requests["r5"].Parent().IsValid(), "without a traceparent the request span is a root")
	require.NotEqual(t, p1.TraceID(), requests["r5"].SpanContext().TraceID())
	a2 := spanAttrs(requests["r2"])
	require.Equal(t, "conf", a2[dispatcher.AttrConferenceID].AsString())
	require.Equal(t, int64(2), a2[dispatcher.AttrIDs].AsInt64(), "participant IDs as a count")
	require.Equal(t, "succeeded", a2[dispatcher.AttrStatus].AsString())
	require.Equal(t, int64(1), a2[consumer.AttrDeliveries].AsInt64())
	require.Positive(t, a2[consumer.AttrStreamSequence].AsInt64())
	a3 := spanAttrs(requests["r3"])
	require.Equal(t, "failed", a3[dispatcher.AttrStatus].AsString())
	require.Equal(t, "rejected", a3[dispatcher.AttrReason].AsString())
	require.Equal(t, codes.Error, requests["r3"].Status().Code)
	require.NotNil(t, invalidSpan)
	require.Equal(t, p4.TraceID(), invalidSpan.SpanContext().TraceID())
	require.Equal(t, codes.Error, invalidSpan.Status().Code)

	// The batch of conf links to both requests it carried, and they link
	// back to it.
	var batch sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.Name() == dispatcher.SpanBatch && spanAttrs(sp)[dispatcher.AttrConferenceID].AsString() == "conf" {
			require.Nil(t, batch, "one batch for conf")
			batch = sp
		}
	}
	require.NotNil(t, batch)
	var linked []trace.SpanContext
	for _, l := range batch.Links() {
		linked = append(linked, l.SpanContext.WithTraceState(trace.TraceState{}))
	}
	require.ElementsMatch(t, []trace.SpanContext{
		requests["r1"].SpanContext().WithTraceState(trace.TraceState{}),
		requests["r2"].SpanContext().WithTraceState(trace.TraceState{}),
	}, linked)
	require.Equal(t, int64(2), spanAttrs(batch)[dispatcher.AttrRequests].AsInt64())
	for _, id := range []string{"r1", "r2"} {
		require.Len(t, requests[id].Links(), 1, id)
		require.Equal(t, batch.SpanContext().SpanID(), requests[id].Links()[0].SpanContext.SpanID(), id)
	}

	// Its calls: the first attempt failed retryably, the retry was
	// rejected as a whole, then the split calls.
	type call struct {
		callID, code string
		attempt, ids int64
		status       int64
		failed       bool
	}
	var calls []call
	simIDs := map[string]bool{"injected-conf": true}
	for _, c := range h.sim.Calls() {
		simIDs[c.RequestID] = true
	}
	for _, sp := range spans {
		if sp.Name() != dispatcher.SpanCall || sp.Parent().SpanID() != batch.SpanContext().SpanID() {
			continue
		}
		require.Equal(t, batch.SpanContext().TraceID(), sp.SpanContext().TraceID())
		require.Equal(t, trace.SpanKindClient, sp.SpanKind())
		a := spanAttrs(sp)
		require.True(t, simIDs[a[dispatcher.AttrAPIRequestID].AsString()], "the vendor's X-Request-Id")
		calls = append(calls, call{
			callID: a[dispatcher.AttrCallID].AsString(), code: a[dispatcher.AttrErrorCode].AsString(),
			attempt: a[dispatcher.AttrAttempt].AsInt64(), ids: a[dispatcher.AttrIDs].AsInt64(),
			status: a[dispatcher.AttrHTTPStatus].AsInt64(), failed: sp.Status().Code == codes.Error,
		})
	}
	batchID := spanAttrs(batch)[dispatcher.AttrBatchID].AsString()
	require.ElementsMatch(t, []call{
		{callID: batchID, code: "MMC.111070003", attempt: 1, ids: 3, status: 500, failed: true},
		{callID: batchID, code: "MMC.111072008", attempt: 2, ids: 3, status: 400, failed: true},
		{callID: batchID + ".on", attempt: 1, ids: 2, status: 200},
		{callID: batchID + ".off1", code: "MMC.111072008", attempt: 1, ids: 1, status: 400, failed: true},
	}, calls)

	// Outcomes carry the request's trace context.
	results2 := map[string]trace.SpanContext{}
	for _, m := range h.streamMessages(schemas.DefaultResultStream) {
		var r schemas.Result
		require.NoError(t, json.Unmarshal(m.Data, &r))
		require.NotEmpty(t, m.Header.Get("traceparent"), r.RequestID)
		results2[r.RequestID] = parentOf(t, m.Header.Get("traceparent"))
		if r.RequestID == "r2" {
			require.Equal(t, "vendor=opaque", m.Header.Get("tracestate"))
		}
	}
	for id, sp := range requests {
		require.Equal(t, sp.SpanContext().TraceID(), results2[id].TraceID(), id)
		require.Equal(t, sp.SpanContext().SpanID(), results2[id].SpanID(), id)
	}
	dls := h.streamMessages(schemas.DefaultDeadLetterStream)
	require.Len(t, dls, 2)
	for _, m := range dls {
		var dl schemas.DeadLetter
		require.NoError(t, json.Unmarshal(m.Data, &dl))
		want := invalidSpan
		if dl.RequestID == "r3" {
			want = requests["r3"]
		}
		got := parentOf(t, m.Header.Get("traceparent"))
		require.Equal(t, want.SpanContext().TraceID(), got.TraceID(), dl.Reason)
		require.Equal(t, want.SpanContext().SpanID(), got.SpanID(), dl.Reason)
	}

	require.Empty(t, strings.Join(vh.traceparents(), ""), "no traceparent to the vendor without --api-trace-propagation")
}

// With APITracePropagation the vendor gets the traceparent of each call's
// span; without it (above) none.
func TestTracingSendsTraceparentToTheVendorOnlyWithTheFlag(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	tok := h.meeting("conf", "a", "b")
	h.publishTraced(schemas.Request{RequestID: "r1", ConferenceID: "conf", ParticipantIDs: []string{"a", "b"}}, tok, producerSpan(t, 1, ""))
	rec, vh := h.startTraced(false, func(c *Config) { c.APITracePropagation = true })
	h.audit(tok)
	sent := vh.traceparents()
	require.Len(t, sent, 1)
	got := parentOf(t, sent[0])
	var call sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, sp := range rec.Ended() {
			if sp.Name() == dispatcher.SpanCall {
				call = sp
			}
		}
		return call != nil
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, call.SpanContext().TraceID(), got.TraceID())
	require.Equal(t, call.SpanContext().SpanID(), got.SpanID())
}

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// Without an exporter asked for, the worker makes no exporter and its
// parts get the no-op provider, whatever other OTEL_* variables say.
func TestTracingExportsNothingUnlessAsked(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"no variable":          nil,
		"other variables only": {"OTEL_SERVICE_NAME": "svc", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "always_on", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"},
		"exporter none":        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"SDK disabled":         {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
	} {
		t.Run(name, func(t *testing.T) {
			tr, err := setupTracing(context.Background(), envOf(vars), "w-1", zap.NewNop())
			require.NoError(t, err)
			require.Nil(t, tr.sdk, "no exporter")
			require.IsType(t, noop.TracerProvider{}, tr.provider)
			tr.shutdown()
		})
	}
}

// Any of OTEL_TRACES_EXPORTER=otlp, OTEL_EXPORTER_OTLP_ENDPOINT and
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT turns the exporter on, over
// http/protobuf or grpc.
func TestTracingExporterIsMadeWhenAsked(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"exporter otlp":    {"OTEL_TRACES_EXPORTER": "otlp"},
		"endpoint":         {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"traces endpoint":  {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
		"grpc":             {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		"grpc for traces":  {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
		"explicit http/pb": {"OTEL_TRACES_EXPORTER": "OTLP", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
	} {
		t.Run(name, func(t *testing.T) {
			tr, err := setupTracing(context.Background(), envOf(vars), "w-1", zap.NewNop())
			require.NoError(t, err)
			require.NotNil(t, tr.sdk)
			require.Same(t, tr.sdk, tr.provider)
			tr.shutdown() // nothing buffered: no export, no connection
		})
	}
}

func TestTracingRefusesWhatItCannotExport(t *testing.T) {
	_, err := setupTracing(context.Background(), envOf(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}), "w-1", zap.NewNop())
	require.ErrorContains(t, err, `OTEL_TRACES_EXPORTER: "zipkin" is not supported`)
	_, err = setupTracing(context.Background(), envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}), "w-1", zap.NewNop())
	require.ErrorContains(t, err, `OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" is not supported`)
}

// The exporter sends the spans to the endpoint of the standard variables,
// as service hangup-worker, and Stop flushes what is buffered.
func TestTracingExportsToTheOTLPEndpoint(t *testing.T) {
	bodies := make(chan []byte, 10)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			bodies <- body
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL) // the exporter reads the process's variables
	tr, err := setupTracing(context.Background(), os.Getenv, "worker-7", zap.NewNop())
	require.NoError(t, err)
	require.NotNil(t, tr.sdk)
	_, span := tr.provider.Tracer("test").Start(context.Background(), "exported-span")
	span.End()
	tr.shutdown()
	select {
	case body := <-bodies:
		require.Contains(t, string(body), "exported-span")
		require.Contains(t, string(body), DefaultServiceName)
		require.Contains(t, string(body), "worker-7")
	default:
		t.Fatal("shutdown returned without exporting the span")
	}
}

// OTEL_SERVICE_NAME names the service instead of hangup-worker.
func TestTracingServiceName(t *testing.T) {
	res, err := tracingResource(context.Background(), envOf(map[string]string{"OTEL_SERVICE_NAME": "moderation-hangup"}), "w-1")
	require.NoError(t, err)
	name, _ := res.Set().Value("service.name")
	require.Equal(t, "moderation-hangup", name.AsString())
	res, err = tracingResource(context.Background(), envOf(nil), "w-1")
	require.NoError(t, err)
	name, _ = res.Set().Value("service.name")
	require.Equal(t, DefaultServiceName, name.AsString())
	id, _ := res.Set().Value("service.instance.id")
	require.Equal(t, "w-1", id.AsString())
}

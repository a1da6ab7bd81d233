package worker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/buildinfo"
)

// DefaultServiceName is the service.name of the worker's spans unless
// OTEL_SERVICE_NAME says otherwise.
const DefaultServiceName = "hangup-worker"

// tracingFlushTimeout bounds the flush of the spans still buffered at
// Stop, after the NATS connection is drained.
const tracingFlushTimeout = 5 * time.Second

// The standard variables that decide whether spans are exported at all.
const (
	envSDKDisabled         = "OTEL_SDK_DISABLED"
	envTracesExporter      = "OTEL_TRACES_EXPORTER"
	envEndpoint            = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint      = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol            = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol      = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envServiceName         = "OTEL_SERVICE_NAME"
	protocolHTTPProtobuf   = "http/protobuf"
	protocolGRPC           = "grpc"
	exporterOTLP           = "otlp"
	exporterNone           = "none"
	defaultTracingProtocol = protocolHTTPProtobuf
)

// tracing is the tracer provider the worker's parts are given, and what
// the worker flushes and shuts down at Stop.
type tracing struct {
	provider trace.TracerProvider
	// sdk is the provider the worker made from the environment; nil when
	// it exports nothing, or when the provider was given in Deps (its
	// owner shuts it down).
	sdk *sdktrace.TracerProvider
	log *zap.Logger
}

// startTracing returns Deps.TracerProvider, or sets one up from the
// process's OTEL_* variables.
func (w *Worker) startTracing(ctx context.Context) (*tracing, error) {
	if w.deps.TracerProvider != nil {
		return &tracing{provider: w.deps.TracerProvider, log: w.log}, nil
	}
	t, err := setupTracing(ctx, os.Getenv, w.cfg.WorkerID, w.log)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return t, nil
}

// setupTracing returns a tracer provider configured by the standard
// OTEL_* variables, read with getenv.
//
// Spans are exported over OTLP when OTEL_TRACES_EXPORTER is "otlp", or,
// with it unset, when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. Otherwise (none of the three
// set, OTEL_TRACES_EXPORTER=none, or OTEL_SDK_DISABLED=true) the provider
// is the no-op one: no exporter is made, no connection attempted, and the
// parts make no spans at all.
//
// The protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" (the default) or "grpc".
// The exporter reads the rest of its settings (endpoint, headers,
// certificates, timeout, compression) from the OTEL_EXPORTER_OTLP_*
// variables itself, and the SDK reads OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (default: parentbased_always_on) and
// OTEL_RESOURCE_ATTRIBUTES. service.name is OTEL_SERVICE_NAME, else
// DefaultServiceName; service.version is the build's and
// service.instance.id the worker ID, unless OTEL_RESOURCE_ATTRIBUTES sets
// them.
func setupTracing(ctx context.Context, getenv func(string) string, workerID string, log *zap.Logger) (*tracing, error) {
	off := &tracing{provider: noop.NewTracerProvider(), log: log}
	kind, err := tracesExporter(getenv)
	if err != nil || kind == exporterNone {
		return off, err
	}
	protocol := strings.TrimSpace(getenv(envTracesProtocol))
	if protocol == "" {
		protocol = strings.TrimSpace(getenv(envProtocol))
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "", protocolHTTPProtobuf:
		protocol = protocolHTTPProtobuf
		exp, err = otlptracehttp.New(ctx)
	case protocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("%s: %q is not supported; use %s or %s", envProtocol, protocol, protocolHTTPProtobuf, protocolGRPC)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := tracingResource(ctx, getenv, workerID)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("exporting traces over OTLP", zap.String("protocol", protocol))
	return &tracing{provider: sdk, sdk: sdk, log: log}, nil
}

// tracesExporter says which exporter the variables ask for: exporterOTLP
// or exporterNone.
func tracesExporter(getenv func(string) string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(getenv(envSDKDisabled)), "true") {
		return exporterNone, nil
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv(envTracesExporter))); v {
	case "":
		if getenv(envEndpoint) != "" || getenv(envTracesEndpoint) != "" {
			return exporterOTLP, nil
		}
		return exporterNone, nil
	case exporterOTLP, exporterNone:
		return v, nil
	default:
		return "", fmt.Errorf("%s: %q is not supported; use %s or %s", envTracesExporter, v, exporterOTLP, exporterNone)
	}
}

// tracingResource describes the worker in its spans.
func tracingResource(ctx context.Context, getenv func(string) string, workerID string) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(
			semconv.ServiceName(DefaultServiceName),
			semconv.ServiceVersion(buildinfo.Version()),
			semconv.ServiceInstanceID(workerID),
		),
		// Later options win: OTEL_RESOURCE_ATTRIBUTES over the defaults,
		// OTEL_SERVICE_NAME over both.
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	}
	if name := strings.TrimSpace(getenv(envServiceName)); name != "" {
		opts = append(opts, resource.WithAttributes(semconv.ServiceName(name)))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	return res, nil
}

// shutdown flushes the spans still buffered and ends the exporter, within
// tracingFlushTimeout; a collector that does not answer is logged, not an
// error of the worker's stop. Nothing to do for a provider it did not
// make.
func (t *tracing) shutdown() {
	if t == nil || t.sdk == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	defer cancel()
	if err := t.sdk.Shutdown(ctx); err != nil {
		t.log.Warn("spans not flushed", zap.Error(err))
	}
}

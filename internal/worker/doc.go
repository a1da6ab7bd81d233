// Package worker assembles one hangup worker from its parts: the NATS
// connection, the streams (topology), the vendor API client, the outcome
// publisher, the dispatcher, the consumer and the HTTP endpoints for
// metrics and health, and the tracer provider the parts share
// (tracing.go: OTLP from the OTEL_* variables, or none).
//
// It owns their start and shutdown order, and its Config: the one place
// the worker's defaults are written down (SetDefaults, which cmd/worker's
// flags take theirs from), what spans several parts (Validate), and Check,
// which runs the parts' own validation on a Config and names every error by
// the setting it comes from (*SettingError), for cmd/worker to name by flag.
// Its lock guards only the started and stopped state and the parts Start
// made: connecting, provisioning and shutting down happen outside it, and
// a Stop during Start ends Start's network calls.
//
// It never does the parts' work: pulling, batching, calling the API and
// publishing outcomes are theirs.
package worker

// Package outcome publishes what the worker decided: result events and dead
// letters, each to its JetStream subject with a Nats-Msg-Id so that a repeat
// after a crash is dropped by the stream. It owns the redaction of secrets
// from the original headers a dead letter carries, and puts the trace
// context of its caller's span (traceparent, tracestate) on every message
// it publishes (tracing.go). It never consumes
// messages and never acks them; its callers ack once Publish has returned.
package outcome

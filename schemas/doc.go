// Package schemas defines the event contract of hangup: the disconnect
// request that producers publish, the result event the worker publishes once
// per valid request, and the dead letter it publishes for what cannot
// succeed.
//
// It owns the Go types of those events, the JSON Schema files that describe
// them to producers and consumers in other languages (embedded in [Files] and
// served by [Schema]), example events, and the validation of untrusted input:
// [DecodeRequest] turns a message that arrived on a request subject into a
// [Request] or a [*ValidationError] a person can act on, and [ValidateToken]
// checks the control token header without ever echoing it.
//
// It never touches NATS connections, the vendor API, clocks or loggers: every
// function here is a pure function of its arguments, so the consumer, the
// dispatcher and producers in tests can all share it.
package schemas

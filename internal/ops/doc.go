// Package ops is what an operator does with a running hangup deployment
// from the command line: publish requests, follow the outcomes, look at
// dead letters and publish them again as new requests, and create the
// streams, consumers and buckets the workers use.
//
// Each function takes a JetStream handle and writes its report to an
// [Output], one line of text for a person or one JSON object per line for
// a script; cmd/worker only parses flags and wires them up. It checks
// requests with the worker's own decoder (schemas.DecodeRequest) and
// provisions with the worker's own code (internal/topology and the
// buckets' EnsureBucket functions), so that what it publishes and creates
// is what a worker accepts and creates.
//
// It never consumes from the workers' durable consumers and never acks a
// request: it reads the outcome streams through consumers of its own that
// leave nothing behind. Its only shared state is in JetStream: the
// replays of dead letters are recorded in the key-value bucket
// hangup_replays. A control token is put in a request header and never
// written anywhere else.
package ops

// Package dispatcher batches the participant IDs of disconnect requests per
// conference into hang-up calls, retries what the vendor answers as
// retryable, splits batches that the vendor rejects as a whole until each
// rejection is pinned to one participant, and turns the answers into one
// outcome per request: a result event, a dead letter for a failure, then
// the ack of the source message.
//
// It owns the per-conference batching state (in one loop goroutine), the
// API calls in flight, and the keep-alive of the messages it holds. It
// never pulls from JetStream and never decodes requests: the consumer
// package does that and calls Submit.
package dispatcher

// Package consumer pulls disconnect requests from the durable JetStream
// consumer, decodes and validates each one, and hands the valid ones to the
// dispatcher.
//
// It owns the bind to the durable (Start), the pull loop and its goroutine
// (stopped and waited for by Stop), and the messages until hand-over. Each
// pull asks for no more messages than the Handler's Capacity allows (and
// at most FetchBatch), so that no message waits unattended in a client-side
// buffer. An invalid message is handed to the Handler with its dead letter
// (the Handler publishes it and acks), and a message delivered too often is
// handed to it to fail without an API call. The times it writes into dead
// letters come from Config.Now. Its lock guards only the started and
// stopped state: no network call or wait happens under it, so Stop never
// waits behind a Start's bind (it ends it).
//
// With an Assignment it runs one puller per partition consumer the worker
// owns, plus one for the shared durable (pull.go); the pullers reserve room
// in the Handler's Capacity before each fetch, so that together they never
// pull more than it can take, and they keep count of what the server says
// is left to pull (Backlog). A poller (lag.go) reads the server's counts of
// the consumers pulled into the lag gauges every LagInterval.
//
// With a TracerProvider it starts the span of each message it takes
// (tracing.go), a child of the trace context in the message's headers,
// and hands it over with the message; the Handler ends it.
//
// It never calls the vendor API, never publishes or acks results of valid
// requests, and never creates streams or consumers.
package consumer

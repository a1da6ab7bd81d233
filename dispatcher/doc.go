// Package dispatcher batches the participant IDs of disconnect requests per
// conference into hang-up calls, retries what the vendor answers as
// retryable, splits batches that the vendor rejects as a whole until each
// rejection is pinned to one participant, and turns the answers into one
// outcome per request: a result event, a dead letter for a failure, then
// the ack of the source message.
//
// It owns the requests handed over by Submit, Fail and Reject until their
// messages are acked or handed back: the per-conference batching state,
// the API calls in flight, the keep-alive of the messages it holds, and
// what it remembers across batches. It never pulls from JetStream, never
// decodes requests (the consumer package does both and calls Submit), and
// never creates streams or tokens of its own: tokens come from the requests
// or from the TokenSource it is given.
//
// Which file and type owns which job:
//
//   - dispatcher.go, Dispatcher: the lifecycle (New, Start, Stop and its
//     shutdown order) and the flow control (the MaxInFlight slots, and
//     Capacity, which the consumer asks before it pulls).
//   - batcher.go, batcher: the batching state machine, in one loop
//     goroutine that alone owns it: pending IDs per conference, linger,
//     expiry before a call, one call chain in flight per conference and
//     this worker's share of APIConcurrency over all, keep-alives,
//     applying outcomes to requests.
//   - memory.go, memory: what the batcher remembers across batches:
//     conferences whose meeting is gone or not ready, tokens the vendor
//     rejected, and the tokens of each conference.
//   - caller.go, caller: what every call chain shares, and starts them.
//   - chain.go, chain: the call chain of one batch: the calls, retries and
//     splits, gathering the inputs of each decision and carrying it out.
//   - step.go, step: nextStep, the pure decision of what a chain does
//     after an answer.
//   - tokenring.go, tokenRing: which token a chain's next call uses.
//   - breaker.go, breaker: the circuit breaker, and which request is let
//     in for a probe while it is open.
//   - limiter.go, limiter: the API call rate, up to this worker's share
//     of APIRate, adapted to flow control.
//   - share.go: the deployment's budget shared among the live workers
//     (SetShare), and flow control met by one worker slowing the others
//     (FlowSignal, Throttle).
//   - finisher.go, finisher: publishing each outcome, then the ack; or
//     handing the message back.
//   - request.go, request: a request while it is held, and the result and
//     dead letter it turns into. batch.go, batch: one group of IDs sent
//     together. config.go, Config; metrics.go, metrics.
//   - tracing.go, tracing: the span of each batch (linked to its
//     requests' spans) and of each vendor call under it, and the outcome
//     on each request's span (Job.Span), which it ends once the message
//     is settled.
package dispatcher

// Package bench measures hangup against two reference pipelines on one
// workload, one after another, on one NATS server and one simulated vendor:
//
//   - limit: the broker's limit. It consumes the request stream, publishes a
//     result per request, waits for the result stream's PubAck and then acks
//     the request. No API call, no batching: no pipeline that keeps the
//     "ack only after the outcome is stored" rule can be faster.
//   - plain: a plain handler, as a Watermill or nats.go handler runs by
//     default: 32 handlers in parallel, each making one hang-up call per
//     request (retried with backoff), publishing the result and acking.
//   - hangup: the real worker (internal/worker) with its defaults.
//
// The workload is generated from a seed: requests over conferences chosen
// with a Zipf skew, in bursts per conference, each naming one to three
// participants never named before who are online in the meeting. Before each
// pipeline the streams are recreated, a fresh simulator is started and the
// whole backlog is published; the pipeline then drains it. A Report holds,
// per pipeline, the throughput, the API calls, the outcome latency, the peak
// resident memory and the CPU time of the process, and whether every request
// got exactly one result. WriteMarkdown, WriteJSON and WritePNG render it.
//
// The package owns only measuring. It never changes the worker's behaviour,
// and it deletes and recreates the request, result and dead-letter streams of
// the server it is given, so it must not be pointed at a server in use.
package bench

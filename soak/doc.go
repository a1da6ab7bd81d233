// Package soak is the soak test of hangup: it runs the real thing as child
// processes under chaos and checks the worker's invariant from the outside.
//
// TestSoak builds nats-server (from the module's dependency), the meeting API
// simulator (cmd/meetingsim) and the worker (cmd/worker) with CGO_ENABLED=0
// into a temporary directory, starts them on 127.0.0.1 with their output
// captured to files there, and publishes requests from the test process:
// valid ones over overlapping participants of many conferences, mostly with
// a control token from the simulator's token API, some duplicates (same
// requestID and Nats-Msg-Id), some about to expire, and malformed messages.
// It also writes every meeting's host password to the JetStream key-value
// bucket meeting_credentials, from which the worker may obtain tokens when a
// request's own token is rejected.
//
// While it publishes, chaos runs: workers are killed with SIGKILL every few
// seconds and restarted (sometimes two run at once), the NATS server is
// restarted twice, and the simulator fails hang-ups (500 and flow control
// with Retry-After), adds latency spikes, expires every token periodically,
// goes down completely for a while and runs in strict mode for part of the
// time.
//
// Late in the run (from 62% to 92% of the publishing time) comes the
// one-live period: through its admin API (POST /_sim/tokens/config) the
// simulator is switched to one live token per meeting, where a new token
// ends every earlier one of its meeting, with token lifetimes of 2 to 4
// seconds (drawn at the start and again halfway); at its end the settings
// read before it (mode many, the 30-minute default lifetime) are put back.
// Meanwhile at least three workers (four in the long run) run at once on
// the same durable consumer, one more when the chaos switches to "two",
// and kills go on. The workers must share each conference's token through
// the hangup_tokens key-value bucket: if each obtained its own, they would
// end each other's tokens. The loader's own token refreshes end the
// workers' tokens too, and the workers' new tokens end the header tokens
// of the requests still to come.
//
// Then the chaos stops, one worker drains the request stream and is
// stopped with SIGTERM, and the test reads the outcome streams and the
// simulator's record of disconnects back and checks them with
// internal/audit: exactly one result per valid request, exactly one dead
// letter per failed request and per invalid message, no one reported
// disconnected whom the simulator did not remove, no one removed who was
// never requested, and no host password or control token in any outcome or
// log file. It also checks that no valid request whose conference has its
// host password in the credentials bucket (every conference of the load
// has) is dead-lettered as rejected: an expired, ended or foreign header
// token, or none, must be made up for with a token from the password; that
// valid requests fail only for max_deliveries, and few of them; that at
// least three workers (four in the long run) did run at once in the
// one-live period, that the one-live rule did end tokens then, and that
// the workers' token calls per conference in it stay within a generous
// bound that does not grow with the number of workers (see
// workerTokenBound). The summary reports the
// token calls per conference (minimum, median and maximum, in all, by the
// workers alone, and in the one-live period) and the tokens the one-live
// rule ended (the simulator's tokensReplaced).
//
// The short version runs with plain `go test ./...` (it is skipped under
// -short) and takes about 35 to 45 seconds once the binaries are built;
// the long one is
//
//	go test ./soak -run TestSoak -v -timeout 60m -soak.requests=50000 -soak.long
//
// Flags: -soak.requests, -soak.long, -soak.duration (how long publishing and
// chaos last; the chaos schedule scales with it), -soak.seed (the load's and
// the chaos's random choices), -soak.cluster (below) and -soak.dir (keep
// binaries, data and logs there instead of a temporary directory). With
// -soak.dir the directory keeps, besides the logs, summary.txt,
// chaos-timeline.txt, the metrics and rejected.txt (the requests the
// rejected check caught, if any).
//
// With -soak.cluster the test runs three nats-server processes forming a
// JetStream cluster (n1, n2, n3 on pre-allocated client, route and
// monitoring ports of 127.0.0.1, each with its own store directory) and
// waits for a meta leader and for every node's /healthz. The credentials
// bucket and, through --replicas 3, every stream and bucket of the workers
// have three replicas, and the workers get the three client URLs. At least
// three workers run at all times: a worker kill starts the replacement
// first and kills one of the others only once the workers wanted have
// logged "worker started" (or after 20 s), and no kill takes all of them.
// Instead of restarting the server, the NATS chaos SIGKILLs one node at the
// same two moments (the request stream's leader the first time, the meta
// leader the second) and restarts it on its ports and store directory a
// while later (15 s scaled like the other periods, at least 5 s); a node is
// killed only when every node reports itself healthy, so there is never
// more than one down and the streams keep their quorum. The checks are the
// same, and the results must name at least three distinct workers; the
// summary adds the node kills and how long at least three workers ran. The
// nodes log to nats-<node>-<start>.log.
//
//	go test ./soak -run TestSoak -v -timeout 30m -soak.requests=20000 -soak.cluster
//
// The package holds test code only and exports nothing. It talks to the
// worker over NATS, to the simulator over HTTP, and to both through
// signals; it never imports the worker's internals.
package soak

// Package worker assembles one hangup worker from its parts: the NATS
// connection, the streams (topology), the vendor API client, the outcome
// publisher, the dispatcher, the consumer and the HTTP endpoints for
// metrics and health. It owns their start and shutdown order and nothing
// else: each part owns its own work.
package worker

// Package embedded runs a real NATS server with JetStream inside the
// process, for the demo and the tests. It owns the server's start and
// nothing else: the caller shuts it down. It never imports testing; the
// test helpers around it are in internal/natstest.
package embedded

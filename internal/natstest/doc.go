// Package natstest runs a real, embedded NATS server with JetStream for
// tests and the demo. It owns the server's lifetime and nothing else.
package natstest

// Package natstest runs a real, embedded NATS server with JetStream for
// tests, stopped when the test ends, and connects to it. The server itself
// comes from internal/embedded; this package only ties it to a test.
package natstest

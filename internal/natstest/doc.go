// Package natstest runs real, embedded NATS servers with JetStream for
// tests, stopped when the test ends, and connects to them. A single server
// comes from internal/embedded; RunCluster starts an in-process cluster
// whose nodes a test can stop and restart, and Proxy sits between a client
// and a server so that a test can cut that one client off the network.
package natstest

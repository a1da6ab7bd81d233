// Package topology creates or updates the JetStream streams and the durable
// consumer of the event contract. It owns their settings and nothing else:
// it never publishes or consumes messages.
package topology

// Package natsconn turns the NATS connection settings that every command
// of the worker takes (URL, authentication, TLS) into nats.go options. It
// owns their validation and nothing else: it never connects on its own
// and never touches JetStream.
package natsconn

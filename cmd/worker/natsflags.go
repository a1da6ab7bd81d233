package main

import (
	"flag"

	"github.com/hangup-dev/hangup/internal/natsconn"
)

// addNATSFlags defines the NATS connection flags that every command takes,
// with d's values as defaults.
func addNATSFlags(fs *flag.FlagSet, c *natsconn.Config, d natsconn.Config) {
	fs.StringVar(&c.URL, "nats-url", d.URL, "NATS server URL(s), comma-separated")
	fs.StringVar(&c.CredsFile, "nats-creds", d.CredsFile, "NATS credentials file (JWT and NKey seed)")
	fs.StringVar(&c.NKeySeedFile, "nats-nkey", d.NKeySeedFile, "file holding the NATS user's NKey seed")
	fs.StringVar(&c.User, "nats-user", d.User, "NATS user name (with --nats-password)")
	fs.StringVar(&c.Password, "nats-password", d.Password, "NATS password (prefer the environment variable)")
	fs.StringVar(&c.Token, "nats-token", d.Token, "NATS authentication token (prefer the environment variable)")
	fs.StringVar(&c.CAFile, "nats-ca", d.CAFile, "PEM file of CA certificates to trust for the NATS server's TLS certificate")
	fs.StringVar(&c.CertFile, "nats-cert", d.CertFile, "PEM client certificate for NATS servers that verify clients (with --nats-key)")
	fs.StringVar(&c.KeyFile, "nats-key", d.KeyFile, "PEM key of --nats-cert")
}

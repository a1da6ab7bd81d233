package natsconn

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// DefaultURL is the server a worker connects to when none is set.
const DefaultURL = "nats://127.0.0.1:4222"

// Config is how to reach and authenticate to NATS. At most one way of
// authenticating is set: a credentials file, an NKey seed file, a token,
// or a user and password. TLS settings combine with any of them.
type Config struct {
	// URL is the server, or several comma-separated. Defaults to DefaultURL.
	URL string
	// CredsFile is a credentials file (JWT and NKey seed). Optional.
	CredsFile string
	// NKeySeedFile is a file holding a user's NKey seed. Optional.
	NKeySeedFile string
	// User and Password authenticate with a user name and password.
	// Optional; User needs Password.
	User     string
	Password string
	// Token authenticates with a token. Optional.
	Token string
	// CAFile is a PEM file of CA certificates to trust for the server's
	// TLS certificate; setting it requires TLS. Optional.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key, for
	// servers that verify clients; setting them requires TLS. Optional,
	// both or neither.
	CertFile string
	KeyFile  string
}

// SetDefaults fills the zero fields that have a default.
func (c *Config) SetDefaults() {
	if c.URL == "" {
		c.URL = DefaultURL
	}
}

// FieldError is a setting that is not valid; Field is the Config field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks the settings; each error is a *FieldError. Secrets are
// never quoted back.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	for i, raw := range strings.Split(c.URL, ",") {
		// The value is not quoted back: a NATS URL may carry a password.
		if u, err := url.Parse(strings.TrimSpace(raw)); err != nil || u.Host == "" {
			bad("URL", "entry %d is not a NATS URL such as nats://host:4222", i+1)
		}
	}
	ways := 0
	for _, set := range []bool{c.CredsFile != "", c.NKeySeedFile != "", c.Token != "", c.User != "" || c.Password != ""} {
		if set {
			ways++
		}
	}
	if ways > 1 {
		bad("CredsFile", "set one way of authenticating: a credentials file, an NKey seed file, a token, or a user and password")
	}
	if (c.User == "") != (c.Password == "") {
		bad("User", "a user needs a password and a password a user")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("CertFile", "a client certificate needs its key file and a key file its certificate")
	}
	for field, path := range map[string]string{"CredsFile": c.CredsFile, "NKeySeedFile": c.NKeySeedFile, "CAFile": c.CAFile, "CertFile": c.CertFile, "KeyFile": c.KeyFile} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			bad(field, "cannot read %s: %v", path, errors.Unwrap(err))
		}
	}
	return errors.Join(errs...)
}

// Options are the nats.go options that authenticate and set up TLS as
// configured. An NKey seed file that cannot be read is an error.
func (c *Config) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NKey seed file %s: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, o)
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	return opts, nil
}

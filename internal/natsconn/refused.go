package natsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
)

// refusal is why a connection cannot succeed however often it is tried.
type refusal int

const (
	notRefused refusal = iota
	// refusedCredentials: the server refused the credentials.
	refusedCredentials
	// refusedServerCert: the server's certificate is not trusted.
	refusedServerCert
	// refusedClientCert: the server refused the client's certificate, or
	// wants one and got none.
	refusedClientCert
	// refusedTLS: the two ends disagree about TLS, or the handshake failed
	// otherwise.
	refusedTLS
	// refusedFiles: a credentials, seed or certificate file cannot be used.
	refusedFiles
)

// classify tells why err from connecting cannot be cured by retrying, or
// notRefused when it may be (the server is not up yet, a network error).
// The NATS client reports some of these only as text, so the text is read
// too.
func classify(err error) refusal {
	if err == nil {
		return notRefused
	}
	s := strings.ToLower(err.Error())
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		alert            tls.AlertError
		path             *fs.PathError
		netErr           net.Error
	)
	// The server closed the connection right after the TLS handshake:
	// what it does with a client certificate it refuses (or a missing
	// one), and what a server that goes away at that moment would do too,
	// so a caller should see it twice before giving up.
	if errors.Is(err, nats.ErrTLS) && strings.Contains(s, "connection closed by remote after tls handshake") {
		return refusedClientCert
	}
	// Otherwise a connection cut or timed out, in the TLS handshake too,
	// may work the next time.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.As(err, &netErr) && netErr.Timeout() {
		return notRefused
	}
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired),
		strings.Contains(s, "authorization violation"), strings.Contains(s, "authentication expired"),
		strings.Contains(s, "authentication revoked"):
		return refusedCredentials
	case errors.Is(err, nats.ErrSecureConnWanted), errors.Is(err, nats.ErrSecureConnRequired),
		strings.Contains(s, "first record does not look like a tls handshake"):
		return refusedTLS
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verification), strings.Contains(s, "x509:"):
		return refusedServerCert
	case errors.As(err, &alert), strings.Contains(s, "remote error: tls:"):
		return refusedClientCert
	case strings.Contains(s, "tls: "):
		return refusedTLS
	case errors.As(err, &path), strings.Contains(s, "nkeys:"), strings.Contains(s, "not a valid nkey"),
		strings.Contains(s, "rootca file"), strings.Contains(s, "root certificate"),
		strings.Contains(s, "client certificate"):
		return refusedFiles
	}
	return notRefused
}

// IsAuthError reports whether err from connecting says that retrying will
// not help: the server refused the credentials, the TLS handshake failed
// on a certificate or on TLS itself, or a credentials, seed or
// certificate file cannot be used. A server that is not up yet, or a
// network error, is not one. A server that closes the connection right
// after the TLS handshake counts as refusing the client certificate,
// which a server going away at that moment looks like too: confirm with a
// second attempt.
func IsAuthError(err error) bool { return classify(err) != notRefused }

// RefusedError is a connection that retrying cannot make succeed. Check
// names the settings to look at, as flags and environment variables.
type RefusedError struct {
	Err   error
	Check string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%v (retrying will not help); check %s", e.Err, e.Check)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Refused returns err as a *RefusedError naming the settings to check when
// IsAuthError(err), and err itself otherwise. The message never quotes a
// secret: only the names of the settings.
func (c *Config) Refused(err error) error {
	why := classify(err)
	if why == notRefused {
		return err
	}
	return &RefusedError{Err: err, Check: c.check(why)}
}

// setting names a flag and its environment variable.
func setting(flags ...string) string {
	names := make([]string, len(flags))
	envs := make([]string, len(flags))
	for i, f := range flags {
		names[i] = "--" + f
		envs[i] = "HANGUP_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
	}
	return strings.Join(names, " and ") + " (" + strings.Join(envs, ", ") + ")"
}

// check names what to look at for a refusal of kind why, from the settings
// in use.
func (c *Config) check(why refusal) string {
	switch why {
	case refusedCredentials:
		switch {
		case c.CredsFile != "":
			return setting("nats-creds") + ": the user's JWT and seed, and that the server knows its account"
		case c.NKeySeedFile != "":
			return setting("nats-nkey") + ": the seed of a user the server knows"
		case c.Token != "":
			return setting("nats-token")
		case c.User != "":
			return setting("nats-user", "nats-password")
		case strings.Contains(c.URL, "@"):
			return "the user and password in " + setting("nats-url")
		case c.CertFile != "":
			return setting("nats-cert", "nats-key") + ": a certificate the server maps to a user, or set one way of authenticating"
		}
		return "the server requires authentication: set " + setting("nats-creds") + ", " + setting("nats-nkey") + ", " +
			setting("nats-token") + ", or " + setting("nats-user", "nats-password")
	case refusedServerCert:
		return setting("nats-ca") + ": the CA that signed the server's certificate; and that " + setting("nats-url") +
			" names a host the certificate is for"
	case refusedClientCert:
		if c.CertFile == "" {
			return "the server requires a client certificate: set " + setting("nats-cert", "nats-key")
		}
		return setting("nats-cert", "nats-key") + ": a certificate signed by a CA the server trusts, not expired"
	case refusedTLS:
		return setting("nats-url") + " and " + setting("nats-ca") + ": whether the server uses TLS"
	case refusedFiles:
		var files []string
		for flag, path := range map[string]string{"nats-creds": c.CredsFile, "nats-nkey": c.NKeySeedFile,
			"nats-ca": c.CAFile, "nats-cert": c.CertFile, "nats-key": c.KeyFile} {
			if path != "" {
				files = append(files, flag)
			}
		}
		if len(files) == 0 {
			return "the credentials and certificate files"
		}
		slices.Sort(files)
		return setting(files...) + ": the files must exist, be readable and hold what the setting names"
	}
	return "the NATS settings"
}

package natsconn_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestValidateNamesTheFieldWithoutQuotingSecrets(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.pem")
	cases := map[string]struct {
		cfg   natsconn.Config
		field string
	}{
		"bad URL":               {natsconn.Config{URL: "nats://user:s3cret@[::1"}, "URL"},
		"two ways":              {natsconn.Config{URL: natsconn.DefaultURL, Token: "s3cret", User: "u", Password: "s3cret"}, "CredsFile"},
		"user without password": {natsconn.Config{URL: natsconn.DefaultURL, User: "u"}, "User"},
		"password without user": {natsconn.Config{URL: natsconn.DefaultURL, Password: "s3cret"}, "User"},
		"cert without key":      {natsconn.Config{URL: natsconn.DefaultURL, CertFile: missing}, "CertFile"},
		"missing CA file":       {natsconn.Config{URL: natsconn.DefaultURL, CAFile: missing}, "CAFile"},
		"missing creds file":    {natsconn.Config{URL: natsconn.DefaultURL, CredsFile: missing}, "CredsFile"},
		"missing seed file":     {natsconn.Config{URL: natsconn.DefaultURL, NKeySeedFile: missing}, "NKeySeedFile"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			require.Error(t, err)
			var fe *natsconn.FieldError
			require.ErrorAs(t, err, &fe)
			require.Contains(t, err.Error(), tc.field+": ")
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
	ok := natsconn.Config{URL: "nats://a:4222, nats://b:4222", User: "u", Password: "p"}
	require.NoError(t, ok.Validate())
	var empty natsconn.Config
	empty.SetDefaults()
	require.Equal(t, natsconn.DefaultURL, empty.URL)
	require.NoError(t, empty.Validate())
}

func TestOptionsRefuseASeedFileThatHoldsNoSeed(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.nk")
	require.NoError(t, os.WriteFile(bad, []byte("not a seed"), 0o600))
	c := natsconn.Config{URL: natsconn.DefaultURL, NKeySeedFile: bad}
	_, err := c.Options()
	require.ErrorContains(t, err, "NKey seed file "+bad)
	require.True(t, natsconn.IsAuthError(err), "an unusable seed file is not cured by retrying: %v", err)
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                        "nats://127.0.0.1:4222",
		"nats://hangup:s3cret@nats:4222":               "nats://hangup:xxxxx@nats:4222",
		"nats://s3cret@nats:4222":                      "nats://xxxxx@nats:4222",
		"nats://a:4222,nats://u:s3cret@b:4222":         "nats://a:4222,nats://u:xxxxx@b:4222",
		"tls://u:s3cret@a:4222, nats://s3cret@b:4222 ": "tls://u:xxxxx@a:4222,nats://xxxxx@b:4222",
		"nats://u:s3cret@[::1":                         "[not a URL]",
	} {
		require.Equal(t, want, natsconn.RedactURL(in), in)
	}
}

// runServer starts a server with opts for t and returns its client URL.
func runServer(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv.ClientURL()
}

// connect connects to url as cfg says, once.
func connect(t *testing.T, url string, cfg natsconn.Config) error {
	t.Helper()
	cfg.URL = url
	require.NoError(t, cfg.Validate())
	opts, err := cfg.Options()
	require.NoError(t, err)
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err == nil {
		nc.Close()
	}
	return err
}

// Each kind of authentication, against a real server that requires it:
// the right credential connects, and the wrong one is an error that
// retrying cannot cure, named by the settings to check and never quoting
// the secret.
func TestRefusalsFromRealServers(t *testing.T) {
	dir := t.TempDir()
	seed, pub := natstest.NKeyUser(t, dir)
	otherSeed, _ := natstest.NKeyUser(t, dir)
	op := natstest.NewOperator(t)
	pki, otherPKI := natstest.NewPKI(t, "hangup"), natstest.NewPKI(t, "other")
	clientCert, clientKey := pki.ClientCert(t, "worker")
	strangerCert, strangerKey := otherPKI.ClientCert(t, "stranger")

	operatorOpts := &server.Options{}
	op.Configure(t, operatorOpts)
	cases := []struct {
		name        string
		server      *server.Options
		right       natsconn.Config
		wrong       natsconn.Config
		check       string
		sentinelErr error
	}{
		{"user and password", &server.Options{Username: "hangup", Password: "s3cret"},
			natsconn.Config{User: "hangup", Password: "s3cret"}, natsconn.Config{User: "hangup", Password: "wrong-s3cret"},
			"--nats-user and --nats-password (HANGUP_NATS_USER, HANGUP_NATS_PASSWORD)", nats.ErrAuthorization},
		{"no credentials", &server.Options{Username: "hangup", Password: "s3cret"},
			natsconn.Config{User: "hangup", Password: "s3cret"}, natsconn.Config{},
			"the server requires authentication", nats.ErrAuthorization},
		{"token", &server.Options{Authorization: "s3cret-token"},
			natsconn.Config{Token: "s3cret-token"}, natsconn.Config{Token: "wrong-s3cret"},
			"--nats-token (HANGUP_NATS_TOKEN)", nats.ErrAuthorization},
		{"nkey", &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}},
			natsconn.Config{NKeySeedFile: seed}, natsconn.Config{NKeySeedFile: otherSeed},
			"--nats-nkey (HANGUP_NATS_NKEY)", nats.ErrAuthorization},
		{"credentials file", operatorOpts,
			natsconn.Config{CredsFile: op.Creds(t, "worker")}, natsconn.Config{CredsFile: op.StrangerCreds(t, "stranger")},
			"--nats-creds (HANGUP_NATS_CREDS)", nats.ErrAuthorization},
		{"server certificate from an unknown CA", pki.ServerOptions(t, false),
			natsconn.Config{CAFile: pki.CAFile}, natsconn.Config{CAFile: otherPKI.CAFile},
			"--nats-ca (HANGUP_NATS_CA)", nil},
		{"server certificate, no CA given", pki.ServerOptions(t, false),
			natsconn.Config{CAFile: pki.CAFile}, natsconn.Config{},
			"--nats-ca (HANGUP_NATS_CA)", nil},
		{"client certificate missing", pki.ServerOptions(t, true),
			natsconn.Config{CAFile: pki.CAFile, CertFile: clientCert, KeyFile: clientKey}, natsconn.Config{CAFile: pki.CAFile},
			"the server requires a client certificate: set --nats-cert and --nats-key", nil},
		{"client certificate from an unknown CA", pki.ServerOptions(t, true),
			natsconn.Config{CAFile: pki.CAFile, CertFile: clientCert, KeyFile: clientKey},
			natsconn.Config{CAFile: pki.CAFile, CertFile: strangerCert, KeyFile: strangerKey},
			"--nats-cert and --nats-key (HANGUP_NATS_CERT, HANGUP_NATS_KEY)", nil},
		{"TLS asked of a server without it", &server.Options{},
			natsconn.Config{}, natsconn.Config{CAFile: pki.CAFile},
			"--nats-url (HANGUP_NATS_URL) and --nats-ca (HANGUP_NATS_CA)", nats.ErrSecureConnWanted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := runServer(t, tc.server)
			require.NoError(t, connect(t, url, tc.right), "the right credential connects")

			err := connect(t, url, tc.wrong)
			require.Error(t, err)
			if tc.sentinelErr != nil {
				require.ErrorIs(t, err, tc.sentinelErr)
			}
			require.True(t, natsconn.IsAuthError(err), "%v", err)
			wrong := tc.wrong
			refused := wrong.Refused(err)
			var re *natsconn.RefusedError
			require.ErrorAs(t, refused, &re)
			require.ErrorIs(t, refused, err)
			require.Contains(t, refused.Error(), tc.check)
			require.Contains(t, refused.Error(), "retrying will not help")
			require.NotContains(t, refused.Error(), "s3cret")
		})
	}
}

// A server that is not there, or goes away, is not a refusal: the worker
// waits for it.
func TestUnreachableServerIsNotARefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "nats://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	err = connect(t, url, natsconn.Config{User: "hangup", Password: "s3cret"})
	require.ErrorIs(t, err, nats.ErrNoServers)
	require.False(t, natsconn.IsAuthError(err), "%v", err)
	c := natsconn.Config{}
	require.Same(t, err, c.Refused(err), "an error retrying may cure is returned as it is")

	// What the client reports when a server goes away during the TLS
	// handshake or right after it.
	cut := []error{
		fmt.Errorf("%w: %w", nats.ErrTLS, io.EOF),
		fmt.Errorf("%w: %w", nats.ErrTLS, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}),
	}
	for _, transient := range append(cut, nats.ErrTimeout, nats.ErrNoResponders, nil) {
		require.False(t, natsconn.IsAuthError(transient), "%v", transient)
	}
}

func TestRefusedNamesTheWayOfAuthenticatingInUse(t *testing.T) {
	err := nats.ErrAuthorization
	for cfg, want := range map[*natsconn.Config]string{
		{URL: "nats://u:s3cret@nats:4222"}:    "the user and password in --nats-url (HANGUP_NATS_URL)",
		{CertFile: "c.pem", KeyFile: "k.pem"}: "--nats-cert and --nats-key (HANGUP_NATS_CERT, HANGUP_NATS_KEY): a certificate the server maps to a user",
	} {
		msg := cfg.Refused(err).Error()
		require.Contains(t, msg, want)
		require.False(t, strings.Contains(msg, "s3cret"))
	}
	closed := fmt.Errorf("%w: connection closed by remote after TLS handshake: %w", nats.ErrTLS, io.EOF)
	require.True(t, natsconn.IsAuthError(closed), "a server that hangs up after the handshake refused the certificate")
	c := natsconn.Config{CredsFile: "/x/user.creds", CAFile: "/x/ca.pem"}
	msg := c.Refused(&os.PathError{Op: "open", Path: "/x/user.creds", Err: os.ErrNotExist}).Error()
	require.Contains(t, msg, "--nats-ca and --nats-creds (HANGUP_NATS_CA, HANGUP_NATS_CREDS)")
}

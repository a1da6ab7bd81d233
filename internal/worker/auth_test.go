package worker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
)

// Each kind of NATS authentication against a JetStream server that
// requires it: the right credential starts a worker (which provisions
// its streams and buckets through that connection), and a wrong one stops
// Start at once with an error naming the settings to check, never the
// secret, instead of retrying for ever.
func TestNATSAuthentication(t *testing.T) {
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
		name         string
		server       func() *server.Options
		right, wrong natsconn.Config
		check        string
	}{
		{"user and password", func() *server.Options { return &server.Options{Username: "hangup", Password: "s3cret"} },
			natsconn.Config{User: "hangup", Password: "s3cret"}, natsconn.Config{User: "hangup", Password: "wrong-s3cret"},
			"check --nats-user and --nats-password (HANGUP_NATS_USER, HANGUP_NATS_PASSWORD)"},
		{"token", func() *server.Options { return &server.Options{Authorization: "s3cret-token"} },
			natsconn.Config{Token: "s3cret-token"}, natsconn.Config{Token: "wrong-s3cret"},
			"check --nats-token (HANGUP_NATS_TOKEN)"},
		{"nkey", func() *server.Options { return &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}} },
			natsconn.Config{NKeySeedFile: seed}, natsconn.Config{NKeySeedFile: otherSeed},
			"check --nats-nkey (HANGUP_NATS_NKEY)"},
		{"credentials file", func() *server.Options { o := *operatorOpts; return &o },
			natsconn.Config{CredsFile: op.Creds(t, "worker")}, natsconn.Config{CredsFile: op.StrangerCreds(t, "stranger")},
			"check --nats-creds (HANGUP_NATS_CREDS)"},
		{"TLS server certificate", func() *server.Options { return pki.ServerOptions(t, false) },
			natsconn.Config{CAFile: pki.CAFile}, natsconn.Config{CAFile: otherPKI.CAFile},
			"check --nats-ca (HANGUP_NATS_CA)"},
		{"TLS client certificate", func() *server.Options { return pki.ServerOptions(t, true) },
			natsconn.Config{CAFile: pki.CAFile, CertFile: clientCert, KeyFile: clientKey},
			natsconn.Config{CAFile: pki.CAFile, CertFile: strangerCert, KeyFile: strangerKey},
			"--nats-cert and --nats-key (HANGUP_NATS_CERT, HANGUP_NATS_KEY)"},
		{"TLS client certificate missing", func() *server.Options { return pki.ServerOptions(t, true) },
			natsconn.Config{CAFile: pki.CAFile, CertFile: clientCert, KeyFile: clientKey},
			natsconn.Config{CAFile: pki.CAFile},
			"the server requires a client certificate: set --nats-cert and --nats-key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := runNATS(t, tc.server())
			url := srv.ClientURL()
			if tc.right.CAFile != "" {
				url = "tls://" + srv.Addr().String()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			right := tc.right
			right.URL = url
			w, err := New(Config{NATS: right, Provision: true, WorkerID: "right", CredentialsBucket: "meeting_credentials"}, Deps{})
			require.NoError(t, err)
			require.NoError(t, w.Start(ctx), "the right credential starts the worker")
			ready, why := w.readiness()
			require.True(t, ready, why)
			require.NoError(t, w.Stop(ctx))

			wrong := tc.wrong
			wrong.URL = url
			log, logs := observed(t)
			w, err = New(Config{NATS: wrong, Provision: true, WorkerID: "wrong"}, Deps{Logger: log})
			require.NoError(t, err)
			stopAtEnd(t, w)
			err = w.Start(ctx)
			require.Error(t, err)
			require.NotErrorIs(t, err, context.DeadlineExceeded, "stopped by the refusal, not by the deadline")
			var refused *natsconn.RefusedError
			require.ErrorAs(t, err, &refused)
			require.ErrorContains(t, err, "connect to NATS at ")
			require.ErrorContains(t, err, tc.check)
			require.NotContains(t, err.Error(), "s3cret")
			require.NotContains(t, logText(logs), "s3cret")
			require.Zero(t, retries(logs, "connect"), "a refusal is not retried with backoff")
		})
	}
}

package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestEnvironmentFillsFlagsNotGiven(t *testing.T) {
	s, err := parseRun([]string{"--max-batch", "7"}, env(map[string]string{
		"HANGUP_MAX_BATCH":    "50", // the flag wins
		"HANGUP_LINGER":       "120ms",
		"HANGUP_NATS_URL":     "nats://a:4222,nats://b:4222",
		"HANGUP_PROVISION":    "false",
		"HANGUP_API_BASE_URL": "http://127.0.0.1:8090",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 7, s.cfg.MaxBatch)
	require.Equal(t, 120*time.Millisecond, s.cfg.Linger)
	require.Equal(t, "nats://a:4222,nats://b:4222", s.cfg.NATS.URL)
	require.False(t, s.cfg.Provision)
	require.Equal(t, "http://127.0.0.1:8090", s.cfg.APIBaseURL)
}

func TestDefaults(t *testing.T) {
	s, err := parseRun(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 100, s.cfg.MaxBatch)
	require.Equal(t, 50*time.Millisecond, s.cfg.Linger)
	require.Equal(t, 32, s.cfg.APIConcurrency)
	require.Equal(t, 25*time.Second, s.cfg.ShutdownTimeout)
	require.True(t, s.cfg.Provision)
	require.Equal(t, "https://api.meeting.huaweicloud.com", s.cfg.APIBaseURL)
}

func TestInvalidSettingsNameFlagAndVariable(t *testing.T) {
	cases := map[string][]string{
		"--max-batch (HANGUP_MAX_BATCH)":             {"--max-batch", "0"},
		"--linger (HANGUP_LINGER)":                   {"--linger", "-1s"},
		"--api-concurrency (HANGUP_API_CONCURRENCY)": {"--api-concurrency", "0"},
		"--max-deliveries (HANGUP_MAX_DELIVERIES)":   {"--max-deliveries", "1"},
		"--log-format (HANGUP_LOG_FORMAT)":           {"--log-format", "xml"},
		"--api-base-url (HANGUP_API_BASE_URL)":       {"--api-base-url", "ftp://example.com"},
		"--api-ca-file (HANGUP_API_CA_FILE)":         {"--api-ca-file", "/nonexistent/ca.pem"},
		"--retry-initial (HANGUP_RETRY_INITIAL)":     {"--retry-initial", "1m", "--retry-max-interval", "1s"},
	}
	for want, args := range cases {
		_, err := parseRun(args, env(nil), &bytes.Buffer{})
		require.ErrorContains(t, err, want)
		require.Equal(t, 2, exitCode(err), "configuration errors exit 2")
	}
	_, err := parseRun(nil, env(map[string]string{"HANGUP_MAX_BATCH": "many"}), &bytes.Buffer{})
	require.ErrorContains(t, err, "HANGUP_MAX_BATCH")
}

func TestReadmeListsEveryRunFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	fs := newRunFlags(&settings{}, &bytes.Buffer{})
	fs.VisitAll(func(f *flag.Flag) {
		row := "| `--" + f.Name + "` | `" + envName(f.Name) + "` |"
		require.Contains(t, string(readme), row, "README configuration table lacks %s", f.Name)
	})
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, &out, &errOut)
	require.ErrorContains(t, err, "frobnicate")
	require.Equal(t, 2, exitCode(err))
	require.True(t, strings.HasPrefix(errOut.String(), "usage:"))
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"version"}, &out, &bytes.Buffer{}))
	require.True(t, strings.HasPrefix(out.String(), "hangup "))
}

// The defaults are a public contract: they come from worker.Config's
// SetDefaults now, and must not move.
func TestRunFlagDefaultsAreUnchanged(t *testing.T) {
	want := map[string]string{
		"nats-url": "nats://127.0.0.1:4222", "nats-creds": "", "nats-nkey": "", "nats-user": "", "nats-password": "", "nats-token": "",
		"nats-ca": "", "nats-cert": "", "nats-key": "", "api-base-url": "https://api.meeting.huaweicloud.com",
		"api-ca-file": "", "api-timeout": "10s", "api-trace-propagation": "false", "api-concurrency": "32", "api-rate": "0", "max-batch": "100",
		"linger": "50ms", "max-in-flight": "2000", "max-ack-pending": "10000", "breaker-threshold": "20", "conference-calls": "4",
		"defer-max": "1h0m0s", "credentials-bucket": "meeting_credentials", "token-bucket": "hangup_tokens",
		"partitions": "16", "pinned-ttl": "5s", "members-bucket": "hangup_workers", "member-ttl": "6s",
		"worker-api-concurrency": "0", "worker-api-rate": "0",
		"max-participants": "500", "max-deliveries": "5", "retry-initial": "200ms", "retry-max-interval": "10s",
		"retry-max-elapsed": "2m0s", "ack-wait": "30s", "shutdown-timeout": "25s", "provision": "true",
		"request-stream": "DISCONNECT_REQUESTS", "result-stream": "DISCONNECT_RESULTS", "dlq-stream": "DISCONNECT_DLQ",
		"request-subject-prefix": "meeting.disconnect.requests", "result-subject-prefix": "meeting.disconnect.results",
		"dlq-subject-prefix": "meeting.disconnect.dlq", "durable": "hangup-worker", "replicas": "1",
		"worker-id": "", "http-addr": ":9090", "pprof": "false", "log-format": "json", "log-level": "info",
	}
	got := map[string]string{}
	newRunFlags(&settings{}, &bytes.Buffer{}).VisitAll(func(f *flag.Flag) { got[f.Name] = f.DefValue })
	require.Equal(t, want, got)
}

// The table from settings to flags comes from the flag definitions: every
// flag but the command's own two writes into a field of worker.Config.
func TestEveryRunFlagNamesAWorkerSetting(t *testing.T) {
	s := &settings{}
	fs := newRunFlags(s, &bytes.Buffer{})
	names := newFlagNames(fs, &s.cfg)
	mapped := map[string]string{}
	for field, name := range names.byField {
		mapped[name] = field
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "log-format" || f.Name == "log-level" {
			return
		}
		require.Contains(t, mapped, f.Name)
	})
	require.Equal(t, "max-batch", names.byField["MaxBatch"])
	require.Equal(t, "replicas", names.byField["Topology.Replicas"])
	require.Equal(t, "durable", names.byField["Topology.Durable"])
}

// Each part validates its own settings; the command only names them.
func TestPartsErrorsNameFlagAndVariable(t *testing.T) {
	cases := []struct {
		part string
		args []string
		want string
	}{
		{"worker", []string{"--shutdown-timeout", "-1s"}, "--shutdown-timeout (HANGUP_SHUTDOWN_TIMEOUT): must be positive"},
		{"worker", []string{"--http-addr", "nope"}, `--http-addr (HANGUP_HTTP_ADDR): "nope" is not host:port`},
		{"worker", []string{"--pprof", "--http-addr", ""}, "--pprof (HANGUP_PPROF): needs --http-addr (HANGUP_HTTP_ADDR), on which the profiles are served"},
		{"worker", []string{"--nats-url", "::x"}, "--nats-url (HANGUP_NATS_URL): entry 1 is not a NATS URL"},
		{"worker", []string{"--max-ack-pending", "5"}, "--max-ack-pending (HANGUP_MAX_ACK_PENDING): must be at least --max-in-flight (HANGUP_MAX_IN_FLIGHT) (2000), got 5"},
		{"worker", []string{"--token-bucket", "meeting_credentials"}, "--token-bucket (HANGUP_TOKEN_BUCKET): must differ from --credentials-bucket (HANGUP_CREDENTIALS_BUCKET)"},
		{"topology", []string{"--replicas", "9"}, "--replicas (HANGUP_REPLICAS): must be between 1 and 5, got 9"},
		{"topology", []string{"--dlq-subject-prefix", "a.>"}, `--dlq-subject-prefix (HANGUP_DLQ_SUBJECT_PREFIX): "a.>" is not a literal subject prefix`},
		{"dispatcher", []string{"--max-batch", "20000"}, "--max-batch (HANGUP_MAX_BATCH): must be between 1 and 10000, got 20000"},
		{"dispatcher", []string{"--api-rate", "-1"}, "--api-rate (HANGUP_API_RATE): must not be negative, got -1"},
		{"dispatcher", []string{"--retry-max-elapsed", "-1s"}, "--retry-max-elapsed (HANGUP_RETRY_MAX_ELAPSED): must not be negative"},
		{"dispatcher", []string{"--defer-max", "-1h"}, "--defer-max (HANGUP_DEFER_MAX): must be positive"},
		{"consumer", []string{"--max-participants", "20000"}, "--max-participants (HANGUP_MAX_PARTICIPANTS): must be between 1 and 10000, got 20000"},
		{"consumer", []string{"--max-deliveries", "1"}, "--max-deliveries (HANGUP_MAX_DELIVERIES): must be at least 2, got 1"},
		{"meetingclient", []string{"--api-timeout", "-1s"}, "--api-timeout (HANGUP_API_TIMEOUT): meetingclient config: Timeout must not be negative"},
		{"meetingclient", []string{"--api-base-url", "https://user:pw@example.com"}, "--api-base-url (HANGUP_API_BASE_URL): meetingclient config: BaseURL must not hold user info"},
	}
	for _, tc := range cases {
		t.Run(tc.part+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseRun(tc.args, env(nil), &bytes.Buffer{})
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, 2, exitCode(err), "configuration errors exit 2")
			require.NotContains(t, err.Error(), "\n", "one error")
		})
	}
	// From the environment too, named the same way.
	_, err := parseRun(nil, env(map[string]string{"HANGUP_MAX_DELIVERIES": "1"}), &bytes.Buffer{})
	require.ErrorContains(t, err, "--max-deliveries (HANGUP_MAX_DELIVERIES): must be at least 2, got 1")
}

// worker.Config reads a zero as "the default"; a zero on the command line
// is refused instead, but for --linger, which has always passed it on.
func TestExplicitZeros(t *testing.T) {
	for _, name := range []string{"api-timeout", "max-in-flight", "max-ack-pending", "breaker-threshold", "defer-max",
		"max-participants", "max-deliveries", "retry-initial", "retry-max-interval", "retry-max-elapsed", "ack-wait",
		"shutdown-timeout", "replicas"} {
		_, err := parseRun([]string{"--" + name, "0"}, env(nil), &bytes.Buffer{})
		require.ErrorContains(t, err, "--"+name+" ("+envName(name)+"): must not be 0")
	}
	for _, name := range []string{"linger", "api-rate"} {
		_, err := parseRun([]string{"--" + name, "0"}, env(nil), &bytes.Buffer{})
		require.NoError(t, err, name)
	}
	_, err := parseRun([]string{"--nats-url", ""}, env(nil), &bytes.Buffer{})
	require.ErrorContains(t, err, "--nats-url (HANGUP_NATS_URL): must not be empty")
}

// Sending traceparent to the vendor is off unless the flag or its
// variable turns it on.
func TestAPITracePropagation(t *testing.T) {
	s, err := parseRun(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.False(t, s.cfg.APITracePropagation)
	s, err = parseRun([]string{"--api-trace-propagation"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.True(t, s.cfg.APITracePropagation)
	s, err = parseRun(nil, env(map[string]string{"HANGUP_API_TRACE_PROPAGATION": "true"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.True(t, s.cfg.APITracePropagation)
	_, err = parseRun(nil, env(map[string]string{"HANGUP_API_TRACE_PROPAGATION": "maybe"}), &bytes.Buffer{})
	require.ErrorContains(t, err, "HANGUP_API_TRACE_PROPAGATION")
}

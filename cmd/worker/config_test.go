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
	require.Equal(t, "nats://a:4222,nats://b:4222", s.cfg.NATSURL)
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

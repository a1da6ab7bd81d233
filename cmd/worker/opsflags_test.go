package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOpsCommandsReadSharedFlagsFromTheEnvironment(t *testing.T) {
	c := newOpsCommand("tail", "worker tail", &bytes.Buffer{}, "result-stream", "result-subject-prefix", "replicas")
	conference := c.fs.String("conference", "", "")
	err := c.parse([]string{"--result-stream", "FROM_FLAG", "extra", "--json"}, env(map[string]string{
		"HANGUP_RESULT_STREAM":         "FROM_ENV", // the flag wins
		"HANGUP_RESULT_SUBJECT_PREFIX": "acme.results",
		"HANGUP_NATS_URL":              "nats://a:4222,nats://b:4222",
		"HANGUP_NATS_USER":             "ops",
		"HANGUP_NATS_PASSWORD":         "secret",
		"HANGUP_CONFERENCE":            "914083136", // not a flag of run: not read
		"HANGUP_MAX_BATCH":             "7",         // not a flag of this command
	}))
	require.NoError(t, err)
	cfg := c.config()
	require.Equal(t, "FROM_FLAG", cfg.Topology.ResultStream)
	require.Equal(t, "acme.results", cfg.Topology.ResultSubjectPrefix)
	require.Equal(t, "nats://a:4222,nats://b:4222", cfg.NATS.URL)
	require.Equal(t, "ops", cfg.NATS.User)
	require.Equal(t, "secret", cfg.NATS.Password)
	require.Empty(t, *conference)
	require.Equal(t, 100, cfg.MaxBatch)
	require.True(t, c.json, "flags after arguments are parsed")
	require.Equal(t, []string{"extra"}, c.args)
	require.ErrorContains(t, c.refuseArgs(), "unexpected arguments: extra")
}

func TestOpsCommandsNameFlagAndVariableInErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--replicas", "9"}, nil, "--replicas (HANGUP_REPLICAS): must be between 1 and 5, got 9"},
		{nil, map[string]string{"HANGUP_REPLICAS": "9"}, "--replicas (HANGUP_REPLICAS): must be between 1 and 5, got 9"},
		{nil, map[string]string{"HANGUP_PARTITIONS": "many"}, "HANGUP_PARTITIONS: "},
		{[]string{"--partitions", "0"}, nil, "--partitions (HANGUP_PARTITIONS): must not be 0"},
		{[]string{"--dlq-subject-prefix", "a.>"}, nil, `--dlq-subject-prefix (HANGUP_DLQ_SUBJECT_PREFIX): "a.>" is not a literal subject prefix`},
		{[]string{"--nats-url", ""}, nil, "--nats-url (HANGUP_NATS_URL): must not be empty"},
		{[]string{"--nats-user", "u"}, nil, "--nats-user (HANGUP_NATS_USER): a user needs a password"},
		{[]string{"--nosuch"}, nil, "flag provided but not defined: -nosuch"},
	} {
		c := newOpsCommand("provision", "worker provision", &bytes.Buffer{}, provisionShared...)
		err := c.parse(tc.args, env(tc.env))
		require.ErrorContains(t, err, tc.want, "%v %v", tc.args, tc.env)
		require.Equal(t, 2, exitCode(err))
	}
}

func TestOpsCommandsHaveHelp(t *testing.T) {
	for _, cmd := range [][]string{{"publish"}, {"tail"}, {"dlq", "list"}, {"dlq", "show"}, {"dlq", "replay"}, {"provision"}} {
		var out, errOut bytes.Buffer
		require.NoError(t, run(context.Background(), append(cmd, "--help"), &out, &errOut))
		require.True(t, strings.HasPrefix(errOut.String(), "usage: worker "+strings.Join(cmd, " ")), errOut.String())
		require.Contains(t, errOut.String(), "-nats-url")
		require.Contains(t, errOut.String(), "-json")
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"dlq", "help"}, &out, &bytes.Buffer{}))
	require.Contains(t, out.String(), "replay  publish dead-lettered requests again")
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"dlq", "purge"}, &out, &errOut)
	require.EqualError(t, err, `dlq: unknown command "purge"`)
	require.Equal(t, 2, exitCode(err))
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"help"}, &out, &bytes.Buffer{}))
	for _, cmd := range []string{"publish", "tail", "dlq", "provision"} {
		require.Contains(t, out.String(), "\n  "+cmd+" ")
	}
}

func TestOpsCommandsRefuseFiltersThatDoNotApply(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tail", "--status", "done"}, `--status: must be succeeded, failed or expired, got "done"`},
		{[]string{"tail", "--dlq", "--status", "failed"}, "--status: dead letters have no status"},
		{[]string{"tail", "--reason", "rejected"}, "--reason: results have no reason"},
		{[]string{"tail", "--since", "yesterday"}, `invalid value "yesterday" for flag -since`},
		{[]string{"dlq", "list", "--reason", "lost"}, "--reason: must be invalid_request"},
		{[]string{"dlq", "list", "--since", "1h", "--until", "2h"}, "--until: "},
		{[]string{"dlq", "show"}, "dlq show: give one sequence number"},
		{[]string{"dlq", "show", "x"}, `"x" is not a sequence number of the dead-letter stream`},
		{[]string{"dlq", "replay", "3", "--reason", "rejected"}, "name dead letters by sequence or select them"},
		{[]string{"dlq", "replay", "--expires-in", "-1m"}, "--expires-in: must not be negative"},
		{[]string{"provision", "--out", "dir"}, "--out: only with --print"},
	} {
		var errOut bytes.Buffer
		err := run(ctx, append(tc.args, "--nats-url", "nats://127.0.0.1:1"), &bytes.Buffer{}, &errOut)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
		require.Equal(t, 2, exitCode(err), "%v", tc.args)
		require.False(t, errors.Is(err, flag.ErrHelp))
	}
}

// The README shows the usage text, and a section with an example for
// each operator command.
func TestReadmeDocumentsTheCommandLine(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	commands, _, _ := strings.Cut(usage, "\n\n'")
	require.Contains(t, string(readme), "## Command line\n\n```\n"+commands+"\n```\n")
	for _, cmd := range []string{"publish", "tail", "dlq", "provision"} {
		require.Contains(t, string(readme), "### worker "+cmd+"\n\n```sh\nworker "+cmd+" ")
	}
}

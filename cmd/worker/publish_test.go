package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/schemas"
)

// runOK runs the command line args with stdin and returns what it wrote
// to stdout; it fails the test on an error.
func runOK(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runWith(ctx, args, strings.NewReader(stdin), &out, &errOut)
	require.NoError(t, err, "worker %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out.String(), errOut.String())
	return out.String()
}

// lines decodes JSON lines.
func lines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m), s)
		out = append(out, m)
	}
	return out
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// A request published with `worker publish` is worked by a real worker
// against the simulator, and `worker tail` sees its result; a request
// that fails is listed by `worker dlq list`, replayed by `worker dlq
// replay`, and its replay's result names the original.
func TestOperatorCommandsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a worker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := natstest.Run(t)
	url := srv.ClientURL()
	sim, err := meetingsim.New(meetingsim.Config{})
	require.NoError(t, err)
	api := httptest.NewServer(sim.Handler())
	defer api.Close()
	const conf = "914083136"
	require.NoError(t, sim.AddMeeting(meetingsim.Meeting{ID: conf, HostPassword: "pw", Participants: []string{"p1", "p2", "p3", "bad-1"}}))
	token, err := sim.IssueToken(conf)
	require.NoError(t, err)
	tokenFile := writeFile(t, "token", token+"\n")
	nats := []string{"--nats-url", url}

	var outputs strings.Builder
	do := func(stdin string, args ...string) string {
		t.Helper()
		out := runOK(t, ctx, stdin, args...)
		outputs.WriteString(out)
		return out
	}

	out := do("", append([]string{"provision", "--partitions", "2"}, nats...)...)
	require.Contains(t, out, "consumer hangup-worker-p1 on DISCONNECT_REQUESTS\n")

	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	workerDone := make(chan error, 1)
	go func() {
		workerDone <- run(workerCtx, append([]string{"run", "--api-base-url", api.URL, "--http-addr", "", "--partitions", "2",
			"--provision=false", "--worker-id", "w1", "--log-level", "error"}, nats...), io.Discard, io.Discard)
	}()

	out = do("", append([]string{"publish", "--conference", conf, "--participants", "p1,p2", "--request-id", "e2e-1",
		"--reason", "spam", "--token-file", tokenFile, "--json"}, nats...)...)
	pub := lines(t, out)
	require.Len(t, pub, 1)
	require.Equal(t, "e2e-1", pub[0]["requestID"])
	require.Equal(t, 1.0, pub[0]["sequence"])

	// The NATS URL from the environment, as for run.
	t.Setenv("HANGUP_NATS_URL", url)
	out = do("", "tail", "--since", "1h", "--count", "1", "--conference", conf, "--json")
	ev := lines(t, out)[0]
	result := ev["result"].(map[string]any)
	require.Equal(t, "e2e-1", result["requestID"])
	require.Equal(t, "succeeded", result["status"])
	require.Equal(t, []string{"bad-1", "p3"}, sim.Online(conf))

	// A request the vendor refuses is dead-lettered.
	sim.RejectAsMalformed("bad-1")
	do("", "publish", "--conference", conf, "--participants", "bad-1", "--request-id", "e2e-2", "--token-file", tokenFile)
	out = do("", "tail", "--dlq", "--since", "1h", "--count", "1", "--json")
	dl := lines(t, out)[0]
	require.Equal(t, 1.0, dl["sequence"])
	require.Equal(t, "rejected", dl["deadLetter"].(map[string]any)["reason"])

	out = do("", "dlq", "list", "--json")
	listed := lines(t, out)
	require.Len(t, listed, 1)
	require.Equal(t, "e2e-2", listed[0]["requestID"])
	require.Equal(t, true, listed[0]["replayable"])
	out = do("", "dlq", "show", "1")
	require.Contains(t, out, `"[redacted]"`)

	// Fixed at the vendor's end; replayed, after a yes.
	sim.RejectAsMalformed()
	out = do("y\n", "dlq", "replay", "1", "--token-file", tokenFile)
	require.Contains(t, out, "#1 e2e-2 (conference "+conf+"): replayed as e2e-2.r1 (stream DISCONNECT_REQUESTS, sequence 3)\n")
	out = do("", "tail", "--since", "1h", "--status", "succeeded", "--count", "2", "--json")
	replayed := lines(t, out)[1]["result"].(map[string]any)
	require.Equal(t, "e2e-2.r1", replayed["requestID"])
	require.Equal(t, "e2e-2", replayed["replayOf"])
	require.Equal(t, []string{"p3"}, sim.Online(conf))

	out = do("", "dlq", "list")
	require.Regexp(t, `#1  \S+  `+conf+`  e2e-2  rejected  replayed as e2e-2\.r1 at `, out)
	var again bytes.Buffer
	err = runWith(ctx, []string{"dlq", "replay", "1", "--yes"}, strings.NewReader(""), &again, io.Discard)
	require.EqualError(t, err, "1 of the 1 dead letters named were not replayed")
	require.Contains(t, again.String(), "skipped: already replayed as e2e-2.r1")

	require.NotContains(t, outputs.String(), token, "no command prints the token")
	stopWorker()
	require.NoError(t, <-workerDone)
}

func TestPublishRefusesInvalidInputBeforePublishingAnything(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := natstest.Run(t)
	url := srv.ClientURL()
	runOK(t, ctx, "", "provision", "--nats-url", url, "--partitions", "1")

	stdin := `{"requestID":"r1","conferenceID":"c1","participantIDs":["a1"]}
{"requestID":"r2","conferenceID":"c1","participantIDs":["a1"],"dryRun":true}
{"requestID":"r3","conferenceID":"c1","participantIDs":["a1"]}
`
	var out, errOut bytes.Buffer
	err := runWith(ctx, []string{"publish", "--nats-url", url, "-"}, strings.NewReader(stdin), &out, &errOut)
	require.EqualError(t, err, `line 2: unknown field "dryRun"; a request has only requestID, conferenceID, participantIDs, reason, requestedBy, expiresAt and replayOf (the worker refuses what it might misread)`)
	require.Equal(t, 2, exitCode(err))
	require.Empty(t, out.String())

	for _, args := range [][]string{
		{"--conference", "c1", "--participants", "a1,John Smith"},
		{"--conference", "c.1", "--participants", "a1"},
		{"--conference", "c1", "--participants", "a1", "--request-id", "r/1"},
		{"--conference", "c1", "--participants", "a1", "--reason", "line\nbreak"},
		{"--conference", "c1", "--participants", strings.Repeat("a,", 500) + "a"},
		{"--conference", "c1", "--participants", "a1,a2", "--max-participants", "1"},
		{"--conference", "c1", "--participants", "a1", "--token-file", writeFile(t, "bad", "Bearer x")},
		{"--participants", "a1"},
		{"--conference", "c1", "--participants", "a1", "-"},
	} {
		err := runWith(ctx, append([]string{"publish", "--nats-url", url}, args...), strings.NewReader(stdin), &out, &errOut)
		require.Error(t, err, "%v", args)
		require.Equal(t, 2, exitCode(err), "%v: %v", args, err)
	}
	_, js := natstest.Connect(t, srv)
	st, err := js.Stream(ctx, schemas.DefaultRequestStream)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs, "nothing was published")

	// The valid lines alone are published, in order, with their sequences.
	valid := strings.Join([]string{strings.Split(stdin, "\n")[0], strings.Split(stdin, "\n")[2]}, "\n")
	got := runOK(t, ctx, valid, "publish", "--nats-url", url, "-")
	require.Equal(t, "published r1 (conference c1): stream DISCONNECT_REQUESTS, sequence 1\n"+
		"published r3 (conference c1): stream DISCONNECT_REQUESTS, sequence 2\n", got)
	// A fresh request ID when none is given.
	got = runOK(t, ctx, "", "publish", "--nats-url", url, "--conference", "c1", "--participants", "a1", "--expires-in", "10m", "--json")
	p := lines(t, got)[0]
	require.Regexp(t, `^cli-\w+$`, p["requestID"])
	msg, err := st.GetMsg(ctx, 3)
	require.NoError(t, err)
	req, err := schemas.DecodeRequest(schemas.DefaultRequestSubjectPrefix+".c1", msg.Data, schemas.DecodeOptions{})
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), *req.ExpiresAt, time.Minute)
	require.Equal(t, p["requestID"], msg.Header.Get(jetstream.MsgIDHeader))
}

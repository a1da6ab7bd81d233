package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/schemas"
)

// The simulated meetings: conf-0001..conf-0005 with p-0001..p-0040 online
// in each, all with the same host password.
const (
	meetings     = 5
	participants = 40
	hostPassword = "e2e-host-secret"
)

// Worker settings that make one worker slow enough to be stopped while it
// still has work: it holds at most maxInFlight requests (the rest wait in
// the stream), sends small batches, few at a time, to a simulator that
// answers after simLatency.
const (
	maxInFlight    = 20
	maxBatch       = 5
	apiConcurrency = 2
	simLatency     = 100 * time.Millisecond
	// shutdownTimeout bounds the worker's graceful stop; docker stop waits
	// longer before it kills.
	shutdownTimeout = 10 * time.Second
	stopTimeout     = 20 * time.Second
)

// TestWorkerContainerAgainstNATSContainer runs the three images on one
// network: NATS, the simulator and a worker. It publishes 200 requests,
// stops the worker with SIGTERM part-way, starts a second worker, and
// checks the outcome from outside: every request has exactly one
// succeeded result, there are no dead letters, and the simulator removed
// exactly the participants requested.
func TestWorkerContainerAgainstNATSContainer(t *testing.T) {
	p := requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	natsImg := buildImage(ctx, t, p, natsImage)
	simImg := buildImage(ctx, t, p, simImage)
	workerImg := buildImage(ctx, t, p, workerImage)

	nw, err := network.New(ctx)
	testcontainers.CleanupNetwork(t, nw)
	require.NoError(t, err)

	natsC := startNATS(ctx, t, nw, natsImg)
	simC := run(ctx, t, "meetingsim", simImg,
		onNetwork(nw, simAlias),
		exposeOnLoopback("8090/tcp"),
		testcontainers.WithCmd("--listen", "0.0.0.0:8090",
			"--meetings", strconv.Itoa(meetings), "--participants", strconv.Itoa(participants),
			"--password", hostPassword, "--latency", simLatency.String(), "--access-log=false"),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/_sim/state").
			WithPort("8090/tcp").WithStartupTimeout(30*time.Second)),
	)
	simURL := httpURL(ctx, t, simC, "8090/tcp")

	// Worker 1 is configured by flags, worker 2 by HANGUP_* variables, as
	// in deploy/kubernetes.
	w1 := startWorker(ctx, t, nw, workerImg, "e2e-worker-1", testcontainers.WithCmd("run",
		"--nats-url", "nats://"+natsAlias+":4222",
		"--api-base-url", "http://"+simAlias+":8090",
		"--log-format", "console",
		"--worker-id", "e2e-worker-1",
		"--max-in-flight", strconv.Itoa(maxInFlight),
		"--max-batch", strconv.Itoa(maxBatch),
		"--api-concurrency", strconv.Itoa(apiConcurrency),
		"--shutdown-timeout", shutdownTimeout.String(),
	))

	_, js := connect(ctx, t, natsC)
	tokens := controlTokens(ctx, t, simURL, meetings)
	sent := publishRequests(ctx, t, js, tokens)

	// Stop worker 1 once it has done some of the work but not all.
	require.Eventually(t, func() bool { return streamMsgs(ctx, js, schemas.DefaultResultStream) >= 40 },
		60*time.Second, 20*time.Millisecond, "worker 1 published fewer than 40 results")
	timeout := stopTimeout
	require.NoError(t, w1.Stop(ctx, &timeout), "docker stop (SIGTERM) worker 1")
	state, err := w1.State(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, state.ExitCode, "worker 1 did not stop gracefully (137 is a SIGKILL after %s)", stopTimeout)
	doneBy1 := streamMsgs(ctx, js, schemas.DefaultResultStream)
	require.Less(t, doneBy1, uint64(len(sent)), "worker 1 finished everything before it was stopped: the test no longer stops it part-way")
	t.Logf("worker 1 stopped after %d of %d results", doneBy1, len(sent))

	startWorker(ctx, t, nw, workerImg, "e2e-worker-2", testcontainers.WithEnv(map[string]string{
		"HANGUP_NATS_URL":         "nats://" + natsAlias + ":4222",
		"HANGUP_API_BASE_URL":     "http://" + simAlias + ":8090",
		"HANGUP_LOG_FORMAT":       "console",
		"HANGUP_WORKER_ID":        "e2e-worker-2",
		"HANGUP_MAX_IN_FLIGHT":    strconv.Itoa(maxInFlight),
		"HANGUP_MAX_BATCH":        strconv.Itoa(maxBatch),
		"HANGUP_API_CONCURRENCY":  strconv.Itoa(apiConcurrency),
		"HANGUP_SHUTDOWN_TIMEOUT": shutdownTimeout.String(),
	}))
	require.Eventually(t, func() bool { return streamMsgs(ctx, js, schemas.DefaultResultStream) >= uint64(len(sent)) },
		90*time.Second, 100*time.Millisecond, "not every request got a result")

	// Check the invariant from outside.
	disconnects := simDisconnects(ctx, t, simURL)
	removed := map[string]map[string]bool{}
	for _, d := range disconnects {
		if removed[d.ConferenceID] == nil {
			removed[d.ConferenceID] = map[string]bool{}
		}
		removed[d.ConferenceID][d.ParticipantID] = true
	}
	snap, err := audit.Read(ctx, js, schemas.DefaultResultStream, schemas.DefaultDeadLetterStream)
	require.NoError(t, err)
	secrets := make([]string, 0, len(tokens))
	for _, tok := range tokens {
		secrets = append(secrets, tok)
	}
	rep := audit.Check(snap, audit.Expect{Valid: sent, Disconnected: removed, Secrets: secrets})
	require.Empty(t, rep.Violations)
	require.Equal(t, len(sent), rep.ByStatus[schemas.StatusSucceeded], "succeeded results; by status: %v", rep.ByStatus)
	require.Len(t, snap.Results, len(sent))
	require.Empty(t, snap.DeadLetters)
	require.Equal(t, requested(sent), removed, "the simulator removed someone else, or missed someone")
	require.Len(t, disconnects, len(sent), "someone was removed twice")

	byWorker := map[string]int{}
	for _, r := range snap.Results {
		byWorker[r.WorkerID]++
	}
	require.Len(t, byWorker, 2, "results by worker: %v", byWorker)
	require.Positive(t, byWorker["e2e-worker-1"])
	require.Positive(t, byWorker["e2e-worker-2"])
	t.Logf("results by worker: %v; latency median %s, p99 %s", byWorker, rep.LatencyMedian, rep.LatencyP99)
}

// startWorker runs a worker container and waits until its /readyz answers
// 200 on the published port.
func startWorker(ctx context.Context, t *testing.T, nw *testcontainers.DockerNetwork, image, id string, config testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	c := run(ctx, t, id, image, onNetwork(nw, id), exposeOnLoopback("9090/tcp"), config)
	readyz := httpURL(ctx, t, c, "9090/tcp") + "/readyz"
	require.Eventually(t, func() bool {
		status, _, err := httpGet(ctx, readyz, nil)
		return err == nil && status == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "%s: %s never answered 200", id, readyz)
	return c
}

// controlTokens asks the simulator's token API for a control token of each
// of its n meetings, as a producer would before publishing.
func controlTokens(ctx context.Context, t *testing.T, simURL string, n int) map[string]string {
	t.Helper()
	tokens := map[string]string{}
	for m := 1; m <= n; m++ {
		conf := fmt.Sprintf("conf-%04d", m)
		status, body, err := httpGet(ctx, simURL+"/v1/mmc/control/conferences/token?conferenceID="+url.QueryEscape(conf),
			map[string]string{"X-Password": hostPassword, "X-Login-Type": "1"})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, "token of %s: %s", conf, trimmed(body))
		var answer struct {
			Data struct {
				Token string `json:"token"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &answer), "token of %s: %s", conf, trimmed(body))
		require.NotEmpty(t, answer.Data.Token, "token of %s: %s", conf, trimmed(body))
		tokens[conf] = answer.Data.Token
	}
	return tokens
}

// publishRequests publishes one request per participant of every meeting:
// meetings*participants requests, interleaved over the meetings. It
// returns what it sent, by request ID.
func publishRequests(ctx context.Context, t *testing.T, js jetstream.JetStream, tokens map[string]string) map[string]audit.Sent {
	t.Helper()
	sent := map[string]audit.Sent{}
	for i := range meetings * participants {
		conf := fmt.Sprintf("conf-%04d", i%meetings+1)
		req := schemas.Request{
			RequestID:      fmt.Sprintf("e2e-%04d", i),
			ConferenceID:   conf,
			ParticipantIDs: []string{fmt.Sprintf("p-%04d", i/meetings+1)},
			Reason:         "end-to-end test",
		}
		data, err := json.Marshal(req)
		require.NoError(t, err)
		msg := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + "." + conf)
		msg.Data = data
		msg.Header.Set(schemas.MsgIDHeader, req.RequestID)
		msg.Header.Set(schemas.TokenHeader, tokens[conf])
		ack, err := js.PublishMsg(ctx, msg)
		require.NoError(t, err, "publish %s", req.RequestID)
		require.False(t, ack.Duplicate, "request %s was taken for a duplicate", req.RequestID)
		sent[req.RequestID] = audit.Sent{ConferenceID: conf, ParticipantIDs: req.ParticipantIDs}
	}
	return sent
}

// streamMsgs is how many messages a stream holds; 0 if it cannot tell.
func streamMsgs(ctx context.Context, js jetstream.JetStream, name string) uint64 {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// disconnect is an entry of the simulator's GET /_sim/disconnects.
type disconnect struct {
	ConferenceID  string `json:"conferenceID"`
	ParticipantID string `json:"participantID"`
}

// simDisconnects is every participant the simulator really removed.
func simDisconnects(ctx context.Context, t *testing.T, simURL string) []disconnect {
	t.Helper()
	status, body, err := httpGet(ctx, simURL+"/_sim/disconnects", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, trimmed(body))
	var list []disconnect
	require.NoError(t, json.Unmarshal(body, &list), trimmed(body))
	return list
}

// requested is every participant asked for, per conference.
func requested(sent map[string]audit.Sent) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, s := range sent {
		if out[s.ConferenceID] == nil {
			out[s.ConferenceID] = map[string]bool{}
		}
		for _, p := range s.ParticipantIDs {
			out[s.ConferenceID][p] = true
		}
	}
	return out
}

package compose

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	tccompose "github.com/testcontainers/testcontainers-go/modules/compose"
	"github.com/testcontainers/testcontainers-go/wait"
)

// requireDockerEnv makes a missing Docker engine a failure instead of a skip.
const requireDockerEnv = "HANGUP_REQUIRE_DOCKER"

// What deploy/compose.yaml runs: the simulator's meetings, participants
// and host password, and the services.
const (
	conference   = "conf-0001"
	hostPassword = "host-secret"
)

var (
	services = []string{"nats", "meetingsim", "worker-1", "worker-2"}
	// portEnv are the variables that move the stack's host ports; 0 lets
	// the engine pick free ones, so the test never collides with what
	// else runs on the machine.
	portEnv = []string{"HANGUP_NATS_PORT", "HANGUP_NATS_MONITOR_PORT", "HANGUP_SIM_PORT", "HANGUP_WORKER1_PORT", "HANGUP_WORKER2_PORT"}
)

// The Compose file as an operator runs it: its images built by
// deploy/build-images.sh, NATS, the simulator and two workers up and
// ready; a request published with `worker publish` gets a succeeded
// result that `worker tail` reads, the simulator really removed the
// participants, and the stack comes down leaving no container, network
// or volume behind.
func TestComposeStackDisconnectsParticipants(t *testing.T) {
	p := requireDocker(t)
	root := moduleRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	tag := runTag()
	buildImages(ctx, t, p, root, tag)
	worker := filepath.Join(t.TempDir(), "worker")
	goBuild(ctx, t, root, worker, "./cmd/worker")

	project := "hangup-" + tag
	stack, err := tccompose.NewDockerComposeWith(
		tccompose.WithStackFiles(filepath.Join(root, "deploy", "compose.yaml")),
		tccompose.StackIdentifier(project))
	require.NoError(t, err)
	down := func(ctx context.Context) error {
		return stack.Down(ctx, tccompose.RemoveOrphans(true), tccompose.RemoveVolumes(true))
	}
	isDown := false
	t.Cleanup(func() {
		if !isDown {
			if err := down(context.Background()); err != nil {
				t.Logf("compose down: %v", err)
			}
		}
		_ = stack.Close()
	})
	env := map[string]string{"HANGUP_TAG": tag}
	for _, k := range portEnv {
		env[k] = "0"
	}
	ready := func() wait.Strategy {
		return wait.ForHTTP("/readyz").WithPort("9090/tcp").WithStartupTimeout(2 * time.Minute)
	}
	err = stack.WithEnv(env).
		WaitForService("nats", wait.ForHTTP("/healthz").WithPort("8222/tcp").WithStartupTimeout(time.Minute)).
		WaitForService("meetingsim", wait.ForHTTP("/_sim/disconnects").WithPort("8090/tcp").WithStartupTimeout(time.Minute)).
		WaitForService("worker-1", ready()).
		WaitForService("worker-2", ready()).
		Up(ctx)
	if err != nil {
		logServices(ctx, t, stack)
	}
	require.NoError(t, err, "compose up")
	require.ElementsMatch(t, services, stack.Services())

	natsURL := "nats://" + endpoint(ctx, t, stack, "nats", "4222/tcp")
	simURL := "http://" + endpoint(ctx, t, stack, "meetingsim", "8090/tcp")

	// A control token from the simulator's token API, in a file for
	// --token-file, as a moderation system would pass it.
	token := controlToken(ctx, t, simURL)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))

	requestID := "req-" + tag
	published := runWorker(ctx, t, worker, natsURL, "publish", "--json",
		"--conference", conference, "--participants", "p-0001,p-0002", "--request-id", requestID, "--token-file", tokenFile)
	require.Contains(t, published, requestID, "publish names the request")

	tailCtx, cancelTail := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTail()
	tailed := runWorker(tailCtx, t, worker, natsURL, "tail", "--json", "--count", "1", "--since", "1h", "--conference", conference)
	lines := strings.Split(strings.TrimSpace(tailed), "\n")
	require.Len(t, lines, 1, "tail --count 1 prints one event:\n%s", tailed)
	var event struct {
		Stream string `json:"stream"`
		Result struct {
			RequestID    string   `json:"requestID"`
			ConferenceID string   `json:"conferenceID"`
			Status       string   `json:"status"`
			Disconnected []string `json:"disconnected"`
			AlreadyGone  []string `json:"alreadyGone"`
			WorkerID     string   `json:"workerID"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &event), "tail --json prints the result event: %s", lines[0])
	require.Equal(t, "DISCONNECT_RESULTS", event.Stream)
	result := event.Result
	require.Equal(t, requestID, result.RequestID)
	require.Equal(t, conference, result.ConferenceID)
	require.Equal(t, "succeeded", result.Status)
	require.ElementsMatch(t, []string{"p-0001", "p-0002"}, result.Disconnected)
	require.Empty(t, result.AlreadyGone)
	require.Contains(t, []string{"worker-1", "worker-2"}, result.WorkerID)
	for _, out := range []string{published, tailed} {
		require.NotContains(t, out, token, "the control token is never printed")
	}

	// The simulator removed exactly the two participants.
	var removed []struct {
		ConferenceID  string `json:"conferenceID"`
		ParticipantID string `json:"participantID"`
	}
	getJSON(ctx, t, simURL+"/_sim/disconnects", nil, &removed)
	var who []string
	for _, d := range removed {
		require.Equal(t, conference, d.ConferenceID)
		who = append(who, d.ParticipantID)
	}
	require.ElementsMatch(t, []string{"p-0001", "p-0002"}, who)

	require.NoError(t, down(ctx), "compose down")
	isDown = true
	requireNothingLeft(ctx, t, p, project)
}

// requireDocker skips t under -short or when no Docker engine or docker
// CLI is there (fails it instead when HANGUP_REQUIRE_DOCKER=1), and returns
// a provider that talks to the engine.
func requireDocker(t *testing.T) *testcontainers.DockerProvider {
	t.Helper()
	if testing.Short() {
		t.Skip("builds images and runs a Compose stack; skipped with -short")
	}
	missing := func(err error) {
		if os.Getenv(requireDockerEnv) == "1" {
			t.Fatalf("%s=1, but %v", requireDockerEnv, err)
		}
		t.Skipf("%v (set %s=1 to fail instead)", err, requireDockerEnv)
	}
	p, err := newProvider()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = p.Health(ctx)
		cancel()
	}
	if err != nil {
		missing(fmt.Errorf("no Docker engine answers: %w", err))
	}
	t.Cleanup(func() { _ = p.Close() })
	if _, err := exec.LookPath("docker"); err != nil {
		missing(fmt.Errorf("deploy/build-images.sh needs the docker CLI: %w", err))
	}
	return p
}

// newProvider turns a panic of testcontainers' engine discovery into an
// error.
func newProvider() (p *testcontainers.DockerProvider, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("docker provider: %v", r)
		}
	}()
	return testcontainers.NewDockerProvider()
}

// runTag names the images and the Compose project of one test run, so
// that concurrent runs do not touch each other's.
func runTag() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "compose-" + hex.EncodeToString(b)
}

// buildImages builds hangup/worker, hangup/meetingsim and
// hangup/nats-server tagged tag with deploy/build-images.sh, the way the
// Compose file's header says, and removes them when t ends (after the
// stack, whose cleanup is registered later and so runs first).
func buildImages(ctx context.Context, t *testing.T, p *testcontainers.DockerProvider, root, tag string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "deploy", "build-images.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TAG="+tag, "VERSION=compose-test", "IMAGE_PREFIX=hangup")
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err != nil {
		// The stack talks plain HTTP to the simulator; a host without a CA
		// bundle still builds the image.
		bundle := filepath.Join(t.TempDir(), "ca.crt")
		require.NoError(t, os.WriteFile(bundle, []byte("# no CA bundle on the test host\n"), 0o644))
		cmd.Env = append(cmd.Env, "CA_BUNDLE="+bundle)
	}
	t.Cleanup(func() {
		for _, name := range []string{"worker", "meetingsim", "nats-server"} {
			ref := "hangup/" + name + ":" + tag
			if _, err := p.Client().ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
				t.Logf("remove image %s: %v", ref, err)
			}
		}
	})
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "deploy/build-images.sh:\n%s", out)
}

// goBuild builds the binary of pkg (relative to the module root) at out.
func goBuild(ctx context.Context, t *testing.T, root, out, pkg string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	output, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s:\n%s", pkg, output)
}

// moduleRoot is the directory of go.mod: the test runs in
// internal/e2e/compose.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	return root
}

// endpoint is host:port of a service's published port.
func endpoint(ctx context.Context, t *testing.T, stack *tccompose.DockerCompose, service, port string) string {
	t.Helper()
	c, err := stack.ServiceContainer(ctx, service)
	require.NoError(t, err)
	ep, err := c.PortEndpoint(ctx, port, "")
	require.NoError(t, err)
	return ep
}

// controlToken gets a control token for the conference from the
// simulator's token API with the host password.
func controlToken(ctx context.Context, t *testing.T, simURL string) string {
	t.Helper()
	var resp struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	getJSON(ctx, t, simURL+"/v1/mmc/control/conferences/token?conferenceID="+url.QueryEscape(conference),
		http.Header{"X-Password": {hostPassword}, "X-Login-Type": {"1"}}, &resp)
	require.NotEmpty(t, resp.Data.Token)
	return resp.Data.Token
}

func getJSON(ctx context.Context, t *testing.T, u string, h http.Header, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", u, body)
	require.NoError(t, json.Unmarshal(body, v), "GET %s: %s", u, body)
}

// runWorker runs the worker binary against the stack's NATS server and
// returns what it printed on stdout.
func runWorker(ctx context.Context, t *testing.T, bin, natsURL string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "HANGUP_") })
	cmd.Env = append(env, "HANGUP_NATS_URL="+natsURL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "worker %s:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String()
}

// logServices logs the output of every service that has a container.
func logServices(ctx context.Context, t *testing.T, stack *tccompose.DockerCompose) {
	t.Helper()
	for _, s := range services {
		c, err := stack.ServiceContainer(ctx, s)
		if err != nil {
			continue
		}
		rc, err := c.Logs(ctx)
		if err != nil {
			continue
		}
		out, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
		_ = rc.Close()
		t.Logf("%s:\n%s", s, out)
	}
}

// requireNothingLeft fails t if a container, network or volume of the
// Compose project is still there.
func requireNothingLeft(ctx context.Context, t *testing.T, p *testcontainers.DockerProvider, project string) {
	t.Helper()
	label := make(client.Filters).Add("label", "com.docker.compose.project="+project)
	cs, err := p.Client().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: label})
	require.NoError(t, err)
	require.Empty(t, cs.Items, "containers of %s after down", project)
	ns, err := p.Client().NetworkList(ctx, client.NetworkListOptions{Filters: label})
	require.NoError(t, err)
	require.Empty(t, ns.Items, "networks of %s after down", project)
	vs, err := p.Client().VolumeList(ctx, client.VolumeListOptions{Filters: label})
	require.NoError(t, err)
	require.Empty(t, vs.Items, "volumes of %s after down", project)
}

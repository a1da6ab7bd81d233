package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	dockernetwork "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// requireDockerEnv makes a missing Docker engine a failure instead of a skip.
const requireDockerEnv = "HANGUP_REQUIRE_DOCKER"

// Network aliases of the containers, as the worker sees them.
const (
	natsAlias = "nats"
	simAlias  = "meetingsim"
)

// requireDocker skips t under -short or when no Docker engine answers
// (fails it instead when HANGUP_REQUIRE_DOCKER=1), and returns a provider
// that talks to the engine.
func requireDocker(t *testing.T) *testcontainers.DockerProvider {
	t.Helper()
	if testing.Short() {
		t.Skip("builds images and runs containers; skipped with -short")
	}
	p, err := newProvider()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = p.Health(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv(requireDockerEnv) == "1" {
			t.Fatalf("%s=1, but no Docker engine answers: %v", requireDockerEnv, err)
		}
		t.Skipf("no Docker engine answers (set %s=1 to fail instead): %v", requireDockerEnv, err)
	}
	t.Cleanup(func() { _ = p.Close() })
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

// imageSpec says how to build one of the images of deploy/docker: a static
// binary plus whatever else its Dockerfile copies, in a fresh build context.
type imageSpec struct {
	// name is the image's and the binary's name, and the Dockerfile is
	// deploy/docker/<name>.Dockerfile.
	name string
	// pkg is the Go package of the binary.
	pkg string
	// setup adds the other files the Dockerfile copies to the context.
	setup func(t *testing.T, dir string)
}

var (
	workerImage = imageSpec{name: "worker", pkg: "./cmd/worker", setup: func(t *testing.T, dir string) {
		// The test talks plain HTTP to the simulator; a host without a
		// CA bundle still builds the image.
		bundle, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
		if err != nil {
			bundle = []byte("# no CA bundle on the test host\n")
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ca-certificates.crt"), bundle, 0o644))
	}}
	simImage  = imageSpec{name: "meetingsim", pkg: "./cmd/meetingsim"}
	natsImage = imageSpec{name: "nats-server", pkg: "github.com/nats-io/nats-server/v2", setup: func(t *testing.T, dir string) {
		copyFile(t, filepath.Join(moduleRoot(t), "deploy", "nats", "nats-server.conf"), filepath.Join(dir, "nats-server.conf"))
		require.NoError(t, os.Mkdir(filepath.Join(dir, "data"), 0o755))
	}}
)

// runTag tags the images of one test process, so that concurrent runs do
// not remove each other's images.
var runTag = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "e2e-" + hex.EncodeToString(b)
}()

// buildImage builds spec's binary with CGO_ENABLED=0 and its image from
// the Dockerfile in deploy/docker, and removes the image when t ends
// (after the containers, whose cleanups are registered later and so run
// first).
func buildImage(ctx context.Context, t *testing.T, p *testcontainers.DockerProvider, spec imageSpec) string {
	t.Helper()
	dir := t.TempDir()
	goBuild(ctx, t, filepath.Join(dir, spec.name), spec.pkg)
	copyFile(t, filepath.Join(moduleRoot(t), "deploy", "docker", spec.name+".Dockerfile"), filepath.Join(dir, "Dockerfile"))
	if spec.setup != nil {
		spec.setup(t, dir)
	}
	version := "e2e"
	var buildLog bytes.Buffer
	tag, err := p.BuildImage(ctx, &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context:        dir,
		Dockerfile:     "Dockerfile",
		Repo:           "hangup-e2e/" + spec.name,
		Tag:            runTag,
		BuildArgs:      map[string]*string{"VERSION": &version},
		BuildLogWriter: &buildLog,
		// Both worker containers use the image; it is removed below.
		KeepImage: true,
	}})
	require.NoError(t, err, "docker build %s:\n%s", spec.name, buildLog.String())
	t.Cleanup(func() {
		_, err := p.Client().ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if err != nil {
			t.Logf("remove image %s: %v", tag, err)
		}
	})
	return tag
}

// goBuild builds a static binary of pkg (relative to the module root) at out.
func goBuild(ctx context.Context, t *testing.T, out, pkg string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/hangup-dev/hangup/internal/buildinfo.version=e2e",
		"-o", out, pkg)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	output, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s:\n%s", pkg, output)
}

// moduleRoot is the directory of go.mod: the tests run in internal/e2e.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	return root
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, data, 0o644))
}

// onNetwork attaches a container to nw under alias; nil nw leaves it on
// the default bridge.
func onNetwork(nw *testcontainers.DockerNetwork, alias string) testcontainers.ContainerCustomizer {
	if nw == nil {
		return testcontainers.CustomizeRequestOption(func(*testcontainers.GenericContainerRequest) error { return nil })
	}
	return network.WithNetwork([]string{alias}, nw)
}

// exposeOnLoopback publishes ports on ephemeral ports of 127.0.0.1 only,
// not on every interface of the host.
func exposeOnLoopback(ports ...string) testcontainers.CustomizeRequestOption {
	return func(req *testcontainers.GenericContainerRequest) error {
		req.ExposedPorts = append(req.ExposedPorts, ports...)
		prev := req.HostConfigModifier
		req.HostConfigModifier = func(hc *container.HostConfig) {
			if prev != nil {
				prev(hc)
			}
			if hc.PortBindings == nil {
				hc.PortBindings = dockernetwork.PortMap{}
			}
			for _, p := range ports {
				port := dockernetwork.MustParsePort(p)
				hc.PortBindings[port] = []dockernetwork.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "0"}}
			}
		}
		return nil
	}
}

// run starts a container of image, removes it when t ends, and prints its
// logs first if t failed.
func run(ctx context.Context, t *testing.T, name, image string, opts ...testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	c, err := testcontainers.Run(ctx, image, opts...)
	testcontainers.CleanupContainer(t, c)
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s logs:\n%s", name, containerLogs(c))
			}
		})
	}
	require.NoError(t, err, "start %s", name)
	return c
}

// containerLogs returns what a container printed, or why it cannot.
func containerLogs(c *testcontainers.DockerContainer) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := c.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return string(b) + "\n(reading logs: " + err.Error() + ")"
	}
	return string(b)
}

// startNATS runs the nats-server image and waits until JetStream answers
// its health check.
func startNATS(ctx context.Context, t *testing.T, nw *testcontainers.DockerNetwork, image string) *testcontainers.DockerContainer {
	t.Helper()
	return run(ctx, t, "nats-server", image,
		onNetwork(nw, natsAlias),
		exposeOnLoopback("4222/tcp", "8222/tcp"),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/healthz?js-enabled-only=true").
			WithPort("8222/tcp").WithStartupTimeout(30*time.Second)),
	)
}

// connect connects the test process to the NATS container's mapped port.
func connect(ctx context.Context, t *testing.T, c *testcontainers.DockerContainer) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	url, err := c.PortEndpoint(ctx, "4222/tcp", "nats")
	require.NoError(t, err)
	nc, err := nats.Connect(url, nats.Name("hangup e2e test"))
	require.NoError(t, err, "connect to %s", url)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// httpURL is http://host:port of a container's exposed port, as the test
// process reaches it.
func httpURL(ctx context.Context, t *testing.T, c *testcontainers.DockerContainer, port string) string {
	t.Helper()
	u, err := c.PortEndpoint(ctx, port, "http")
	require.NoError(t, err)
	return u
}

// httpGet returns the status and body of GET url, with extra headers.
func httpGet(ctx context.Context, url string, header map[string]string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// trimmed shortens s for a failure message.
func trimmed(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

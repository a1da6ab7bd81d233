package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/internal/worker"
)

// provisionConfig is what a worker with cfg provisions.
func provisionConfig(cfg worker.Config) ops.ProvisionConfig {
	cfg.SetDefaults()
	return ops.ProvisionConfig{
		Topology: cfg.Topology, DeferMax: cfg.DeferMax, MembersBucket: cfg.MembersBucket, MemberTTL: cfg.MemberTTL,
		CredentialsBucket: cfg.CredentialsBucket, TokenBucket: cfg.TokenBucket,
	}
}

// definitionsJSON is defs as JSON, for comparing the servers' answers.
func definitionsJSON(t *testing.T, defs []ops.Definition) []string {
	t.Helper()
	out := make([]string, len(defs))
	for i, d := range defs {
		b, err := json.Marshal(d)
		require.NoError(t, err)
		out[i] = string(b)
	}
	return out
}

func TestProvisionCreatesWhatRunProvisionCreates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := worker.Config{
		APIBaseURL: "http://127.0.0.1:1", CredentialsBucket: "meeting_credentials", Provision: true, WorkerID: "w1",
		DeferMax: 10 * time.Minute, MemberTTL: 3 * time.Second, AckWait: 10 * time.Second, MaxAckPending: 3000,
		Topology: topology.Config{Partitions: 3, Durable: "hw", RequestStream: "REQ", PinnedTTL: 2 * time.Second},
	}

	// A worker started with Provision, on one server.
	byWorker := natstest.Run(t)
	wcfg := cfg
	wcfg.NATS = natsconn.Config{URL: byWorker.ClientURL()}
	w, err := worker.New(wcfg, worker.Deps{})
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	require.NoError(t, w.Stop(ctx))
	_, wjs := natstest.Connect(t, byWorker)
	pc := provisionConfig(cfg)
	// The replay bucket is not the worker's: make it as Provision does.
	_, err = ops.EnsureReplayBucket(ctx, wjs, "", 1, pc.Topology.DeadLetterMaxAge)
	require.NoError(t, err)
	want, err := ops.Definitions(ctx, wjs, pc)
	require.NoError(t, err)

	// Provision, on another.
	byOps := natstest.Run(t)
	_, ojs := natstest.Connect(t, byOps)
	require.NoError(t, ops.Provision(ctx, ojs, pc))
	got, err := ops.Definitions(ctx, ojs, pc)
	require.NoError(t, err)
	require.Equal(t, definitionsJSON(t, want), definitionsJSON(t, got))
	require.Len(t, got, 3+1+3+5, "3 streams, the shared durable, 3 partitions, 5 buckets")

	// Provisioning again changes nothing.
	require.NoError(t, ops.Provision(ctx, ojs, pc))
	again, err := ops.Definitions(ctx, ojs, pc)
	require.NoError(t, err)
	require.Equal(t, definitionsJSON(t, got), definitionsJSON(t, again))

	// What --print works out without a server of ours is the same.
	printed, err := ops.PrintDefinitions(ctx, pc)
	require.NoError(t, err)
	require.Equal(t, definitionsJSON(t, got), definitionsJSON(t, printed))
}

func TestPrintedDefinitionsCreateTheSameOnAnotherServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pc := provisionConfig(worker.Config{Topology: topology.Config{Partitions: 2}})
	pc.CredentialsBucket = "meeting_credentials"
	defs, err := ops.PrintDefinitions(ctx, pc)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, ops.WriteDefinitions(ops.Output{W: &out, JSON: true}, defs, true))

	// Each line decodes into the nats.go types, and creates them.
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	dec := json.NewDecoder(&out)
	streams, consumers := 0, 0
	for dec.More() {
		var line struct {
			Kind   string          `json:"kind"`
			Stream string          `json:"stream"`
			Config json.RawMessage `json:"config"`
		}
		require.NoError(t, dec.Decode(&line))
		switch line.Kind {
		case "stream":
			var sc jetstream.StreamConfig
			require.NoError(t, json.Unmarshal(line.Config, &sc))
			_, err := js.CreateStream(ctx, sc)
			require.NoError(t, err, sc.Name)
			streams++
		case "consumer":
			var cc jetstream.ConsumerConfig
			require.NoError(t, json.Unmarshal(line.Config, &cc))
			_, err := js.CreateConsumer(ctx, line.Stream, cc)
			require.NoError(t, err, cc.Name)
			consumers++
		default:
			t.Fatalf("kind %q", line.Kind)
		}
	}
	require.Equal(t, 3+5, streams)
	require.Equal(t, 1+2, consumers)
	got, err := ops.Definitions(ctx, js, pc)
	require.NoError(t, err)
	require.Equal(t, definitionsJSON(t, defs), definitionsJSON(t, got))
	// A worker started without --provision accepts the token bucket.
	_, err = credentials.OpenTokenBucket(ctx, js, "")
	require.NoError(t, err)
}

func TestPrintedDefinitionsCarryTheReplicas(t *testing.T) {
	ctx := context.Background()
	pc := provisionConfig(worker.Config{Topology: topology.Config{Partitions: 1, Replicas: 3}})
	defs, err := ops.PrintDefinitions(ctx, pc)
	require.NoError(t, err)
	for _, d := range defs {
		if sc, ok := d.Config.(*jetstream.StreamConfig); ok {
			require.Equal(t, 3, sc.Replicas, d.Name)
			require.Empty(t, sc.Metadata, "the server's own metadata is left out")
		}
	}

	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, ops.WriteDefinitionFiles(ops.Output{W: &out}, defs, dir))
	require.Contains(t, out.String(), "nats stream add --config "+filepath.Join(dir, "stream-DISCONNECT_REQUESTS.json")+"\n")
	require.Contains(t, out.String(), "nats consumer add DISCONNECT_REQUESTS --config "+filepath.Join(dir, "consumer-DISCONNECT_REQUESTS-hangup-worker-p0.json")+"\n")
	b, err := os.ReadFile(filepath.Join(dir, "stream-KV_hangup_replays.json"))
	require.NoError(t, err)
	var sc jetstream.StreamConfig
	require.NoError(t, json.Unmarshal(b, &sc))
	require.Equal(t, "KV_hangup_replays", sc.Name)
	require.Equal(t, 3, sc.Replicas)
}

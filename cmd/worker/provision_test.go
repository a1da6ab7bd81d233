package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/ops"
)

// --print connects to nothing: the NATS URL here leads nowhere.
func TestProvisionPrintEmitsServerDefinitionsWithoutConnecting(t *testing.T) {
	ctx := context.Background()
	out := runOK(t, ctx, "", "provision", "--print", "--json", "--nats-url", "nats://127.0.0.1:1",
		"--partitions", "3", "--replicas", "3", "--request-stream", "REQ", "--durable", "hw", "--ack-wait", "40s")
	streams, consumers := map[string]jetstream.StreamConfig{}, map[string]jetstream.ConsumerConfig{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var d struct {
			Kind   string          `json:"kind"`
			Name   string          `json:"name"`
			Stream string          `json:"stream"`
			Config json.RawMessage `json:"config"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &d))
		switch d.Kind {
		case "stream":
			var sc jetstream.StreamConfig
			require.NoError(t, json.Unmarshal(d.Config, &sc))
			streams[d.Name] = sc
		case "consumer":
			var cc jetstream.ConsumerConfig
			require.NoError(t, json.Unmarshal(d.Config, &cc))
			require.Equal(t, "REQ", d.Stream)
			consumers[d.Name] = cc
		}
	}
	require.Len(t, streams, 3+5)
	require.Equal(t, 3, streams["REQ"].Replicas)
	require.Equal(t, jetstream.WorkQueuePolicy, streams["REQ"].Retention)
	require.Equal(t, "hangup.partitioned.{{partition(3,1)}}.{{wildcard(1)}}", streams["REQ"].SubjectTransform.Destination)
	require.Contains(t, streams, "KV_hangup_replays")
	require.Contains(t, streams, "KV_meeting_credentials")
	require.Len(t, consumers, 1+3)
	require.Equal(t, 40*time.Second, consumers["hw-p2"].AckWait)
	require.Equal(t, "hangup.partitioned.2.*", consumers["hw-p2"].FilterSubject)

	text := runOK(t, ctx, "", "provision", "--print", "--partitions", "1", "--credentials-bucket", "")
	require.True(t, strings.HasPrefix(text, "# stream DISCONNECT_REQUESTS: nats stream add --config stream-DISCONNECT_REQUESTS.json\n{\n"), text)
	require.Contains(t, text, `"meeting.disconnect.requests.>"`)
	require.NotContains(t, text, "KV_hangup_tokens", "no credentials bucket, no token bucket")
}

func TestProvisionCreatesWhatItPrints(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := natstest.Run(t)
	t.Setenv("HANGUP_PARTITIONS", "2")
	t.Setenv("HANGUP_MEMBER_TTL", "4s")
	out := runOK(t, ctx, "", "provision", "--nats-url", srv.ClientURL(), "--json")
	printed := runOK(t, ctx, "", "provision", "--print", "--json")
	require.Equal(t, printed, out, "what is created is what --print prints")
	require.Contains(t, out, `"name":"hangup-worker-p1"`)
	require.NotContains(t, out, `"name":"hangup-worker-p2"`)

	_, js := natstest.Connect(t, srv)
	kv, err := js.KeyValue(ctx, ops.DefaultReplayBucket)
	require.NoError(t, err)
	st, err := kv.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, st.TTL())
	members, err := js.KeyValue(ctx, "hangup_workers")
	require.NoError(t, err)
	ms, err := members.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 4*time.Second, ms.TTL())
}

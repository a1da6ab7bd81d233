package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/deferral"
	"github.com/hangup-dev/hangup/internal/embedded"
	"github.com/hangup-dev/hangup/internal/membership"
	"github.com/hangup-dev/hangup/internal/topology"
)

// ProvisionConfig is what `worker run --provision` creates, and the
// replay bucket.
type ProvisionConfig struct {
	// Topology names and tunes the streams and consumers. Its zero fields
	// default as in topology.Config.SetDefaults.
	Topology topology.Config
	// DeferMax is the workers' --defer-max: deferral counts outlive twice
	// it. Defaults to 1h.
	DeferMax time.Duration
	// MembersBucket and MemberTTL are the workers' --members-bucket and
	// --member-ttl. Default to membership.DefaultBucket and
	// membership.DefaultTTL.
	MembersBucket string
	MemberTTL     time.Duration
	// CredentialsBucket is the workers' --credentials-bucket; empty
	// creates neither it nor the token bucket. Defaults to "".
	CredentialsBucket string
	// TokenBucket is the workers' --token-bucket. Defaults to
	// credentials.DefaultTokenBucket.
	TokenBucket string
	// ReplayBucket records the replays of dead letters. Defaults to
	// DefaultReplayBucket.
	ReplayBucket string
}

func (c *ProvisionConfig) setDefaults() {
	c.Topology.SetDefaults()
	if c.DeferMax == 0 {
		c.DeferMax = time.Hour
	}
	if c.MembersBucket == "" {
		c.MembersBucket = membership.DefaultBucket
	}
	if c.MemberTTL == 0 {
		c.MemberTTL = membership.DefaultTTL
	}
	if c.TokenBucket == "" {
		c.TokenBucket = credentials.DefaultTokenBucket
	}
	if c.ReplayBucket == "" {
		c.ReplayBucket = DefaultReplayBucket
	}
}

// Provision creates or updates the streams, the consumers and the buckets
// with the code a worker started with --provision runs, in its order,
// and creates the replay bucket if it is missing.
func Provision(ctx context.Context, js jetstream.JetStream, cfg ProvisionConfig) error {
	cfg.setDefaults()
	if err := cfg.Topology.Validate(); err != nil {
		return fmt.Errorf("topology config: %w", err)
	}
	replicas := cfg.Topology.Replicas
	if err := topology.Ensure(ctx, js, cfg.Topology); err != nil {
		return err
	}
	// A worker keeps deferral counts for twice the longest deferral.
	if _, err := deferral.Ensure(ctx, js, deferral.DefaultBucket, 2*cfg.DeferMax, replicas); err != nil {
		return err
	}
	if cfg.CredentialsBucket != "" {
		if _, err := credentials.EnsureBucket(ctx, js, cfg.CredentialsBucket, replicas); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
		if _, err := credentials.EnsureTokenBucket(ctx, js, cfg.TokenBucket, replicas); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
	}
	if _, err := membership.EnsureBucket(ctx, js, cfg.MembersBucket, cfg.MemberTTL, replicas); err != nil {
		return err
	}
	_, err := EnsureReplayBucket(ctx, js, cfg.ReplayBucket, replicas, cfg.Topology.DeadLetterMaxAge)
	return err
}

// Definition is a stream or a consumer as the server holds it.
type Definition struct {
	// Kind is "stream" or "consumer".
	Kind string `json:"kind"`
	// Name is the stream's or the consumer's name.
	Name string `json:"name"`
	// Stream is a consumer's stream.
	Stream string `json:"stream,omitempty"`
	// Bucket is the key-value bucket a stream holds.
	Bucket string `json:"bucket,omitempty"`
	// Config is a *jetstream.StreamConfig or a *jetstream.ConsumerConfig,
	// whose JSON has the server's field names.
	Config any `json:"config"`
}

// Definitions reads back from the server what Provision makes: the three
// streams, the shared durable and the partition consumers, and the
// buckets' streams. Metadata the server adds of its own ("_nats.*") is
// left out.
func Definitions(ctx context.Context, js jetstream.JetStream, cfg ProvisionConfig) ([]Definition, error) {
	cfg.setDefaults()
	t := cfg.Topology
	var defs []Definition
	for _, name := range []string{t.RequestStream, t.ResultStream, t.DeadLetterStream} {
		d, err := streamDefinition(ctx, js, name, "")
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	for _, name := range append([]string{t.Durable}, t.PartitionConsumerNames()...) {
		c, err := js.Consumer(ctx, t.RequestStream, name)
		if err != nil {
			return nil, fmt.Errorf("consumer %s on %s: %w", name, t.RequestStream, err)
		}
		cc := c.CachedInfo().Config
		cc.Metadata = ownMetadata(cc.Metadata)
		defs = append(defs, Definition{Kind: "consumer", Name: name, Stream: t.RequestStream, Config: &cc})
	}
	buckets := []string{deferral.DefaultBucket}
	if cfg.CredentialsBucket != "" {
		buckets = append(buckets, cfg.CredentialsBucket, cfg.TokenBucket)
	}
	for _, b := range append(buckets, cfg.MembersBucket, cfg.ReplayBucket) {
		d, err := streamDefinition(ctx, js, "KV_"+b, b)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	return defs, nil
}

func streamDefinition(ctx context.Context, js jetstream.JetStream, name, bucket string) (Definition, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return Definition{}, fmt.Errorf("stream %s: %w", name, err)
	}
	sc := st.CachedInfo().Config
	sc.Metadata = ownMetadata(sc.Metadata)
	return Definition{Kind: "stream", Name: name, Bucket: bucket, Config: &sc}, nil
}

// ownMetadata is m without the server's own keys, nil when nothing is
// left.
func ownMetadata(m map[string]string) map[string]string {
	maps.DeleteFunc(m, func(k, _ string) bool { return strings.HasPrefix(k, "_nats.") })
	if len(m) == 0 {
		return nil
	}
	return m
}

// PrintDefinitions works out the definitions Provision makes without
// touching any deployment: it provisions a JetStream server of its own,
// in this process, with no network listener and its store in a temporary
// directory, reads the definitions back and removes the server again. So
// they are exactly what the worker's code creates, with the server's
// defaults filled in. That server has one node; the streams are made with
// one replica there and given Topology.Replicas in the definitions.
func PrintDefinitions(ctx context.Context, cfg ProvisionConfig) (_ []Definition, err error) {
	cfg.setDefaults()
	if err := cfg.Topology.Validate(); err != nil {
		return nil, fmt.Errorf("topology config: %w", err)
	}
	dir, err := os.MkdirTemp("", "hangup-provision-")
	if err != nil {
		return nil, fmt.Errorf("work out definitions: %w", err)
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	s, err := embedded.Start(embedded.Options{StoreDir: dir, InProcessOnly: true})
	if err != nil {
		return nil, fmt.Errorf("work out definitions: %w", err)
	}
	defer func() {
		s.Shutdown()
		s.WaitForShutdown()
	}()
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		return nil, fmt.Errorf("work out definitions: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("work out definitions: %w", err)
	}
	single := cfg
	single.Topology.Replicas = 1
	if err := Provision(ctx, js, single); err != nil {
		return nil, fmt.Errorf("work out definitions: %w", err)
	}
	defs, err := Definitions(ctx, js, single)
	if err != nil {
		return nil, fmt.Errorf("work out definitions: %w", err)
	}
	for _, d := range defs {
		if sc, ok := d.Config.(*jetstream.StreamConfig); ok {
			sc.Replicas = cfg.Topology.Replicas
		}
	}
	return defs, nil
}

// fileName is the file WriteDefinitionFiles writes d to.
func (d Definition) fileName() string {
	if d.Kind == "consumer" {
		return "consumer-" + d.Stream + "-" + d.Name + ".json"
	}
	return "stream-" + d.Name + ".json"
}

// command is the nats CLI command that creates d from file.
func (d Definition) command(file string) string {
	if d.Kind == "consumer" {
		return fmt.Sprintf("nats consumer add %s --config %s", d.Stream, file)
	}
	return fmt.Sprintf("nats stream add --config %s", file)
}

func (d Definition) title() string {
	switch {
	case d.Kind == "consumer":
		return fmt.Sprintf("consumer %s on %s", d.Name, d.Stream)
	case d.Bucket != "":
		return fmt.Sprintf("stream %s (key-value bucket %s)", d.Name, d.Bucket)
	}
	return "stream " + d.Name
}

// WriteDefinitions writes each definition: as a JSON line, or for a
// person with full set as its title, the nats CLI command that creates it
// and its configuration, indented; otherwise its title only.
func WriteDefinitions(out Output, defs []Definition, full bool) error {
	for _, d := range defs {
		if out.JSON || !full {
			if err := out.emit(d, d.title()); err != nil {
				return err
			}
			continue
		}
		b, err := indentJSON(d.Config)
		if err != nil {
			return fmt.Errorf("encode %s: %w", d.title(), err)
		}
		if _, err := fmt.Fprintf(out.W, "# %s: %s\n%s\n", d.title(), d.command(d.fileName()), b); err != nil {
			return err
		}
	}
	return nil
}

// WriteDefinitionFiles writes each definition's configuration to a file
// of its own in dir, ready for `nats stream add --config` and `nats
// consumer add --config`, and reports the commands, in the order to run
// them.
func WriteDefinitionFiles(out Output, defs []Definition, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("definitions directory: %w", err)
	}
	for _, d := range defs {
		b, err := indentJSON(d.Config)
		if err != nil {
			return fmt.Errorf("encode %s: %w", d.title(), err)
		}
		path := filepath.Join(dir, d.fileName())
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", d.title(), err)
		}
		line := struct {
			Definition
			File    string `json:"file"`
			Command string `json:"command"`
		}{d, path, d.command(path)}
		if err := out.emit(line, line.Command); err != nil {
			return err
		}
	}
	return nil
}

// indentJSON is v as indented JSON with a final newline, subjects' ">"
// left as it is.
func indentJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

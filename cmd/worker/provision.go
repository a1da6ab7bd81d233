package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/hangup-dev/hangup/internal/ops"
)

const provisionUsage = `worker provision [flags]
       worker provision --print [--out DIR] [flags]

Creates or updates the streams, the consumers (the shared durable and one
per partition) and the key-value buckets exactly as 'worker run --provision'
does, with the same flags, and creates the hangup_replays bucket. With
--print it connects to nothing and prints their definitions as JSON in the
server's field names, for 'nats stream add --config' and 'nats consumer add
--config'; with --out it writes one file per definition to DIR.`

// provisionShared are the flags of run that decide what is provisioned.
var provisionShared = []string{
	"request-stream", "result-stream", "dlq-stream", "request-subject-prefix", "result-subject-prefix", "dlq-subject-prefix",
	"durable", "replicas", "partitions", "pinned-ttl", "ack-wait", "max-ack-pending", "max-in-flight", "defer-max",
	"members-bucket", "member-ttl", "credentials-bucket", "token-bucket",
}

func runProvision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newOpsCommand("provision", provisionUsage, stderr, provisionShared...)
	printOnly := c.fs.Bool("print", false, "print the definitions instead of creating them; connects to nothing")
	outDir := c.fs.String("out", "", "with --print, write each definition to a file of its own in this directory")
	replayBucket := c.fs.String("replay-bucket", ops.DefaultReplayBucket, "key-value bucket in which replays of dead letters are recorded")
	if err := c.parse(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := c.refuseArgs(); err != nil {
		return err
	}
	if *outDir != "" && !*printOnly {
		return usageError{errors.New("--out: only with --print")}
	}
	cfg := c.config()
	pc := ops.ProvisionConfig{
		Topology:          cfg.Topology,
		DeferMax:          cfg.DeferMax,
		MembersBucket:     cfg.MembersBucket,
		MemberTTL:         cfg.MemberTTL,
		CredentialsBucket: cfg.CredentialsBucket,
		TokenBucket:       cfg.TokenBucket,
		ReplayBucket:      *replayBucket,
	}
	out := c.output(stdout)
	if *printOnly {
		defs, err := ops.PrintDefinitions(ctx, pc)
		if err != nil {
			return err
		}
		if *outDir != "" {
			return ops.WriteDefinitionFiles(out, defs, *outDir)
		}
		return ops.WriteDefinitions(out, defs, true)
	}
	nc, js, err := c.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := ops.Provision(ctx, js, pc); err != nil {
		return err
	}
	defs, err := ops.Definitions(ctx, js, pc)
	if err != nil {
		return err
	}
	return ops.WriteDefinitions(out, defs, false)
}

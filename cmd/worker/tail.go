package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/schemas"
)

const tailUsage = `worker tail [flags]

Follows the result events (or, with --dlq, the dead letters) as they are
stored, through an ordered consumer that leaves nothing behind, until
Ctrl-C or --count events. --since starts in the past.`

func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newOpsCommand("tail", tailUsage, stderr, "result-stream", "result-subject-prefix", "dlq-stream", "dlq-subject-prefix")
	conference := c.fs.String("conference", "", "only the events of this conference")
	status := c.fs.String("status", "", "only results of this status: succeeded, failed or expired")
	dlq := c.fs.Bool("dlq", false, "follow the dead letters instead of the results")
	reason := c.fs.String("reason", "", "with --dlq, only dead letters of this reason: invalid_request, rejected, retries_exhausted or max_deliveries")
	since := c.whenVar("since", "start with the events stored since then: how long ago (1h) or an RFC 3339 time (default: only new events)")
	count := c.fs.Int("count", 0, "stop after this many events (default: run until interrupted)")
	if err := c.parse(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := c.refuseArgs(); err != nil {
		return err
	}
	cfg := c.config()
	tc := ops.TailConfig{
		ResultStream:            cfg.Topology.ResultStream,
		ResultSubjectPrefix:     cfg.Topology.ResultSubjectPrefix,
		DeadLetterStream:        cfg.Topology.DeadLetterStream,
		DeadLetterSubjectPrefix: cfg.Topology.DeadLetterSubjectPrefix,
		DeadLetters:             *dlq,
		Conference:              *conference,
		Status:                  schemas.Status(*status),
		Reason:                  schemas.DeadLetterReason(*reason),
		Since:                   since.t,
		Count:                   *count,
	}
	if err := tc.Validate(); err != nil {
		return fieldErrors(err, map[string]string{"Status": "status", "Reason": "reason", "Conference": "conference", "Count": "count"})
	}
	nc, js, err := c.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	return ops.Tail(ctx, js, tc, c.output(stdout))
}

package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/schemas"
)

const publishUsage = `worker publish --conference C --participants ID,ID [flags]
       worker publish [flags] -

Publishes disconnect requests to the request stream: one given by flags, or
one JSON request per line on stdin with "-". Every request is checked with
the worker's decoder first; if one is invalid, nothing is published. Prints
the stream sequence of each request, or that the stream dropped it as a
duplicate of an earlier one with the same request ID.`

func runPublish(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newOpsCommand("publish", publishUsage, stderr, "request-subject-prefix", "max-participants")
	conference := c.fs.String("conference", "", "conference ID")
	participants := c.fs.String("participants", "", "participant IDs to disconnect, comma-separated")
	requestID := c.fs.String("request-id", "", "request ID (default: a fresh one, cli-<unique>)")
	reason := c.fs.String("reason", "", "why, for the audit trail")
	requestedBy := c.fs.String("requested-by", "", "who asks, for the audit trail")
	expiresIn := c.fs.Duration("expires-in", 0, "set expiresAt this long from now (default: no expiry)")
	tokenFile := c.fs.String("token-file", "", "file holding the control token for X-Conference-Authorization (never printed; default: the stored credentials)")
	if err := c.parse(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg := c.config()
	pc := ops.PublishConfig{SubjectPrefix: cfg.Topology.RequestSubjectPrefix, MaxParticipants: cfg.MaxParticipants}
	var drafts []ops.Draft
	var err error
	fromFlags := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "conference", "participants", "request-id", "reason", "requested-by", "expires-in":
			fromFlags[f.Name] = true
		}
	})
	switch {
	case len(c.args) == 1 && c.args[0] == "-":
		if len(fromFlags) > 0 {
			return usageError{errors.New(`with "-" the requests come from stdin; --conference, --participants, --request-id, --reason, --requested-by and --expires-in describe a request given by flags`)}
		}
		drafts, err = ops.ReadDrafts(stdin, pc)
	case len(c.args) > 0:
		return c.refuseArgs()
	case *conference == "" || *participants == "":
		return usageError{errors.New(`--conference and --participants are required, or "-" to read requests from stdin`)}
	case *expiresIn < 0:
		return usageError{errors.New("--expires-in: must not be negative")}
	default:
		req := schemas.Request{
			RequestID:      cmp.Or(*requestID, ops.NewRequestID()),
			ConferenceID:   *conference,
			ParticipantIDs: strings.Split(*participants, ","),
			Reason:         *reason,
			RequestedBy:    *requestedBy,
		}
		for i, id := range req.ParticipantIDs {
			req.ParticipantIDs[i] = strings.TrimSpace(id)
		}
		if *expiresIn > 0 {
			at := time.Now().Add(*expiresIn).UTC()
			req.ExpiresAt = &at
		}
		var d ops.Draft
		if d, err = ops.NewDraft(req, pc); err == nil {
			drafts = []ops.Draft{d}
		}
	}
	if err != nil {
		return usageError{err}
	}
	if *tokenFile != "" {
		if pc.Token, err = ops.ReadTokenFile(*tokenFile); err != nil {
			return usageError{err}
		}
	}
	nc, js, err := c.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	return ops.Publish(ctx, js, drafts, pc, c.output(stdout))
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/schemas"
)

const dlqUsage = `usage: worker dlq list|show|replay [flags]

  list    list dead letters: sequence, time, conference, request ID, reason,
          and whether the request was replayed (as which request ID)
  show    show one dead letter in full: worker dlq show SEQ
  replay  publish dead-lettered requests again as new requests:
          worker dlq replay SEQ... or worker dlq replay [filters]

'worker dlq list -h' and so on list the flags.
`

// dlqShared are the flags of run the dlq commands take.
var dlqShared = []string{"dlq-stream", "dlq-subject-prefix", "request-subject-prefix", "max-participants", "replicas"}

func runDLQ(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		_, _ = io.WriteString(stderr, dlqUsage)
		return usageError{errors.New("dlq: name a command: list, show or replay")}
	}
	switch args[0] {
	case "list":
		return runDLQList(ctx, args[1:], stdout, stderr)
	case "show":
		return runDLQShow(ctx, args[1:], stdout, stderr)
	case "replay":
		return runDLQReplay(ctx, args[1:], stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		_, err := io.WriteString(stdout, dlqUsage)
		return err
	}
	_, _ = io.WriteString(stderr, dlqUsage)
	return usageError{fmt.Errorf("dlq: unknown command %q", args[0])}
}

// dlqCommand is the command line of a dlq command.
type dlqCommand struct {
	*opsCommand
	replayBucket *string
}

func newDLQCommand(name, usage string, stderr io.Writer) dlqCommand {
	c := newOpsCommand("dlq "+name, usage, stderr, dlqShared...)
	return dlqCommand{
		opsCommand:   c,
		replayBucket: c.fs.String("replay-bucket", ops.DefaultReplayBucket, "key-value bucket in which replays are recorded"),
	}
}

// deadLetters connects and returns the dead letters the flags name.
func (c dlqCommand) deadLetters() (func(), *ops.DeadLetters, error) {
	cfg := c.config()
	nc, js, err := c.connect()
	if err != nil {
		return nil, nil, err
	}
	d, err := ops.NewDeadLetters(ops.DeadLetterConfig{
		Stream:               cfg.Topology.DeadLetterStream,
		SubjectPrefix:        cfg.Topology.DeadLetterSubjectPrefix,
		RequestSubjectPrefix: cfg.Topology.RequestSubjectPrefix,
		MaxParticipants:      cfg.MaxParticipants,
		ReplayBucket:         *c.replayBucket,
		Replicas:             cfg.Topology.Replicas,
		MaxAge:               cfg.Topology.DeadLetterMaxAge,
	}, js)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc.Close, d, nil
}

// filterFlags are the flags that select dead letters.
type filterFlags struct {
	reason, conference *string
	since, until       *whenFlag
}

func (c dlqCommand) filterFlags() filterFlags {
	return filterFlags{
		reason:     c.fs.String("reason", "", "only dead letters of this reason: invalid_request, rejected, retries_exhausted or max_deliveries"),
		conference: c.fs.String("conference", "", "only the dead letters of this conference"),
		since:      c.whenVar("since", "only dead letters stored since then: how long ago (2h) or an RFC 3339 time"),
		until:      c.whenVar("until", "only dead letters stored until then: how long ago (1h) or an RFC 3339 time"),
	}
}

func (f filterFlags) filter() (ops.Filter, error) {
	flt := ops.Filter{Reason: schemas.DeadLetterReason(*f.reason), Conference: *f.conference, Since: f.since.t, Until: f.until.t}
	if err := flt.Validate(); err != nil {
		return flt, fieldErrors(err, map[string]string{"Reason": "reason", "Conference": "conference", "Until": "until"})
	}
	return flt, nil
}

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newDLQCommand("list", "worker dlq list [flags]\n\nLists dead letters, oldest first: sequence, time, conference, request ID, reason,\nand whether the request was replayed already, as which request ID.", stderr)
	ff := c.filterFlags()
	if err := c.parse(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := c.refuseArgs(); err != nil {
		return err
	}
	flt, err := ff.filter()
	if err != nil {
		return err
	}
	done, d, err := c.deadLetters()
	if err != nil {
		return err
	}
	defer done()
	entries, err := d.List(ctx, flt)
	if err != nil {
		return err
	}
	return ops.WriteList(c.output(stdout), entries)
}

func runDLQShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newDLQCommand("show", "worker dlq show [flags] SEQ\n\nShows the dead letter at sequence SEQ of the dead-letter stream in full: the stored\nJSON with the original message's headers (secrets redacted), and its replays.", stderr)
	if err := c.parse(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	seqs, err := sequences(c.args)
	if err != nil {
		return err
	}
	if len(seqs) != 1 {
		return usageError{errors.New("dlq show: give one sequence number")}
	}
	done, d, err := c.deadLetters()
	if err != nil {
		return err
	}
	defer done()
	e, err := d.Get(ctx, seqs[0])
	if err != nil {
		return err
	}
	return ops.WriteEntry(c.output(stdout), e)
}

const replayUsage = `worker dlq replay [flags] SEQ...
       worker dlq replay [flags] [--reason R] [--conference C] [--since T] [--until T]

Publishes the requests of dead letters again, each as a new request with a
new request ID (<original>.r1, .r2, ...) and replayOf set to the original
ID. Shows what it will do and asks first, unless --yes. A dead letter
whose message is not a valid request cannot be replayed; one whose request
was replayed before needs --again. Dead letters keep no control token: the
workers use the stored credentials, or give --token-file.`

func runDLQReplay(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newDLQCommand("replay", replayUsage, stderr)
	ff := c.filterFlags()
	dryRun := c.fs.Bool("dry-run", false, "show what would be replayed, and publish nothing")
	yes := c.fs.Bool("yes", false, "do not ask for confirmation")
	again := c.fs.Bool("again", false, "replay dead letters whose request was replayed before")
	tokenFile := c.fs.String("token-file", "", "file holding the control token for X-Conference-Authorization (never printed; default: the stored credentials)")
	expiresIn := c.fs.Duration("expires-in", 0, "give each replay expiresAt this long from now (default: keep the original's)")
	if err := c.parse(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	seqs, err := sequences(c.args)
	if err != nil {
		return err
	}
	flt, err := ff.filter()
	if err != nil {
		return err
	}
	if len(seqs) > 0 && flt != (ops.Filter{}) {
		return usageError{errors.New("dlq replay: name dead letters by sequence or select them with --reason, --conference, --since and --until, not both")}
	}
	if *expiresIn < 0 {
		return usageError{errors.New("--expires-in: must not be negative")}
	}
	opts := ops.ReplayOptions{
		Sequences: seqs, Filter: flt, DryRun: *dryRun, Yes: *yes, Again: *again, ExpiresIn: *expiresIn,
		Confirm: stdin, Prompt: stderr,
	}
	if *tokenFile != "" {
		if opts.Token, err = ops.ReadTokenFile(*tokenFile); err != nil {
			return usageError{err}
		}
	}
	done, d, err := c.deadLetters()
	if err != nil {
		return err
	}
	defer done()
	return d.Replay(ctx, opts, c.output(stdout))
}

// sequences parses stream sequence numbers.
func sequences(args []string) ([]uint64, error) {
	out := make([]uint64, 0, len(args))
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, usageError{fmt.Errorf("%q is not a sequence number of the dead-letter stream", a)}
		}
		out = append(out, n)
	}
	return out, nil
}

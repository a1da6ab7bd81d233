package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/internal/worker"
)

// opsCommand is the command line of an operator command (publish, tail,
// dlq, provision): flags of its own, the NATS connection flags, and the
// flags of `worker run` it needs (stream and subject names, ...), with
// run's names, defaults and help. The flags it shares with run fall back
// on HANGUP_<FLAG> when not given, as run's do, so that an operator's
// shell and a worker's environment agree; its own flags do not.
type opsCommand struct {
	fs *flag.FlagSet
	// s holds what the shared flags write, in s.cfg.
	s settings
	// shared are the names of the flags shared with run.
	shared map[string]bool
	json   bool
	// args are the arguments that are not flags.
	args []string
}

// newOpsCommand defines the flags of `worker <name>`: the NATS flags,
// run's flags named in shared, and --json. usage is the synopsis and a
// description, printed above the flags by --help.
func newOpsCommand(name, usage string, output io.Writer, shared ...string) *opsCommand {
	c := &opsCommand{fs: flag.NewFlagSet("worker "+name, flag.ContinueOnError), shared: map[string]bool{}}
	c.fs.SetOutput(output)
	run := newRunFlags(&c.s, io.Discard)
	addNATSFlags(c.fs, &c.s.cfg.NATS, runDefaults().NATS)
	c.fs.VisitAll(func(f *flag.Flag) { c.shared[f.Name] = true })
	for _, n := range shared {
		f := run.Lookup(n)
		if f == nil {
			panic("worker run has no flag --" + n)
		}
		c.fs.Var(f.Value, n, f.Usage)
		c.shared[n] = true
	}
	c.fs.BoolVar(&c.json, "json", false, "print one JSON object per line instead of text")
	c.fs.Usage = func() {
		fmt.Fprintf(output, "usage: %s\n\nThe flags it shares with 'worker run' (the NATS connection, stream and subject names, ...)\ncan also be set as HANGUP_<NAME>, as for run.\n\n", usage)
		c.fs.PrintDefaults()
	}
	return c
}

// parse parses args, fills every shared flag not given from its
// environment variable, and checks the settings as run does, naming the
// flag and the variable. --help gives flag.ErrHelp.
func (c *opsCommand) parse(args []string, getenv func(string) string) error {
	// Flags may follow the arguments: worker dlq replay 12 --yes.
	for rest := args; ; {
		if err := c.fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err}
		}
		if rest = c.fs.Args(); len(rest) == 0 {
			break
		}
		c.args, rest = append(c.args, rest[0]), rest[1:]
	}
	given := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.shared)) {
		if given[name] {
			continue
		}
		if v := getenv(envName(name)); v != "" {
			if err := c.fs.Set(name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(name), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	names := newFlagNames(c.fs, &c.s.cfg)
	errs = names.explicitZeros()
	if c.s.cfg.NATS.URL == "" {
		errs = append(errs, flagErrorf("nats-url", `must not be empty, got ""`))
	}
	cfg := c.config()
	for _, err := range leaves(cfg.Validate()) {
		errs = append(errs, names.rename(err))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	return nil
}

// config is the worker configuration the shared flags describe, with the
// worker's defaults for the rest.
func (c *opsCommand) config() worker.Config {
	cfg := c.s.cfg
	cfg.SetDefaults()
	return cfg
}

// output is where the command reports.
func (c *opsCommand) output(w io.Writer) ops.Output {
	return ops.Output{W: w, JSON: c.json}
}

// connect connects to NATS as the NATS flags say.
func (c *opsCommand) connect() (*nats.Conn, jetstream.JetStream, error) {
	cfg := c.s.cfg.NATS
	opts, err := cfg.Options()
	if err != nil {
		return nil, nil, usageError{err}
	}
	nc, err := nats.Connect(cfg.URL, append(opts, nats.Name("hangup "+c.fs.Name()))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS: %w", cfg.Refused(err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream: %w", err)
	}
	return nc, js, nil
}

// whenFlag is a point in time given as a duration ago ("2h") or an RFC
// 3339 time.
type whenFlag struct {
	t   time.Time
	now func() time.Time
}

func (w *whenFlag) String() string {
	if w == nil || w.t.IsZero() {
		return ""
	}
	return w.t.Format(time.RFC3339)
}

func (w *whenFlag) Set(s string) error {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return fmt.Errorf("%s is negative; give how long ago, such as 2h", s)
		}
		w.t = w.now().Add(-d)
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("%q is neither a duration ago (2h) nor an RFC 3339 time (2026-11-25T18:00:00Z)", s)
	}
	w.t = t
	return nil
}

// whenVar defines a whenFlag.
func (c *opsCommand) whenVar(name, usage string) *whenFlag {
	w := &whenFlag{now: time.Now}
	c.fs.Var(w, name, usage)
	return w
}

// refuseArgs refuses positional arguments.
func (c *opsCommand) refuseArgs() error {
	if len(c.args) > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(c.args, " "))}
	}
	return nil
}

// fieldErrors names the settings in err, whose leaves each begin with a
// field of an ops configuration ("Status: ..."), by the flags that set
// them ("--status: ...").
func fieldErrors(err error, flags map[string]string) error {
	if err == nil {
		return nil
	}
	var errs []error
	for _, e := range leaves(err) {
		field, rule, ok := strings.Cut(e.Error(), ": ")
		if name, known := flags[field]; ok && known {
			e = fmt.Errorf("--%s: %s", name, rule)
		}
		errs = append(errs, e)
	}
	return usageError{errors.Join(errs...)}
}

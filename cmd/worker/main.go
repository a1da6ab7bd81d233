// Command worker runs hangup: it consumes disconnect requests from NATS
// JetStream, hangs participants up through the meeting API in batches, and
// publishes an outcome per request. `worker demo` runs the whole thing on
// embedded defaults; publish, tail, dlq and provision are the operator's
// tools.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(exitCode(err))
	}
}

const usage = `usage: worker [run|publish|tail|dlq|provision|demo|bench|version] [flags]

  run        consume requests and hang participants up (the default)
  publish    publish requests, from flags or JSON lines on stdin ("-")
  tail       follow the results, or the dead letters (--dlq)
  dlq        list, show and replay dead letters: worker dlq list|show|replay
  provision  create or update the streams, consumers and buckets, or print
             their definitions (--print)
  demo       run an embedded NATS server, the meeting API simulator, the worker
             and a load generator, then print a summary
  bench      measure hangup against the broker's limit and a plain handler on
             one workload, and write a table, a JSON file and a chart
  version    print the version

'worker run -h', 'worker publish -h' and so on list the flags. Every flag of run can
also be set as an environment variable: --max-batch is HANGUP_MAX_BATCH. The other
commands read the flags they share with run (the NATS connection, stream and subject
names, ...) from the same variables.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, os.Stdin, stdout, stderr)
}

// runWith is run with stdin given: publish reads requests from it, and
// dlq replay its confirmation.
func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runWorker(ctx, args, stdout, stderr)
	case "publish":
		return runPublish(ctx, args, stdin, stdout, stderr)
	case "tail":
		return runTail(ctx, args, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args, stdin, stdout, stderr)
	case "provision":
		return runProvision(ctx, args, stdout, stderr)
	case "demo":
		return runDemo(ctx, args, stdout, stderr)
	case "bench":
		return runBench(ctx, args, stdout, stderr)
	case "version":
		return printVersion(stdout)
	case "help":
		_, err := io.WriteString(stdout, usage)
		return err
	default:
		_, _ = io.WriteString(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}

// usageError is a mistake in the command line or the configuration.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return 2
	}
	return 1
}

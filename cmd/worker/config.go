package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hangup-dev/hangup/internal/worker"
)

// envPrefix: every flag of `worker run` is also HANGUP_<FLAG_NAME>.
const envPrefix = "HANGUP_"

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// settings holds what the flags of `worker run` parse into.
type settings struct {
	cfg       worker.Config
	logFormat string
	logLevel  string
}

// runDefaults are the settings of `worker run` before flags and
// environment: worker.Config's defaults, except for the three settings in
// which the command differs from the zero Config.
func runDefaults() worker.Config {
	c := worker.Config{
		CredentialsBucket: "meeting_credentials",
		HTTPAddr:          ":9090",
		Provision:         true,
	}
	c.SetDefaults()
	c.WorkerID = "" // worker.New picks <hostname>-<pid>
	return c
}

// newRunFlags defines the flags of `worker run`, with their defaults.
func newRunFlags(s *settings, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("worker run", flag.ContinueOnError)
	fs.SetOutput(output)
	d := runDefaults()
	c := &s.cfg
	addNATSFlags(fs, &c.NATS, d.NATS)
	fs.StringVar(&c.APIBaseURL, "api-base-url", d.APIBaseURL, "meeting API base URL (http:// only for a local simulator)")
	fs.StringVar(&c.APICAFile, "api-ca-file", d.APICAFile, "PEM file of extra CA certificates to trust for the meeting API")
	fs.DurationVar(&c.APITimeout, "api-timeout", d.APITimeout, "timeout of one API call attempt")
	fs.BoolVar(&c.APITracePropagation, "api-trace-propagation", d.APITracePropagation, "send the W3C traceparent of each API call to the meeting API (a third party)")
	fs.IntVar(&c.APIConcurrency, "api-concurrency", d.APIConcurrency, "most API calls in flight over all workers, shared among the live ones")
	fs.IntVar(&c.WorkerAPIConcurrency, "worker-api-concurrency", d.WorkerAPIConcurrency, "most API calls in flight from one worker, whatever its share (0: no cap)")
	fs.IntVar(&c.ConferenceCalls, "conference-calls", d.ConferenceCalls, "most API calls in flight for one conference; beyond the first, only full batches")
	fs.Float64Var(&c.APIRate, "api-rate", d.APIRate, "most API calls per second over all workers, shared among the live ones (0: no limit)")
	fs.Float64Var(&c.WorkerAPIRate, "worker-api-rate", d.WorkerAPIRate, "most API calls per second from one worker, whatever its share (0: no cap)")
	fs.DurationVar(&c.MemberTTL, "member-ttl", d.MemberTTL, "how long a worker that stopped beating still counts as live; its partitions move after it")
	fs.StringVar(&c.MembersBucket, "members-bucket", d.MembersBucket, "key-value bucket in which the workers see each other, to share partitions and the vendor budget")
	fs.IntVar(&c.MaxBatch, "max-batch", d.MaxBatch, "most participant IDs per API call")
	fs.DurationVar(&c.Linger, "linger", d.Linger, "how long a batch waits for more IDs")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", d.MaxInFlight, "most requests one worker holds in memory")
	fs.IntVar(&c.MaxAckPending, "max-ack-pending", d.MaxAckPending, "the consumer's cap on unacked messages over all workers, held or handed back for later")
	fs.IntVar(&c.BreakerThreshold, "breaker-threshold", d.BreakerThreshold, "consecutive outage answers that pause calls and pulling (negative: never)")
	fs.DurationVar(&c.DeferMax, "defer-max", d.DeferMax, "how long a request may wait for its meeting to become ready")
	fs.StringVar(&c.CredentialsBucket, "credentials-bucket", d.CredentialsBucket, "key-value bucket of host passwords per conference (empty: off)")
	fs.StringVar(&c.TokenBucket, "token-bucket", d.TokenBucket, "key-value bucket in which the workers share each conference's control token")
	fs.IntVar(&c.MaxParticipants, "max-participants", d.MaxParticipants, "most participant IDs per request")
	fs.IntVar(&c.MaxDeliveries, "max-deliveries", d.MaxDeliveries, "dead-letter a message when its delivery count reaches this")
	fs.DurationVar(&c.RetryInitial, "retry-initial", d.RetryInitial, "first retry interval")
	fs.DurationVar(&c.RetryMaxInterval, "retry-max-interval", d.RetryMaxInterval, "longest retry interval")
	fs.DurationVar(&c.RetryMaxElapsed, "retry-max-elapsed", d.RetryMaxElapsed, "retry budget of one call")
	fs.DurationVar(&c.AckWait, "ack-wait", d.AckWait, "AckWait of the durable consumer")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "deadline of a graceful stop")
	fs.BoolVar(&c.Provision, "provision", d.Provision, "create or update the streams and the consumer at start")
	t, dt := &c.Topology, d.Topology
	fs.StringVar(&t.RequestStream, "request-stream", dt.RequestStream, "stream of requests")
	fs.StringVar(&t.ResultStream, "result-stream", dt.ResultStream, "stream of result events")
	fs.StringVar(&t.DeadLetterStream, "dlq-stream", dt.DeadLetterStream, "stream of dead letters")
	fs.StringVar(&t.RequestSubjectPrefix, "request-subject-prefix", dt.RequestSubjectPrefix, "requests arrive on <prefix>.<conferenceID>")
	fs.StringVar(&t.ResultSubjectPrefix, "result-subject-prefix", dt.ResultSubjectPrefix, "results go to <prefix>.<conferenceID>")
	fs.StringVar(&t.DeadLetterSubjectPrefix, "dlq-subject-prefix", dt.DeadLetterSubjectPrefix, "dead letters go to <prefix>.<conferenceID>")
	fs.StringVar(&t.Durable, "durable", dt.Durable, "durable consumer shared by all workers")
	fs.IntVar(&t.Replicas, "replicas", dt.Replicas, "replicas of each stream")
	fs.DurationVar(&t.PinnedTTL, "pinned-ttl", dt.PinnedTTL, "how long a partition waits for a worker that stopped pulling it before another may take it")
	fs.IntVar(&t.Partitions, "partitions", dt.Partitions, "partitions of the request stream; each conference's requests are worked by one worker at a time")
	fs.StringVar(&c.WorkerID, "worker-id", d.WorkerID, "name of this worker in outcomes (default <hostname>-<pid>)")
	fs.StringVar(&c.HTTPAddr, "http-addr", d.HTTPAddr, "address of /metrics, /healthz and /readyz (empty: off)")
	fs.BoolVar(&c.PProf, "pprof", d.PProf, "serve net/http/pprof's /debug/pprof/ on --http-addr")
	fs.StringVar(&s.logFormat, "log-format", "json", "json or console")
	fs.StringVar(&s.logLevel, "log-level", "info", "debug, info, warn or error")
	return fs
}

// parseRun parses args, then fills every flag not given on the command line
// from its environment variable, then validates.
func parseRun(args []string, getenv func(string) string, output io.Writer) (*settings, error) {
	s := &settings{}
	fs := newRunFlags(s, output)
	fs.Usage = func() {
		fmt.Fprintf(output, "usage: worker run [flags]\n\nEvery flag can also be set as HANGUP_<NAME>, e.g. HANGUP_MAX_BATCH=50.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, usageError{err}
	}
	if err := s.validate(fs); err != nil {
		return nil, usageError{err}
	}
	return s, nil
}

// validate checks the command's own settings, refuses the zeros the
// worker would read as "the default", and reports what the worker and its
// parts refuse (worker.Config.Check), each setting named as the operator
// wrote it: "--max-batch (HANGUP_MAX_BATCH): must be ...".
func (s *settings) validate(fs *flag.FlagSet) error {
	names := newFlagNames(fs, &s.cfg)
	var errs []error
	if s.logFormat != "json" && s.logFormat != "console" {
		errs = append(errs, flagErrorf("log-format", "must be json or console, got %s", s.logFormat))
	}
	if _, err := parseLevel(s.logLevel); err != nil {
		errs = append(errs, flagErrorf("log-level", "must be debug, info, warn or error, got %s", s.logLevel))
	}
	if s.cfg.NATS.URL == "" {
		errs = append(errs, flagErrorf("nats-url", `must not be empty, got ""`))
	}
	errs = append(errs, names.explicitZeros()...)
	for _, err := range leaves(s.cfg.Check()) {
		errs = append(errs, names.rename(err))
	}
	return errors.Join(errs...)
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hangup-dev/hangup/internal/worker"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
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

// newRunFlags defines the flags of `worker run`, with their defaults.
func newRunFlags(s *settings, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("worker run", flag.ContinueOnError)
	fs.SetOutput(output)
	c := &s.cfg
	fs.StringVar(&c.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	fs.StringVar(&c.NATSCredsFile, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&c.APIBaseURL, "api-base-url", meetingclient.DefaultBaseURL, "meeting API base URL (http:// only for a local simulator)")
	fs.StringVar(&c.APICAFile, "api-ca-file", "", "PEM file of extra CA certificates to trust for the meeting API")
	fs.DurationVar(&c.APITimeout, "api-timeout", 10*time.Second, "timeout of one API call attempt")
	fs.IntVar(&c.APIConcurrency, "api-concurrency", 32, "most API calls in flight")
	fs.Float64Var(&c.APIRate, "api-rate", 0, "most API calls per second (0: no limit)")
	fs.IntVar(&c.MaxBatch, "max-batch", 100, "most participant IDs per API call")
	fs.DurationVar(&c.Linger, "linger", 50*time.Millisecond, "how long a batch waits for more IDs")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", 1000, "most requests one worker holds in memory")
	fs.IntVar(&c.MaxAckPending, "max-ack-pending", 10000, "the consumer's cap on unacked messages over all workers, held or handed back for later")
	fs.IntVar(&c.BreakerThreshold, "breaker-threshold", 20, "consecutive outage answers that pause calls and pulling (negative: never)")
	fs.DurationVar(&c.DeferMax, "defer-max", time.Hour, "how long a request may wait for its meeting to become ready")
	fs.StringVar(&c.CredentialsBucket, "credentials-bucket", "meeting_credentials", "key-value bucket of host passwords per conference (empty: off)")
	fs.StringVar(&c.TokenBucket, "token-bucket", "hangup_tokens", "key-value bucket in which the workers share each conference's control token")
	fs.IntVar(&c.MaxParticipants, "max-participants", schemas.DefaultMaxParticipants, "most participant IDs per request")
	fs.IntVar(&c.MaxDeliveries, "max-deliveries", 5, "dead-letter a message when its delivery count reaches this")
	fs.DurationVar(&c.RetryInitial, "retry-initial", 200*time.Millisecond, "first retry interval")
	fs.DurationVar(&c.RetryMaxInterval, "retry-max-interval", 10*time.Second, "longest retry interval")
	fs.DurationVar(&c.RetryMaxElapsed, "retry-max-elapsed", 2*time.Minute, "retry budget of one call")
	fs.DurationVar(&c.AckWait, "ack-wait", 30*time.Second, "AckWait of the durable consumer")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 25*time.Second, "deadline of a graceful stop")
	fs.BoolVar(&c.Provision, "provision", true, "create or update the streams and the consumer at start")
	t := &c.Topology
	fs.StringVar(&t.RequestStream, "request-stream", schemas.DefaultRequestStream, "stream of requests")
	fs.StringVar(&t.ResultStream, "result-stream", schemas.DefaultResultStream, "stream of result events")
	fs.StringVar(&t.DeadLetterStream, "dlq-stream", schemas.DefaultDeadLetterStream, "stream of dead letters")
	fs.StringVar(&t.RequestSubjectPrefix, "request-subject-prefix", schemas.DefaultRequestSubjectPrefix, "requests arrive on <prefix>.<conferenceID>")
	fs.StringVar(&t.ResultSubjectPrefix, "result-subject-prefix", schemas.DefaultResultSubjectPrefix, "results go to <prefix>.<conferenceID>")
	fs.StringVar(&t.DeadLetterSubjectPrefix, "dlq-subject-prefix", schemas.DefaultDeadLetterSubjectPrefix, "dead letters go to <prefix>.<conferenceID>")
	fs.StringVar(&t.Durable, "durable", "hangup-worker", "durable consumer shared by all workers")
	fs.IntVar(&t.Replicas, "replicas", 1, "replicas of each stream")
	fs.StringVar(&c.WorkerID, "worker-id", "", "name of this worker in outcomes (default <hostname>-<pid>)")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":9090", "address of /metrics, /healthz and /readyz (empty: off)")
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
	if err := s.validate(); err != nil {
		return nil, usageError{err}
	}
	return s, nil
}

// validate checks each setting and names it as the operator wrote it.
func (s *settings) validate() error {
	c := s.cfg
	var errs []error
	bad := func(flagName, rule string, got any) {
		errs = append(errs, fmt.Errorf("--%s (%s): %s, got %v", flagName, envName(flagName), rule, got))
	}
	positive := map[string]time.Duration{
		"api-timeout": c.APITimeout, "retry-max-interval": c.RetryMaxInterval,
		"retry-max-elapsed": c.RetryMaxElapsed, "shutdown-timeout": c.ShutdownTimeout,
	}
	for name, d := range positive {
		if d <= 0 {
			bad(name, "must be positive", d)
		}
	}
	if c.RetryInitial <= 0 || c.RetryInitial > c.RetryMaxInterval {
		bad("retry-initial", "must be positive and at most --retry-max-interval", c.RetryInitial)
	}
	if c.Linger < 0 {
		bad("linger", "must not be negative", c.Linger)
	}
	if c.AckWait < 3*time.Second {
		bad("ack-wait", "must be at least 3s", c.AckWait)
	}
	if c.MaxBatch < 1 || c.MaxBatch > 10000 {
		bad("max-batch", "must be between 1 and 10000", c.MaxBatch)
	}
	if c.APIConcurrency < 1 {
		bad("api-concurrency", "must be at least 1", c.APIConcurrency)
	}
	if c.APIRate < 0 {
		bad("api-rate", "must not be negative", c.APIRate)
	}
	if c.MaxInFlight < 1 {
		bad("max-in-flight", "must be at least 1", c.MaxInFlight)
	}
	if c.MaxAckPending < c.MaxInFlight {
		bad("max-ack-pending", "must be at least --max-in-flight", c.MaxAckPending)
	}
	if c.BreakerThreshold == 0 {
		bad("breaker-threshold", "must not be 0 (negative turns the breaker off)", c.BreakerThreshold)
	}
	if c.DeferMax <= 0 {
		bad("defer-max", "must be positive", c.DeferMax)
	}
	if c.MaxParticipants < 1 || c.MaxParticipants > 10000 {
		bad("max-participants", "must be between 1 and 10000", c.MaxParticipants)
	}
	if c.MaxDeliveries < 2 {
		bad("max-deliveries", "must be at least 2", c.MaxDeliveries)
	}
	if c.Topology.Replicas < 1 || c.Topology.Replicas > 5 {
		bad("replicas", "must be between 1 and 5", c.Topology.Replicas)
	}
	if c.NATSURL == "" {
		bad("nats-url", "must not be empty", `""`)
	}
	if s.logFormat != "json" && s.logFormat != "console" {
		bad("log-format", "must be json or console", s.logFormat)
	}
	if _, err := parseLevel(s.logLevel); err != nil {
		bad("log-level", "must be debug, info, warn or error", s.logLevel)
	}
	if _, err := meetingclient.New(meetingclient.Config{BaseURL: c.APIBaseURL, CAFile: c.APICAFile}); err != nil {
		name := "api-base-url"
		if strings.Contains(err.Error(), "CAFile") {
			name = "api-ca-file"
		}
		errs = append(errs, fmt.Errorf("--%s (%s): %w", name, envName(name), err))
	}
	return errors.Join(errs...)
}

package worker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hangup-dev/hangup/consumer"
	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/membership"
	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// Config is every setting of a worker. cmd/worker fills it from flags and
// HANGUP_* environment variables; the README lists them in one table.
type Config struct {
	// NATS is how to reach and authenticate to NATS. Its URL defaults to
	// "nats://127.0.0.1:4222".
	NATS natsconn.Config
	// APIBaseURL is the vendor API. Defaults to meetingclient.DefaultBaseURL.
	APIBaseURL string
	// APICAFile is a PEM file of extra CAs to trust for the API. Optional.
	APICAFile string
	// APITimeout bounds one API call attempt. Defaults to 10s.
	APITimeout time.Duration
	// APITracePropagation sends the W3C traceparent and tracestate of each
	// vendor call's span to the API, a third party. Defaults to false.
	APITracePropagation bool
	// APIConcurrency is the most API calls in flight over all workers of
	// the deployment, shared equally among the live ones. Defaults to 32.
	APIConcurrency int
	// WorkerAPIConcurrency caps one worker's calls in flight, whatever its
	// share; 0 is no cap. Defaults to 0.
	WorkerAPIConcurrency int
	// ConferenceCalls is the most call chains in flight for one
	// conference; beyond the first, only full batches. Defaults to 4.
	ConferenceCalls int
	// APIRate is the most API calls per second over all workers of the
	// deployment, shared equally among the live ones; 0 is unlimited.
	// Defaults to 0.
	APIRate float64
	// WorkerAPIRate caps one worker's calls per second, whatever its
	// share; 0 is no cap. Defaults to 0.
	WorkerAPIRate float64
	// MembersBucket is the key-value bucket in which the workers of a
	// deployment see each other, to share out the partitions of the
	// request stream and the vendor budget. Defaults to "hangup_workers".
	MembersBucket string
	// MemberTTL is how long a worker that stopped beating (crashed, cut
	// off) still counts as live; its partitions move to the others after
	// it. Defaults to 6s.
	MemberTTL time.Duration
	// MaxBatch is the most participant IDs per call. Defaults to 100.
	MaxBatch int
	// Linger is how long a batch waits for more IDs. Defaults to 50ms.
	Linger time.Duration
	// MaxInFlight is the most requests held in memory by this worker.
	// Defaults to 2000.
	MaxInFlight int
	// MaxAckPending is the consumer's cap on unacked messages over all
	// workers, held or handed back for later. Defaults to 10000.
	MaxAckPending int
	// BreakerThreshold: consecutive outage answers that open the circuit
	// breaker; negative disables it. Defaults to 20.
	BreakerThreshold int
	// DeferInitial is the first delay of a request handed back because its
	// meeting has not started. Defaults to 5s.
	DeferInitial time.Duration
	// DeferMax: how long a request may wait for its meeting to become
	// ready (handed back and redelivered) before failing. Defaults to 1h.
	DeferMax time.Duration
	// CredentialsBucket is the key-value bucket of host passwords per
	// conference, from which control tokens are obtained when a request
	// carries none that works; empty disables it. Defaults to "" (cmd/worker's
	// default is "meeting_credentials").
	CredentialsBucket string
	// TokenBucket is the key-value bucket in which every worker of a
	// deployment finds the control token of each conference, so that they
	// share one per conference. Used with CredentialsBucket. Defaults to
	// "hangup_tokens".
	TokenBucket string
	// MaxParticipants is the most participant IDs per request. Defaults to 500.
	MaxParticipants int
	// MaxDeliveries: a message delivered this often is dead-lettered.
	// Defaults to 5.
	MaxDeliveries int
	// RetryInitial, RetryMaxInterval and RetryMaxElapsed shape the backoff
	// of retryable API failures. Default to 200ms, 10s and 2m.
	RetryInitial, RetryMaxInterval, RetryMaxElapsed time.Duration
	// AckWait of the durable consumer. Defaults to 30s.
	AckWait time.Duration
	// ShutdownTimeout bounds a graceful stop. Defaults to 25s.
	ShutdownTimeout time.Duration
	// Provision creates or updates the streams and the consumer at start.
	// Defaults to true (set by cmd/worker; the zero Config does not
	// provision).
	Provision bool
	// Topology names the streams, subjects and the durable consumer.
	Topology topology.Config
	// WorkerID names this worker in outcomes. Defaults to <hostname>-<pid>.
	WorkerID string
	// HTTPAddr serves /metrics, /healthz and /readyz; empty disables it.
	// Defaults to "" (cmd/worker's default is ":9090").
	HTTPAddr string
	// PProf serves net/http/pprof's profiles under /debug/pprof/ on
	// HTTPAddr. Defaults to false.
	PProf bool
}

// SetDefaults fills in what is empty. It is the one place the worker's
// defaults are written down: cmd/worker takes its flags' defaults from it,
// and the parts (dispatcher, consumer, meeting API client) receive values,
// never zeros, for the settings the worker has.
func (c *Config) SetDefaults() {
	d, cd := dispatcher.DefaultConfig(), consumer.DefaultConfig()
	c.NATS.SetDefaults()
	if c.APIBaseURL == "" {
		c.APIBaseURL = meetingclient.DefaultBaseURL
	}
	if c.APITimeout == 0 {
		c.APITimeout = meetingclient.DefaultTimeout
	}
	setDefault(&c.APIConcurrency, d.APIConcurrency)
	setDefault(&c.ConferenceCalls, d.ConferenceCalls)
	setDefault(&c.MaxBatch, d.MaxBatch)
	setDefault(&c.Linger, d.Linger)
	setDefault(&c.MaxInFlight, d.MaxInFlight)
	if c.MaxAckPending == 0 {
		c.MaxAckPending = max(10000, c.MaxInFlight)
	}
	setDefault(&c.BreakerThreshold, d.BreakerThreshold)
	setDefault(&c.DeferInitial, d.DeferInitial)
	setDefault(&c.DeferMax, d.DeferMax)
	if c.TokenBucket == "" {
		c.TokenBucket = credentials.DefaultTokenBucket
	}
	if c.MembersBucket == "" {
		c.MembersBucket = membership.DefaultBucket
	}
	if c.MemberTTL == 0 {
		c.MemberTTL = membership.DefaultTTL
	}
	if c.MaxParticipants == 0 {
		c.MaxParticipants = schemas.DefaultMaxParticipants
	}
	setDefault(&c.MaxDeliveries, cd.MaxDeliveries)
	setDefault(&c.RetryInitial, d.RetryInitial)
	setDefault(&c.RetryMaxInterval, d.RetryMaxInterval)
	setDefault(&c.RetryMaxElapsed, d.RetryMaxElapsed)
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.WorkerID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "hangup"
		}
		c.WorkerID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	c.Topology.AckWait = c.AckWait
	c.Topology.MaxAckPending = c.MaxAckPending
	c.Topology.SetDefaults()
}

// setDefault sets *v to d when it is zero.
func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate checks what the parts' own constructors do not: what spans
// several parts, and the topology. Each error is a *SettingError.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &SettingError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	errs = append(errs, attribute("", c.NATS.Validate(), natsFields)...)
	if c.ShutdownTimeout <= 0 {
		bad("ShutdownTimeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	if c.MaxInFlight < 1 {
		bad("MaxInFlight", "must be at least 1, got %d", c.MaxInFlight)
	}
	if c.MaxAckPending < c.MaxInFlight {
		bad("MaxAckPending", "must be at least MaxInFlight (%d), got %d", c.MaxInFlight, c.MaxAckPending)
	}
	if c.AckWait < 3*time.Second {
		bad("AckWait", "must be at least 3s, got %s", c.AckWait)
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			bad("HTTPAddr", "%q is not host:port", c.HTTPAddr)
		}
	}
	if c.PProf && c.HTTPAddr == "" {
		bad("PProf", "needs HTTPAddr, on which the profiles are served")
	}
	if c.CredentialsBucket != "" && c.CredentialsBucket == c.TokenBucket {
		bad("TokenBucket", "must differ from CredentialsBucket, both are %q", c.TokenBucket)
	}
	if c.MemberTTL < time.Second {
		bad("MemberTTL", "must be at least 1s, got %s", c.MemberTTL)
	}
	for _, b := range []string{c.CredentialsBucket, c.TokenBucket} {
		if b != "" && b == c.MembersBucket {
			bad("MembersBucket", "must differ from the credentials and token buckets, got %q", c.MembersBucket)
		}
	}
	// One error per setting: the rules above for AckWait and MaxAckPending
	// are stricter than the topology's.
	reported := map[string]bool{}
	for _, err := range errs {
		reported[err.(*SettingError).Field] = true
	}
	for _, err := range attribute("", c.Topology.Validate(), topologyFields) {
		if se, ok := err.(*SettingError); !ok || !reported[se.Field] {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// natsFields maps the fields of natsconn.Config to the settings of Config.
var natsFields = map[string]string{
	"URL": "NATS.URL", "CredsFile": "NATS.CredsFile", "NKeySeedFile": "NATS.NKeySeedFile",
	"User": "NATS.User", "Password": "NATS.Password", "Token": "NATS.Token",
	"CAFile": "NATS.CAFile", "CertFile": "NATS.CertFile", "KeyFile": "NATS.KeyFile",
}

// keepAlive is how often held messages are marked in progress: a third of
// AckWait, so that two keep-alives may be lost before a redelivery.
func (c *Config) keepAlive() time.Duration { return c.AckWait / 3 }

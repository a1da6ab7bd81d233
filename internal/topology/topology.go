package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/schemas"
)

// Config names the streams and tunes them.
type Config struct {
	// RequestStream holds the requests. Defaults to "DISCONNECT_REQUESTS".
	RequestStream string
	// RequestSubjectPrefix: requests arrive on <prefix>.<conferenceID>.
	// Defaults to "meeting.disconnect.requests".
	RequestSubjectPrefix string
	// ResultStream holds the result events. Defaults to "DISCONNECT_RESULTS".
	ResultStream string
	// ResultSubjectPrefix defaults to "meeting.disconnect.results".
	ResultSubjectPrefix string
	// DeadLetterStream holds the dead letters. Defaults to "DISCONNECT_DLQ".
	DeadLetterStream string
	// DeadLetterSubjectPrefix defaults to "meeting.disconnect.dlq".
	DeadLetterSubjectPrefix string
	// Durable is the name of the pull consumer all workers share. Defaults
	// to "hangup-worker".
	Durable string
	// Replicas of every stream. Defaults to 1.
	Replicas int
	// ResultMaxAge is how long results are kept. Defaults to 7 days.
	ResultMaxAge time.Duration
	// DeadLetterMaxAge is how long dead letters are kept. Defaults to 30 days.
	DeadLetterMaxAge time.Duration
	// DuplicateWindow of every stream. Defaults to 2m.
	DuplicateWindow time.Duration
	// AckWait of the consumer. Defaults to 30s.
	AckWait time.Duration
	// MaxAckPending of the consumer: the in-flight cap over all workers.
	// Defaults to 1000.
	MaxAckPending int
}

// DefaultDurable is the default name of the workers' durable consumer.
const DefaultDurable = "hangup-worker"

// SetDefaults fills in what is empty.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.RequestStream, schemas.DefaultRequestStream)
	def(&c.RequestSubjectPrefix, schemas.DefaultRequestSubjectPrefix)
	def(&c.ResultStream, schemas.DefaultResultStream)
	def(&c.ResultSubjectPrefix, schemas.DefaultResultSubjectPrefix)
	def(&c.DeadLetterStream, schemas.DefaultDeadLetterStream)
	def(&c.DeadLetterSubjectPrefix, schemas.DefaultDeadLetterSubjectPrefix)
	def(&c.Durable, DefaultDurable)
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.ResultMaxAge == 0 {
		c.ResultMaxAge = 7 * 24 * time.Hour
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = 30 * 24 * time.Hour
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 1000
	}
}

// Validate checks the settings after SetDefaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("Replicas: must be between 1 and 5, got %d", c.Replicas))
	}
	if c.DuplicateWindow > c.ResultMaxAge || c.DuplicateWindow > c.DeadLetterMaxAge {
		errs = append(errs, fmt.Errorf("DuplicateWindow: must not exceed the streams' max age, got %s", c.DuplicateWindow))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("AckWait: must be at least 1s, got %s", c.AckWait))
	}
	if c.MaxAckPending < 1 {
		errs = append(errs, fmt.Errorf("MaxAckPending: must be at least 1, got %d", c.MaxAckPending))
	}
	prefixes := map[string]string{
		"RequestSubjectPrefix": c.RequestSubjectPrefix, "ResultSubjectPrefix": c.ResultSubjectPrefix,
		"DeadLetterSubjectPrefix": c.DeadLetterSubjectPrefix,
	}
	for name, p := range prefixes {
		if err := validPrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if c.RequestSubjectPrefix == c.ResultSubjectPrefix || c.RequestSubjectPrefix == c.DeadLetterSubjectPrefix || c.ResultSubjectPrefix == c.DeadLetterSubjectPrefix {
		errs = append(errs, errors.New("subject prefixes: requests, results and dead letters need three different prefixes"))
	}
	return errors.Join(errs...)
}

func validPrefix(p string) error {
	if p == "" {
		return errors.New("must not be empty")
	}
	for _, tok := range splitTokens(p) {
		if tok == "" || tok == "*" || tok == ">" {
			return fmt.Errorf("%q is not a literal subject prefix", p)
		}
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q contains white space or control characters", p)
		}
	}
	return nil
}

func splitTokens(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Ensure creates the three streams and the durable consumer, or updates
// them to these settings. A stream that exists with another retention
// cannot be updated; the error says so.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	streams := []jetstream.StreamConfig{
		{
			Name:        c.RequestStream,
			Description: "hangup: disconnect requests (work queue)",
			Subjects:    []string{c.RequestSubjectPrefix + ".>"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			Duplicates:  c.DuplicateWindow,
		},
		{
			Name:        c.ResultStream,
			Description: "hangup: one result event per request",
			Subjects:    []string{c.ResultSubjectPrefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      c.ResultMaxAge,
			Duplicates:  c.DuplicateWindow,
		},
		{
			Name:        c.DeadLetterStream,
			Description: "hangup: requests that could not succeed, with the original message",
			Subjects:    []string{c.DeadLetterSubjectPrefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      c.DeadLetterMaxAge,
			Duplicates:  c.DuplicateWindow,
		},
	}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
	}
	_, err := js.CreateOrUpdateConsumer(ctx, c.RequestStream, jetstream.ConsumerConfig{
		Durable:       c.Durable,
		Description:   "hangup workers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxAckPending: c.MaxAckPending,
		// The worker dead-letters a message when its delivery count reaches
		// its own limit; the server must never stop delivering silently.
		MaxDeliver:    -1,
		FilterSubject: c.RequestSubjectPrefix + ".>",
	})
	if err != nil {
		return fmt.Errorf("create or update consumer %s on %s: %w", c.Durable, c.RequestStream, err)
	}
	return nil
}

package topology

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
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
	// Defaults to 1000. Each partition's consumer has the same cap.
	MaxAckPending int
	// Partitions is how many partitions the request stream spreads the
	// conferences over; each is worked by one worker at a time. Defaults
	// to 16. It can be changed at any time: see Ensure.
	Partitions int
	// PinnedTTL is how long a partition stays with a worker that stopped
	// pulling from it before another worker may take it over. Defaults to
	// 5s.
	PinnedTTL time.Duration
}

// PriorityGroup is the priority group of the partition consumers: the
// server pins each partition to one pulling client of this group.
const PriorityGroup = "hangup"

// PartitionPrefix begins the subject under which the request stream
// stores a request: <PartitionPrefix>.<partition>.<conferenceID>. No stream
// listens on it, so nobody can publish into a partition directly.
const PartitionPrefix = "hangup.partitioned"

// MaxPartitions is the most partitions a request stream may have.
const MaxPartitions = 256

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
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.PinnedTTL == 0 {
		c.PinnedTTL = 5 * time.Second
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
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("Partitions: must be between 1 and %d, got %d", MaxPartitions, c.Partitions))
	}
	if c.PinnedTTL < time.Second {
		errs = append(errs, fmt.Errorf("PinnedTTL: must be at least 1s, got %s", c.PinnedTTL))
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

// Ensure creates the three streams, the shared durable consumer and one
// consumer per partition, or updates them to these settings. A stream
// that exists with another retention cannot be updated; the error says so.
//
// The request stream stores a request published to <prefix>.<conferenceID>
// as <PartitionPrefix>.<partition>.<conferenceID>, the partition being a
// hash of the conference ID (the server's subject transform partition()).
// The consumer <Durable>-p<N> takes partition N. The durable <Durable>
// takes what the transform leaves alone: requests stored before the stream
// was partitioned (so an upgrade loses nothing) and messages on deeper
// subjects (dead-lettered as invalid). Its filters, <prefix>.* and
// <prefix>.*.>, cover what <prefix>.> does; with <prefix>.> itself the
// server (2.15) does not remove acked messages of the partitions from the
// work queue. The
// partition consumers come before the transform, so that no request lands
// in a partition nobody pulls.
//
// Changing Partitions re-maps new requests only; the consumers of the old
// partitions stay, and the workers keep serving them (PartitionConsumers).
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	streams := c.streams(true)
	// Until the partition consumers exist, the request stream keeps the
	// transform it has (none when new): a replicated stream applies its
	// transform on each replica as it stores a message, so taking it away
	// even for a moment lets the replicas store one request under two
	// subjects, and the work queue loses or repeats it.
	current, err := ensureRequestStream(ctx, js, streams[0])
	if err != nil {
		return err
	}
	for _, sc := range streams[1:] {
		if err := ensureStream(ctx, js, sc); err != nil {
			return err
		}
	}
	if err := ensureConsumer(ctx, js, c.RequestStream, c.sharedConsumer()); err != nil {
		return err
	}
	for p := range c.Partitions {
		if err := ensureConsumer(ctx, js, c.RequestStream, c.partitionConsumer(p)); err != nil {
			return err
		}
	}
	if sameTransform(current, streams[0].SubjectTransform) {
		return nil
	}
	return ensureStream(ctx, js, streams[0])
}

// ensureRequestStream creates the request stream without a transform
// when it does not exist, or updates it with the transform it has when
// the settings hangup makes differ, and returns the transform it has.
// Several workers provisioning at once must never take a transform away
// that another has just added: a missing stream is created, never
// updated into being, and a stream whose settings are right already is
// left alone.
func ensureRequestStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (*jetstream.SubjectTransformConfig, error) {
	for {
		st, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			sc := want
			sc.SubjectTransform = nil
			_, err := js.CreateStream(ctx, sc)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another worker created it meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("create stream %s: %w", want.Name, err)
			}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", want.Name, err)
		}
		have := st.CachedInfo().Config
		sc := want
		sc.SubjectTransform = have.SubjectTransform
		if sameSettings(have, sc) {
			return have.SubjectTransform, nil
		}
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("update stream %s: %w", want.Name, err)
		}
		return have.SubjectTransform, nil
	}
}

// sameSettings reports whether have already holds what hangup sets in
// want (the server fills in the rest).
func sameSettings(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Storage == want.Storage &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		sameTransform(have.SubjectTransform, want.SubjectTransform)
}

func sameTransform(a, b *jetstream.SubjectTransformConfig) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("create or update stream %s: %w", sc.Name, err)
	}
	return nil
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cc jetstream.ConsumerConfig) error {
	if _, err := js.CreateOrUpdateConsumer(ctx, stream, cc); err != nil {
		return fmt.Errorf("create or update consumer %s on %s: %w", cc.Durable, stream, err)
	}
	return nil
}

// streams are the three streams; partitioned sets the request stream's
// subject transform.
func (c Config) streams(partitioned bool) []jetstream.StreamConfig {
	req := jetstream.StreamConfig{
		Name:        c.RequestStream,
		Description: "hangup: disconnect requests (work queue)",
		Subjects:    []string{c.RequestSubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
	}
	if partitioned {
		req.SubjectTransform = &jetstream.SubjectTransformConfig{
			Source:      c.RequestSubjectPrefix + ".*",
			Destination: fmt.Sprintf("%s.{{partition(%d,1)}}.{{wildcard(1)}}", PartitionPrefix, c.Partitions),
		}
	}
	return []jetstream.StreamConfig{
		req,
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
}

// sharedConsumer is the durable every worker pulls from: what the
// partitions do not take.
func (c Config) sharedConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       c.Durable,
		Description:   "hangup workers: requests outside the partitions",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxAckPending: c.MaxAckPending,
		// The worker dead-letters a message when its delivery count reaches
		// its own limit; the server must never stop delivering silently.
		MaxDeliver:     -1,
		FilterSubjects: []string{c.RequestSubjectPrefix + ".*", c.RequestSubjectPrefix + ".*.>"},
	}
}

// PartitionConsumer names the consumer of partition p.
func (c Config) PartitionConsumer(p int) string {
	return fmt.Sprintf("%s-p%d", c.Durable, p)
}

func (c Config) partitionConsumer(p int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        c.PartitionConsumer(p),
		Description:    fmt.Sprintf("hangup workers: partition %d, one worker at a time", p),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxAckPending:  c.MaxAckPending,
		MaxDeliver:     -1,
		FilterSubject:  fmt.Sprintf("%s.%d.*", PartitionPrefix, p),
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		PinnedTTL:      c.PinnedTTL,
	}
}

// PartitionConsumers returns the names of the request stream's partition
// consumers, in partition order: those of the configured partitions, and
// those of earlier, larger partition counts that still exist, so that the
// requests stored under them are served.
func PartitionConsumers(ctx context.Context, js jetstream.JetStream, c Config) ([]string, error) {
	stream, err := js.Stream(ctx, c.RequestStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", c.RequestStream, err)
	}
	seen := map[int]bool{}
	for p := range c.Partitions {
		seen[p] = true
	}
	names := stream.ConsumerNames(ctx)
	for name := range names.Name() {
		rest, ok := strings.CutPrefix(name, c.Durable+"-p")
		if !ok {
			continue
		}
		if p, err := strconv.Atoi(rest); err == nil && p >= 0 && strconv.Itoa(p) == rest {
			seen[p] = true
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("consumers of %s: %w", c.RequestStream, err)
	}
	out := make([]string, 0, len(seen))
	for _, p := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, c.PartitionConsumer(p))
	}
	return out, nil
}

// PartitionConsumerNames are the consumers of the configured partitions.
func (c Config) PartitionConsumerNames() []string {
	out := make([]string, c.Partitions)
	for p := range out {
		out[p] = c.PartitionConsumer(p)
	}
	return out
}

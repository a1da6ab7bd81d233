package deferral

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the bucket of deferral counts.
const DefaultBucket = "hangup_deferrals"

// Ledger counts deferrals per request message.
type Ledger struct {
	kv jetstream.KeyValue
}

// Ensure creates (or updates) the bucket and returns its ledger. Entries
// live for ttl after their last deferral, which must exceed the longest a
// request may be deferred.
func Ensure(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, replicas int) (*Ledger, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "hangup: deliberate redeliveries per request message",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("deferral bucket %s: %w", bucket, err)
	}
	return &Ledger{kv: kv}, nil
}

// Open opens an existing bucket.
func Open(ctx context.Context, js jetstream.JetStream, bucket string) (*Ledger, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("deferral bucket %s: %w", bucket, err)
	}
	return &Ledger{kv: kv}, nil
}

var unsafeKey = regexp.MustCompile(`[^-_=a-zA-Z0-9]`)

func key(stream string, seq uint64) string {
	return unsafeKey.ReplaceAllString(stream, "_") + "." + fmt.Sprint(seq)
}

// Count returns how often the message at seq in stream was deferred.
func (l *Ledger) Count(ctx context.Context, stream string, seq uint64) (uint64, error) {
	e, err := l.kv.Get(ctx, key(stream, seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("deferrals of %s/%d: %w", stream, seq, err)
	}
	if len(e.Value()) != 8 {
		return 0, fmt.Errorf("deferrals of %s/%d: malformed entry", stream, seq)
	}
	return binary.BigEndian.Uint64(e.Value()), nil
}

// Record adds one deferral of the message at seq in stream. Only one
// worker holds a message at a time, so a read-then-update race needs two
// deliveries of one message at once; the revision check turns it into an
// error rather than a lost count.
func (l *Ledger) Record(ctx context.Context, stream string, seq uint64) error {
	k := key(stream, seq)
	e, err := l.kv.Get(ctx, k)
	var n uint64
	var rev uint64
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("record deferral of %s/%d: %w", stream, seq, err)
	default:
		if len(e.Value()) == 8 {
			n = binary.BigEndian.Uint64(e.Value())
		}
		rev = e.Revision()
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], n+1)
	if rev == 0 {
		_, err = l.kv.Create(ctx, k, buf[:])
	} else {
		_, err = l.kv.Update(ctx, k, buf[:], rev)
	}
	if err != nil {
		return fmt.Errorf("record deferral of %s/%d: %w", stream, seq, err)
	}
	return nil
}

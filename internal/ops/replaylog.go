package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultReplayBucket is the key-value bucket in which replays of dead
// letters are recorded.
const DefaultReplayBucket = "hangup_replays"

// ReplayRecord is what the replay bucket holds for one request ID: the
// requests published as its replays, oldest first.
type ReplayRecord struct {
	// RequestID is the request that was dead-lettered and replayed.
	RequestID string   `json:"requestID"`
	Replays   []Replay `json:"replays"`
}

// Replay is one replay of a request.
type Replay struct {
	// RequestID is the new request's ID; its replayOf is the original's.
	RequestID string `json:"requestID"`
	// At is when it was published.
	At time.Time `json:"at"`
	// DeadLetterSequence is the dead letter it was made from.
	DeadLetterSequence uint64 `json:"deadLetterSequence"`
}

// Last is the latest replay.
func (r *ReplayRecord) Last() Replay { return r.Replays[len(r.Replays)-1] }

// EnsureReplayBucket opens the replay bucket, creating it first if it is
// missing, with history 1, file storage, the given replicas (1 to 5) and
// entries kept for maxAge (the dead letters' own age limit, so that a
// record lives as long as its dead letter at least). An existing bucket is
// returned as it is. An empty bucket name means DefaultReplayBucket.
func EnsureReplayBucket(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, maxAge time.Duration) (jetstream.KeyValue, error) {
	bucket = cmp.Or(bucket, DefaultReplayBucket)
	if replicas < 1 || replicas > 5 {
		return nil, fmt.Errorf("ensure bucket %s: replicas must be between 1 and 5, got %d", bucket, replicas)
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "hangup: dead letters replayed as new requests, by original request ID",
			History:     1,
			TTL:         maxAge,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another operator created it in the meantime.
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// replayLog reads and writes the replay records. A nil kv is a bucket that
// does not exist yet: nothing was replayed.
type replayLog struct {
	kv jetstream.KeyValue
}

// openReplayLog opens the bucket if it exists, without creating it.
func openReplayLog(ctx context.Context, js jetstream.JetStream, bucket string) (*replayLog, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return &replayLog{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	return &replayLog{kv: kv}, nil
}

// replayKey is the key of a request ID: the characters a key may not hold
// ('.' would make tokens, and ':' is not allowed) are written as =XX.
func replayKey(requestID string) string {
	var b strings.Builder
	for i := 0; i < len(requestID); i++ {
		c := requestID[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// get returns the record of requestID and its revision; nil and 0 when it
// was never replayed.
func (l *replayLog) get(ctx context.Context, requestID string) (*ReplayRecord, uint64, error) {
	if l.kv == nil {
		return nil, 0, nil
	}
	e, err := l.kv.Get(ctx, replayKey(requestID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("replays of %s: %w", requestID, err)
	}
	var rec ReplayRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || len(rec.Replays) == 0 {
		return nil, 0, fmt.Errorf("replays of %s: the record in %s is not a replay record", requestID, l.kv.Bucket())
	}
	return &rec, e.Revision(), nil
}

// errReplayedMeanwhile: the record changed between reading and writing it;
// someone else replayed the request at the same time.
var errReplayedMeanwhile = errors.New("someone else replayed it at the same time")

// put writes rec if the record is still at revision rev (0: there is
// none), and returns the new revision. Two operators replaying one request
// at once both read the same revision; only one write succeeds.
func (l *replayLog) put(ctx context.Context, rec *ReplayRecord, rev uint64) (uint64, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode replay record: %w", err)
	}
	key := replayKey(rec.RequestID)
	var newRev uint64
	if rev == 0 {
		newRev, err = l.kv.Create(ctx, key, data)
	} else {
		newRev, err = l.kv.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, errReplayedMeanwhile
	}
	if err != nil {
		return 0, fmt.Errorf("record replay of %s: %w", rec.RequestID, err)
	}
	return newRev, nil
}

// undo puts back what was there before put wrote revision rev: nothing
// (prev nil) or prev.
func (l *replayLog) undo(ctx context.Context, requestID string, prev *ReplayRecord, rev uint64) error {
	key := replayKey(requestID)
	var err error
	if prev == nil {
		err = l.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	} else {
		var data []byte
		if data, err = json.Marshal(prev); err == nil {
			_, err = l.kv.Update(ctx, key, data, rev)
		}
	}
	if err != nil {
		return fmt.Errorf("take back the replay record of %s: %w", requestID, err)
	}
	return nil
}

package credentials

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the default name of the key-value bucket of host
// passwords.
const DefaultBucket = "meeting_credentials"

// EnsureBucket opens the bucket, creating it first if it is missing, with
// history 1, file storage and the given replicas (1 to 5). An existing
// bucket is returned as it is, whatever its settings: its owner may have
// chosen others. An empty bucket name means DefaultBucket.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (jetstream.KeyValue, error) {
	return ensure(ctx, js, jetstream.KeyValueConfig{
		Bucket:      cmp.Or(bucket, DefaultBucket),
		Description: "Host passwords of meetings by conference ID, read by the hangup worker.",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
}

// ensure opens the bucket of cfg, creating it with cfg if it is missing.
func ensure(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("ensure bucket %s: replicas must be between 1 and 5, got %d", cfg.Bucket, cfg.Replicas)
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another process created it in the meantime, maybe with other
			// settings.
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// OpenBucket opens an existing bucket; it fails with an error wrapping
// jetstream.ErrBucketNotFound when there is none. An empty bucket name means
// DefaultBucket.
func OpenBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// EnsureTokenBucket opens the token cache bucket, creating it first if it
// is missing: history 1, file storage, the given replicas (1 to 5), entries
// that live no longer than MaxTokenLife and per-entry TTLs, so that each
// entry disappears with its token. An existing bucket must allow per-entry
// TTLs. An empty bucket name means DefaultTokenBucket.
func EnsureTokenBucket(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (jetstream.KeyValue, error) {
	kv, err := ensure(ctx, js, jetstream.KeyValueConfig{
		Bucket:         cmp.Or(bucket, DefaultTokenBucket),
		Description:    "Meeting control tokens by conference ID, shared by the hangup workers. Holds secrets.",
		History:        1,
		TTL:            MaxTokenLife,
		LimitMarkerTTL: time.Minute,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
	})
	if err != nil {
		return nil, err
	}
	return kv, checkTokenBucket(ctx, kv)
}

// OpenTokenBucket opens an existing token cache bucket and checks that it
// allows per-entry TTLs. An empty bucket name means DefaultTokenBucket.
func OpenTokenBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := OpenBucket(ctx, js, cmp.Or(bucket, DefaultTokenBucket))
	if err != nil {
		return nil, err
	}
	return kv, checkTokenBucket(ctx, kv)
}

func checkTokenBucket(ctx context.Context, kv jetstream.KeyValue) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("token cache bucket %s: %w", kv.Bucket(), err)
	}
	if st.LimitMarkerTTL() <= 0 {
		return fmt.Errorf("token cache bucket %s: it must allow per-entry TTLs (limit_marker_ttl set); delete it and let a worker with --provision create it", kv.Bucket())
	}
	return nil
}

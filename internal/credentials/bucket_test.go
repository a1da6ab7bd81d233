package credentials_test

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/natstest"
)

func TestEnsureBucket(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Run(t))
	ctx := t.Context()

	_, err := credentials.OpenBucket(ctx, js, "")
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound)

	kv, err := credentials.EnsureBucket(ctx, js, "", 1)
	require.NoError(t, err)
	require.Equal(t, credentials.DefaultBucket, kv.Bucket())
	status, err := kv.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), status.History())
	info := status.(*jetstream.KeyValueBucketStatus).StreamInfo()
	require.Equal(t, jetstream.FileStorage, info.Config.Storage)
	require.Equal(t, 1, info.Config.Replicas)
	_, err = kv.Put(ctx, "914083136", []byte(`{"hostPassword":"x"}`))
	require.NoError(t, err)

	// Again: the same bucket, data kept.
	again, err := credentials.EnsureBucket(ctx, js, credentials.DefaultBucket, 1)
	require.NoError(t, err)
	e, err := again.Get(ctx, "914083136")
	require.NoError(t, err)
	require.JSONEq(t, `{"hostPassword":"x"}`, string(e.Value()))

	opened, err := credentials.OpenBucket(ctx, js, credentials.DefaultBucket)
	require.NoError(t, err)
	require.Equal(t, credentials.DefaultBucket, opened.Bucket())
}

func TestEnsureBucketKeepsOwnersSettings(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Run(t))
	ctx := t.Context()
	_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "creds", History: 5, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)

	kv, err := credentials.EnsureBucket(ctx, js, "creds", 1)
	require.NoError(t, err)
	status, err := kv.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), status.History())
}

func TestEnsureBucketValidates(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Run(t))
	_, err := credentials.EnsureBucket(t.Context(), js, "", 0)
	require.ErrorContains(t, err, "replicas must be between 1 and 5, got 0")
	_, err = credentials.EnsureBucket(t.Context(), js, "bad name!", 1)
	require.Error(t, err)
	require.Contains(t, err.Error(), "ensure bucket bad name!")
}

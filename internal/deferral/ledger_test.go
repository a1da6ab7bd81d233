package deferral

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hangup-dev/hangup/internal/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCountsPerMessage(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	l, err := Ensure(ctx, js, "", time.Hour, 1)
	require.NoError(t, err)
	n, err := l.Count(ctx, "DISCONNECT_REQUESTS", 7)
	require.NoError(t, err)
	require.Zero(t, n)
	for i := 0; i < 3; i++ {
		require.NoError(t, l.Record(ctx, "DISCONNECT_REQUESTS", 7))
	}
	require.NoError(t, l.Record(ctx, "DISCONNECT_REQUESTS", 8))
	n, err = l.Count(ctx, "DISCONNECT_REQUESTS", 7)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	n, err = l.Count(ctx, "DISCONNECT_REQUESTS", 8)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	again, err := Open(ctx, js, "")
	require.NoError(t, err)
	n, err = again.Count(ctx, "DISCONNECT_REQUESTS", 7)
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "the count lives in the bucket, not in the process")
}

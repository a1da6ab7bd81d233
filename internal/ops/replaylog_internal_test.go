package ops

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/schemas"
)

func TestReplayLogWritesOnlyOverTheRevisionItRead(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	kv, err := EnsureReplayBucket(ctx, js, "", 1, time.Hour)
	require.NoError(t, err)
	log := &replayLog{kv: kv}

	rec, rev, err := log.get(ctx, "a:b.c")
	require.NoError(t, err)
	require.Nil(t, rec)
	first := &ReplayRecord{RequestID: "a:b.c", Replays: []Replay{{RequestID: "a:b.c.r1", DeadLetterSequence: 3}}}
	// Two writers read "no record" at once: only one creates it.
	rev1, err := log.put(ctx, first, rev)
	require.NoError(t, err)
	_, err = log.put(ctx, first, rev)
	require.ErrorIs(t, err, errReplayedMeanwhile)

	second := &ReplayRecord{RequestID: "a:b.c", Replays: append(first.Replays, Replay{RequestID: "a:b.c.r2"})}
	rev2, err := log.put(ctx, second, rev1)
	require.NoError(t, err)
	_, err = log.put(ctx, second, rev1)
	require.ErrorIs(t, err, errReplayedMeanwhile, "an update over a stale revision")

	got, gotRev, err := log.get(ctx, "a:b.c")
	require.NoError(t, err)
	require.Equal(t, rev2, gotRev)
	require.Len(t, got.Replays, 2)

	// Taking back the update restores the first record; taking back the
	// creation removes it, and it can be created again.
	require.NoError(t, log.undo(ctx, "a:b.c", first, rev2))
	got, gotRev, err = log.get(ctx, "a:b.c")
	require.NoError(t, err)
	require.Equal(t, first.Replays, got.Replays)
	require.NoError(t, log.undo(ctx, "a:b.c", nil, gotRev))
	got, rev, err = log.get(ctx, "a:b.c")
	require.NoError(t, err)
	require.Nil(t, got)
	_, err = log.put(ctx, first, rev)
	require.NoError(t, err)
}

func TestReplayKeysAndIDs(t *testing.T) {
	require.Equal(t, "mod-2026_11", replayKey("mod-2026_11"))
	require.Equal(t, "=2Ea=3Ab=2E", replayKey(".a:b."))
	require.Equal(t, "r.r1", replayID("r", 1))
	long := strings.Repeat("x", schemas.MaxRequestIDLen-3)
	require.Equal(t, long+".r9", replayID(long, 9))
	fresh := replayID(long, 10)
	require.True(t, strings.HasPrefix(fresh, "replay-"), fresh)
	require.NoError(t, schemas.ValidateRequestID(fresh))
	require.NotEqual(t, fresh, replayID(long, 10))
}

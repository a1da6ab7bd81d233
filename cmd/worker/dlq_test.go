package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/ops"
	"github.com/hangup-dev/hangup/schemas"
)

func TestDLQReplayAsksAndAnOperatorMaySayNo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := natstest.Run(t)
	url := srv.ClientURL()
	runOK(t, ctx, "", "provision", "--nats-url", url, "--partitions", "1")
	_, js := natstest.Connect(t, srv)
	dl := `{"reason":"rejected","error":"x","requestID":"r1","conferenceID":"c1","subject":"meeting.disconnect.requests.c1",` +
		`"streamSequence":1,"deliveries":1,"request":{"requestID":"r1","conferenceID":"c1","participantIDs":["a1"]},` +
		`"receivedAt":"2026-11-25T18:00:00Z","deadLetteredAt":"2026-11-25T18:00:01Z"}`
	_, err := js.Publish(ctx, schemas.DefaultDeadLetterSubjectPrefix+".c1", []byte(dl))
	require.NoError(t, err)

	var out, prompt bytes.Buffer
	err = runWith(ctx, []string{"dlq", "replay", "--nats-url", url, "--conference", "c1"}, strings.NewReader("n\n"), &out, &prompt)
	require.ErrorIs(t, err, ops.ErrNotConfirmed)
	require.Equal(t, 1, exitCode(err))
	require.Equal(t, "#1 r1 (conference c1): replay as r1.r1\n", out.String())
	require.Equal(t, "replay 1 dead letters? [y/N] ", prompt.String())

	out.Reset()
	require.NoError(t, runWith(ctx, []string{"dlq", "replay", "--nats-url", url, "--dry-run", "1"}, strings.NewReader(""), &out, &prompt))
	require.Contains(t, out.String(), "dry run: 1 dead letters would be replayed; nothing published\n")

	st, err := js.Stream(ctx, schemas.DefaultRequestStream)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs)
}

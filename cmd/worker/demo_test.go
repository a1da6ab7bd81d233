package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDemoDisconnectsExactlyTheRequestedParticipants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"demo", "--requests", "400", "--conferences", "12", "--participants", "30",
		"--invalid", "6", "--error-rate", "0.2", "--latency", "2ms", "--strict"}, &out, &errOut)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	s := out.String()
	require.Contains(t, s, "results                 400 (")
	require.Contains(t, s, "dead letters            6 (invalid_request 6)")
	require.Contains(t, s, "exactly the requested participants disconnected: yes")
	require.Contains(t, s, "invariant (one result per request, one dead letter per failure or invalid message): holds")
}

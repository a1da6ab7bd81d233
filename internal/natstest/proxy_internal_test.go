package natstest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHostPortTakesAddressesAndURLs(t *testing.T) {
	for target, want := range map[string]string{
		"127.0.0.1:4222":        "127.0.0.1:4222",
		"nats://127.0.0.1:4222": "127.0.0.1:4222",
		" nats://localhost:42 ": "localhost:42",
	} {
		got, err := hostPort(target)
		require.NoError(t, err, target)
		require.Equal(t, want, got, target)
	}
	for _, target := range []string{"nats://127.0.0.1", "127.0.0.1", "nats://%zz:1"} {
		_, err := hostPort(target)
		require.ErrorContains(t, err, "natstest proxy", target)
	}
}

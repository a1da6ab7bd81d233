package compose

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Ryuk, testcontainers' reaper, is an image that would have to be
	// pulled; the test takes the stack down itself.
	setDefaultEnv("TESTCONTAINERS_RYUK_DISABLED", "true")
	// The stack publishes its ports on the loopback interface only. Inside
	// a container (a /.dockerenv exists) testcontainers would otherwise
	// dial the default gateway. With a remote engine
	// (DOCKER_HOST=tcp://...) its host is the right one.
	if h := os.Getenv("DOCKER_HOST"); h == "" || strings.HasPrefix(h, "unix://") {
		setDefaultEnv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
	goleak.VerifyTestMain(m)
}

// setDefaultEnv sets key to value unless it is set already.
func setDefaultEnv(key, value string) {
	if _, ok := os.LookupEnv(key); !ok {
		_ = os.Setenv(key, value)
	}
}

//go:build !unix

package bench

import "time"

// cpuTime is not measured on this system.
func cpuTime() (user, sys time.Duration) { return 0, 0 }

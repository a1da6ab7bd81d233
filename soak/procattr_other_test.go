//go:build unix && !linux

package soak

import "syscall"

// sysProcAttr: only Linux can tie a child's life to the test process; the
// test's cleanup kills the children elsewhere.
func sysProcAttr() *syscall.SysProcAttr { return nil }

//go:build linux

package soak

import "syscall"

// sysProcAttr makes the kernel kill a child when the test process dies, so
// that a test killed by its timeout leaves no process behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

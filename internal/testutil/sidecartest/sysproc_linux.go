package sidecartest

import "syscall"

// sysProcAttr makes the kernel kill the sidecar if the test binary dies without
// running its cleanups (a panic or a -timeout), so no sidecar outlives the test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

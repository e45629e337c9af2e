package proc

import "syscall"

// SysProcAttr makes the kernel kill a process if the test binary dies without
// running its cleanups (a panic or a -timeout), so no server outlives the test run.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

package main

import "syscall"

// sysProcAttr puts a child in its own process group, so a Ctrl-C reaches only
// the harness (which then stops the children in order), and makes the kernel
// kill it if the harness dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

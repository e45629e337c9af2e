//go:build !linux

package main

import "syscall"

// sysProcAttr is the default: the harness measures /proc and is meant for
// Linux; elsewhere a Ctrl-C also reaches the children directly.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}

//go:build !linux

package proc

import "syscall"

// SysProcAttr is nil here: only Linux has a parent-death signal.
func SysProcAttr() *syscall.SysProcAttr { return nil }

//go:build !linux

package sidecartest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

//go:build unix

package localapi

import "syscall"

// openFileLimit returns the process's soft limit of open files
// (RLIMIT_NOFILE; Go raises it to the hard limit at start), or 0 when
// unknown.
func openFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return uint64(l.Cur) // int64 on some BSDs
}

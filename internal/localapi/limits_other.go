//go:build !unix

package localapi

// openFileLimit returns 0: the open-file limit is unknown here.
func openFileLimit() uint64 { return 0 }

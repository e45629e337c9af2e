package localapi

// minMaxConns is the least defaultMaxConns gives, however low the open-file
// limit.
const minMaxConns = 64

// defaultMaxConns is the connection cap of each listener when Options leave
// it unset: DefaultMaxConns, or a quarter of the open-file limit when that is
// lower, so that the local API's connections (two listeners: half at most)
// never take the descriptors the broker, the embedded store and the pushes
// to the app need.
func defaultMaxConns() int {
	n := DefaultMaxConns
	if lim := openFileLimit(); lim > 0 && lim/4 < uint64(n) {
		n = max(int(lim/4), minMaxConns)
	}
	return n
}

package redisstore

import "strings"

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// slot returns the Redis Cluster hash slot of key, as the cluster computes
// it: CRC16 (XMODEM) of the key's hash tag mod 16384. The hash tag is what
// lies between the first '{' and the first '}' after it, when that is not
// empty; otherwise the whole key is hashed. Every key of a tenant carries
// the tag {<tenant>}, so they all share the tenant's slot.
func slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % clusterSlots)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// of Redis Cluster's key distribution. Computed bit by bit: keys are short,
// and a table would be package state.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

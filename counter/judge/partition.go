package judge

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Partition returns the partition, 0 to n-1, of a creator's visits in a
// campaign: FNV-1a (64 bits) of campaign + "\x00" + creator, mod n. The
// value is part of the log layout and never changes for given arguments.
// It does not allocate.
func Partition(campaign, creator string, n uint32) uint32 {
	if n == 0 {
		panic("BUG: judge.Partition into 0 partitions")
	}
	h := uint64(fnvOffset)
	for i := 0; i < len(campaign); i++ {
		h ^= uint64(campaign[i])
		h *= fnvPrime
	}
	h *= fnvPrime // the separator, "\x00": xor with 0 leaves h as it is
	for i := 0; i < len(creator); i++ {
		h ^= uint64(creator[i])
		h *= fnvPrime
	}
	return uint32(h % uint64(n))
}

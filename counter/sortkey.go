package counter

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
)

// SortByKey returns the entries of all sorted by key, stably (of equal
// keys, the earlier index first), in a new slice. It sorts the keys with
// their indices, not the entries (a link is about 200 bytes), and a key's
// first 8 bytes, big-endian, order most pairs without reading the string.
// (Measured once under pprof, a node's load of 1M links from Redis: a
// stable sort of pointers to the entries took 2 s of it, this 0.6 s.)
func SortByKey[T any](all []T, key func(*T) string) []T {
	keys := make([]sortKey, len(all))
	for i := range all {
		k := key(&all[i])
		var b [8]byte
		copy(b[:], k)
		keys[i] = sortKey{binary.BigEndian.Uint64(b[:]), k, i}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if a.prefix != b.prefix { // cmp.Or would compare the strings too
			return cmp.Compare(a.prefix, b.prefix)
		}
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.i, b.i))
	})
	out := make([]T, len(keys))
	for k, e := range keys {
		out[k] = all[e.i]
	}
	return out
}

// sortKey is an entry's key and index for SortByKey.
type sortKey struct {
	prefix uint64 // the key's first 8 bytes, big-endian, zero-padded
	key    string
	i      int
}

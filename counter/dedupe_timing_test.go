package counter

import (
	"sync/atomic"
	"testing"
)

// BenchmarkLocalFilter is the edge's filter of known visitors: Test of a
// known key (a repeat click, answered without the store), Test of a new
// one (a miss, which asks the store) and Add (a visit the store
// confirmed), with a million keys in, every goroutine at once
// (-cpu 1,2,4: Test takes no lock).
func BenchmarkLocalFilter(b *testing.B) {
	p, err := NewDedupeParams(1_000_000, 0.001)
	if err != nil {
		b.Fatal(err)
	}
	l := NewLocalFilter(p)
	const known = 1_000_000
	for i := range known {
		v := visitKey(i)
		l.Add(&v)
	}
	var next atomic.Int64
	b.Run("test-known", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1_000))
			for pb.Next() {
				v := visitKey(i % known)
				if !l.Test(&v) {
					b.Fatal("a known key missed")
				}
				i += 7
			}
		})
	})
	b.Run("test-new", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := known + int(next.Add(1<<30))
			for pb.Next() {
				v := visitKey(i)
				l.Test(&v)
				i++
			}
		})
	})
	b.Run("add", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 2*known + int(next.Add(1<<30))
			for pb.Next() {
				v := visitKey(i)
				l.Add(&v)
				i++
			}
		})
	})
}

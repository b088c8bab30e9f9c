package clickid

import (
	"sync/atomic"
	"testing"
)

var sink atomic.Int64

func BenchmarkAppend(b *testing.B) {
	s := NewSigner(testKey)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := spring26
		buf := make([]byte, 0, 512)
		n := 0
		for pb.Next() {
			buf = s.Append(buf[:0], &c)
			n += len(buf)
		}
		sink.Add(int64(n))
	})
}

// BenchmarkAppendNew is the redirect's cost: a new nonce from the pooled
// state's ChaCha8, then Append.
func BenchmarkAppendNew(b *testing.B) {
	s := NewSigner(testKey)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := spring26
		buf := make([]byte, 0, 512)
		n := 0
		for pb.Next() {
			buf = s.AppendNew(buf[:0], &c)
			n += len(buf)
		}
		sink.Add(int64(n))
	})
}

func BenchmarkParse(b *testing.B) {
	s := NewSigner(testKey)
	id := s.Append(nil, &spring26)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			c, err := s.Parse(id)
			if err != nil {
				b.Fatal(err)
			}
			n += len(c.Link)
		}
		sink.Add(int64(n))
	})
}

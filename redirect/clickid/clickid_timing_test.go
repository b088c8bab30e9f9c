package clickid

import (
	"sync/atomic"
	"testing"
)

var sink atomic.Int64

// BenchmarkAppend signs given claims; AppendNew is the redirect's cost: a
// new nonce from the pooled state's ChaCha8, then the same signing.
func BenchmarkAppend(b *testing.B) {
	s := NewSigner(testKey)
	for _, bc := range []struct {
		name   string
		append func([]byte, *Claims) []byte
	}{{"Append", s.Append}, {"AppendNew", s.AppendNew}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c := spring26
				buf := make([]byte, 0, 512)
				n := 0
				for pb.Next() {
					buf = bc.append(buf[:0], &c)
					n += len(buf)
				}
				sink.Add(int64(n))
			})
		})
	}
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

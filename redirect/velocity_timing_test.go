package redirect

import (
	"sync/atomic"
	"testing"
	"time"
)

var velocitySink atomic.Int64

// BenchmarkVelocityHit measures Hit for one hot network (every goroutine on
// one shard lock: a click farm at full speed), for random networks (the
// sketch's cache misses over 4 MiB), and for random networks with the clock
// read per click and crossing a granule every 2^20 clicks, as the handler
// will call it.
func BenchmarkVelocityHit(b *testing.B) {
	b.Run("hot", func(b *testing.B) {
		v := NewVelocity(VelocityOptions{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			n := 0
			for pb.Next() {
				if v.Hit(0xffffffff_cb007107, velocityT0) {
					n++
				}
			}
			velocitySink.Add(int64(n))
		})
	})
	for _, bc := range []struct {
		name   string
		window time.Duration
		now    func() time.Time
	}{
		{"random", 0, func() time.Time { return velocityT0 }},
		{"randomClock", 7 * time.Second, time.Now},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := NewVelocity(VelocityOptions{Window: bc.window})
			var seq atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				k := seq.Add(1) << 40
				n := 0
				for pb.Next() {
					k++
					if v.Hit(mix64(k), bc.now()) {
						n++
					}
				}
				velocitySink.Add(int64(n))
			})
		})
	}
}

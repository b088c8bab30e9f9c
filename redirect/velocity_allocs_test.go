//go:build !race

package redirect

import (
	"testing"
	"time"
)

func init() { velocityFullScale = true }

func TestVelocityHitAllocs(t *testing.T) {
	v := NewVelocity(VelocityOptions{})
	k := uint64(0)
	now := velocityT0
	n := testing.AllocsPerRun(10000, func() {
		k++
		now = now.Add(time.Second) // crosses granules: the lazy clear too
		v.Hit(k%64, now)
	})
	if n != 0 {
		t.Fatalf("unexpected allocations per Hit; got %v; want 0", n)
	}
}

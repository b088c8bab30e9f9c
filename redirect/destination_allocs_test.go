//go:build !race

package redirect

import "testing"

func TestAppendLocationAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	value := []byte("AcCJh9AGCHNwcmluZzI2BWFsaWNlCEFCM0tYOVFaUDGR01YJJaH_RnKUGoY7aA")
	for _, dest := range []string{"https://app.example.com/p?a=1#frag", "https://app.example.com/join"} {
		n := testing.AllocsPerRun(1000, func() {
			buf = AppendLocation(buf[:0], dest, "cid", value)
		})
		if n != 0 {
			t.Fatalf("unexpected allocations for %q; got %v; want 0", dest, n)
		}
	}
}

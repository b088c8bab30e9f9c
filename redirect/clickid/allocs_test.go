//go:build !race

package clickid

import "testing"

func TestAppendAllocs(t *testing.T) {
	s := NewSigner(testKey)
	buf := make([]byte, 0, 512)
	c := spring26
	n := testing.AllocsPerRun(1000, func() {
		buf = s.Append(buf[:0], &c)
	})
	if n != 0 {
		t.Fatalf("unexpected allocations for Append; got %v; want 0", n)
	}
}

func TestAppendNewAllocs(t *testing.T) {
	s := NewSigner(testKey)
	buf := make([]byte, 0, 512)
	c := spring26
	n := testing.AllocsPerRun(1000, func() {
		buf = s.AppendNew(buf[:0], &c)
	})
	if n != 0 {
		t.Fatalf("unexpected allocations for AppendNew; got %v; want 0", n)
	}
}

// Parse allocates once, for the strings it returns.
func TestParseAllocs(t *testing.T) {
	s := NewSigner(testKey)
	id := s.Append(nil, &spring26)
	n := testing.AllocsPerRun(1000, func() {
		if _, err := s.Parse(id); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Fatalf("unexpected allocations for Parse; got %v; want <= 1", n)
	}
}

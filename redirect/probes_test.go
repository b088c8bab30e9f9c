package redirect

import (
	"net/netip"
	"testing"
	"time"
)

func TestProbes(t *testing.T) {
	const w = time.Minute
	p := NewProbes(ProbeOptions{Max: 3, Window: w})
	k := NetworkKey(netip.MustParseAddr("203.0.113.7"))
	other := NetworkKey(netip.MustParseAddr("203.0.113.8"))
	now := velocityT0

	for i := range 3 {
		if !p.Unknown(k, now) {
			t.Fatalf("unexpected flag on unknown code %d; want the first 3 allowed", i+1)
		}
		// Known codes neither use up the allowance nor are refused.
		if !p.Allows(k, now) {
			t.Fatalf("unexpected refusal after %d unknown codes", i+1)
		}
	}
	if p.flagged.Load() != 0 {
		t.Fatalf("unexpected flag time %d before any network went over", p.flagged.Load())
	}
	if p.Unknown(k, now) {
		t.Fatalf("unexpected pass of unknown code 4; want it flagged")
	}
	if p.Allows(k, now) {
		t.Fatalf("unexpected pass of a known code from a flagged network")
	}
	if !p.Allows(other, now) || !p.Unknown(other, now) {
		t.Fatalf("unexpected refusal of another network")
	}
	// Still over just before the Window ends; back under after a quiet
	// Window + Window/7.
	if p.Allows(k, now.Add(w-time.Second)) {
		t.Fatalf("unexpected pass within the Window")
	}
	if !p.Allows(k, now.Add(w+w/7+time.Second)) {
		t.Fatalf("unexpected refusal after a quiet Window")
	}
}

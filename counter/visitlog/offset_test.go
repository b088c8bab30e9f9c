package visitlog

import (
	"bytes"
	"testing"
)

func TestOffsetBinary(t *testing.T) {
	offs := []Offset{{}, {0, 16}, {1, 0}, {1, 16}, {1, 1 << 40}, {2, 16}, {1 << 63, 1<<63 - 1}}
	var prev []byte
	for i, o := range offs {
		b, err := o.MarshalBinary()
		if err != nil || len(b) != OffsetLen {
			t.Fatalf("cannot marshal %s: %v, %d bytes", o, err, len(b))
		}
		var got Offset
		if err := got.UnmarshalBinary(b); err != nil || got != o {
			t.Fatalf("unexpected offset after a round trip of %s; got %s, %v", o, got, err)
		}
		if i > 0 && (bytes.Compare(prev, b) >= 0 || !offs[i-1].Less(o) || o.Less(offs[i-1])) {
			t.Fatalf("unexpected order of %s and %s: bytes and Less must agree", offs[i-1], o)
		}
		prev = b
	}
	if _, err := (Offset{1, -1}).MarshalBinary(); err == nil {
		t.Fatalf("unexpected success marshalling a negative position")
	}
	var o Offset
	for _, b := range [][]byte{nil, make([]byte, 15), make([]byte, 17), append(make([]byte, 8), 0x80, 0, 0, 0, 0, 0, 0, 0)} {
		if err := o.UnmarshalBinary(b); err == nil {
			t.Fatalf("unexpected success unmarshalling %x", b)
		}
	}
}

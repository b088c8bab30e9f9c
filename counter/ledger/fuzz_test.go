package ledger

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

// FuzzOpen feeds arbitrary files to Verify and Open: neither panics, a file
// that verifies opens unchanged with the same state, a file that opens
// verifies afterwards, and a file that does not open is left alone.
func FuzzOpen(f *testing.F) {
	_, data := writeTestLedger(f)
	f.Add(data)
	f.Add(data[:len(data)-7])
	f.Add(append(bytes.Clone(data), 0, 0, 0))
	f.Add(bytes.Join(lines(data)[1:], nil))
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte(`{"seq":1,"len":1,"crc32c":"00000000"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		writeLedger(t, dir, data)
		r, verr := Verify(dir)
		l, oerr := Open(dir)
		if oerr != nil {
			if verr == nil || errors.Is(verr, ErrTorn) || !errors.Is(oerr, ErrCorrupt) {
				t.Fatalf("unexpected Open error %v after Verify error %v", oerr, verr)
			}
			if got := readLedger(t, dir); !bytes.Equal(got, data) {
				t.Fatalf("Open changed a ledger it refused")
			}
			return
		}
		defer l.Close()
		if verr == nil && (l.Recovered() != 0 || l.LastSeq() != r.LastSeq || !maps.Equal(l.Totals(), r.Totals)) {
			t.Fatalf("unexpected Open of a valid ledger: recovered %d, seq %d; want 0, %d", l.Recovered(), l.LastSeq(), r.LastSeq)
		}
		if verr != nil && !errors.Is(verr, ErrTorn) {
			t.Fatalf("unexpected Verify error %v for a ledger that opens", verr)
		}
		r2, err := Verify(dir)
		if err != nil {
			t.Fatalf("unexpected Verify error after Open: %s", err)
		}
		if r2.LastSeq != l.LastSeq() || !maps.Equal(r2.Totals, l.Totals()) || int64(len(data))-l.Recovered() != int64(len(readLedger(t, dir))) {
			t.Fatalf("unexpected Verify after Open: seq %d; want %d", r2.LastSeq, l.LastSeq())
		}
	})
}

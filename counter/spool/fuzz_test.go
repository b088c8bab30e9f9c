package spool

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/clickgate/clickgate/counter/disk"
)

// FuzzOpen feeds arbitrary segment files to Open: it never panics; it
// refuses a file only as corrupt, leaving it alone; what it accepts it cuts
// back to a prefix of the file that ends with a whole record; every pending
// batch reads back, and encodes again to the same visits; a second Open
// finds the same batches and nothing to cut.
func FuzzOpen(f *testing.F) {
	data, ends, _, _ := torn(f)
	f.Add(data)
	f.Add(data[:ends[2]+5])
	f.Add(append(slices.Clone(data[:ends[1]]), make([]byte, 40)...))
	f.Add(data[:headerLen])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, disk.SegmentName(1))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected Open error %v; want ErrCorrupt", err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Fatalf("Open changed a spool it refused")
			}
			return
		}
		ids := s.Pending(nil)
		for _, id := range ids {
			vs, err := s.Read(id, nil)
			if err != nil {
				t.Fatalf("cannot read pending batch %d: %s", id, err)
			}
			again, err := decodeVisits(appendVisits(nil, vs), nil)
			if err != nil || !reflect.DeepEqual(again, vs) {
				t.Fatalf("batch %d does not encode again to the same visits: %v", id, err)
			}
		}
		if len(ids) > 0 {
			got, err := os.ReadFile(path)
			if err != nil || !bytes.HasPrefix(data, got) || int64(len(data)-len(got)) != s.Recovered() {
				t.Fatalf("unexpected file after Open: %d of %d bytes kept, recovered %d, %v", len(got), len(data), s.Recovered(), err)
			}
		}
		s.Close()
		s = open(t, dir, Options{})
		if got := s.Pending(nil); !slices.Equal(got, ids) || s.Recovered() != 0 {
			t.Fatalf("unexpected second Open; got %v, recovered %d; want %v, 0", got, s.Recovered(), ids)
		}
	})
}

// FuzzScan is the record reader alone, in memory, so the fuzzer runs it
// many times faster than FuzzOpen: it never panics, the records it returns
// lie end to end from the header to where it stopped, a bad record it calls
// torn has no whole record after it, and every batch decodes, and encodes
// again, to the same visits.
func FuzzScan(f *testing.F) {
	data, ends, _, _ := torn(f)
	f.Add(data)
	f.Add(data[:ends[2]+5])
	f.Add(append(slices.Clone(data[:ends[1]]), make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, end, bad := scan(data)
		if end > len(data) || (bad == nil && end != len(data)) || (bad != nil && bad.off != int64(end)) {
			t.Fatalf("unexpected end %d of %d bytes, bad record %+v", end, len(data), bad)
		}
		off := int64(headerLen)
		for _, r := range recs {
			if r.off != off {
				t.Fatalf("record at %d; want it at %d", r.off, off)
			}
			off += int64(r.n)
			if r.kind != kindLegacy {
				continue
			}
			vs, err := decodeVisits(r.body, nil)
			if err != nil {
				t.Fatalf("a batch scan accepted does not decode: %s", err)
			}
			again, err := decodeVisits(appendVisits(nil, vs), nil)
			if err != nil || !reflect.DeepEqual(again, vs) {
				t.Fatalf("batch %d does not encode again to the same visits: %v", r.id, err)
			}
		}
		if len(recs) > 0 && off != int64(end) {
			t.Fatalf("records end at %d; scan stopped at %d", off, end)
		}
		if bad != nil && bad.torn && nextFramed(data, end+1) >= 0 {
			t.Fatalf("a torn tail at %d with a whole record after it", end)
		}
	})
}

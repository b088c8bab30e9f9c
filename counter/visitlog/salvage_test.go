package visitlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/counter/disk"
)

// TestSalvage: a segment that Open refuses as corrupt opens once salvaged,
// with every batch but the damaged one, in order, those of the damaged
// one's Append included; the bytes before the
// damage are as they were, and the original is kept beside it. A log that
// Open takes, or a torn last Append, is left alone.
func TestSalvage(t *testing.T) {
	data, ends, appends := tornLog(t) // appends of 1, 3, 1 and 3 batches
	batches := slices.Concat(appends...)
	offs := recordOffsets(t, data)
	second := slices.Clone(data) // the same records in segment 2
	second[8] = 2
	for i, off := range offs[:len(offs)-3] { // not the last append: that one is torn, not corrupt
		damaged := slices.Clone(data)
		damaged[off+frameLen] ^= 0xff
		dir := writeLog(t, damaged, second) // a second segment after it, untouched
		if _, err := Open(Options{Dir: dir, Logger: discard}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unexpected Open of a damaged record %d; got %v; want ErrCorrupt", i, err)
		}
		done, err := Salvage(Options{Dir: dir})
		if err != nil {
			t.Fatalf("cannot salvage record %d: %s", i, err)
		}
		path := filepath.Join(dir, disk.SegmentName(1))
		// From the end of the last whole append on, every record but
		// the damaged one is kept.
		whole := 0
		for _, e := range ends {
			if e <= off {
				whole = slices.Index(offs, e)
			}
		}
		if len(done) != 1 || done[0].Segment != path || done[0].Original != path+".damaged" || done[0].Damage != int64(off) ||
			done[0].Kept != len(offs)-whole-1 || done[0].Dropped != int64(offs[i+1]-off) {
			t.Fatalf("unexpected salvage of record %d at %d; got %+v; want %d records kept, the damaged one's %d bytes dropped", i, off, done, len(offs)-whole-1, offs[i+1]-off)
		}
		if kept, err := os.ReadFile(done[0].Original); err != nil || !bytes.Equal(kept, damaged) {
			t.Fatalf("the original segment was not kept as it was: %v", err)
		}
		l := openLog(t, dir, Options{})
		want := slices.Concat(batches[:i], batches[i+1:], batches)
		wantBatches(t, l, Offset{}, want)
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got[:offs[whole]], data[:offs[whole]]) || !slices.Equal(recordOffsets(t, got)[:i], offs[:i]) {
			t.Fatalf("the bytes before the damaged append at %d changed, or the offsets of the records before the damage", offs[whole])
		}
		mustAppend(t, l, encoded(99, 1))
		l.Close()
		if done, err := Salvage(Options{Dir: dir}); err != nil || len(done) != 0 {
			t.Fatalf("unexpected second salvage; got %+v, %v; want nothing to do", done, err)
		}
	}
	// A torn last Append is Open's to cut; damage before From is not read.
	torn := slices.Clone(data[:ends[3]-5])
	damagedFirst := slices.Clone(data)
	damagedFirst[offs[0]+frameLen] ^= 0xff
	for _, tc := range []struct {
		file []byte
		from Offset
	}{{torn, Offset{}}, {damagedFirst, Offset{1, int64(ends[0])}}, {data, Offset{}}} {
		dir := writeLog(t, tc.file)
		if done, err := Salvage(Options{Dir: dir, From: tc.from}); err != nil || len(done) != 0 {
			t.Fatalf("unexpected salvage of a log Open takes; got %+v, %v; want nothing to do", done, err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, disk.SegmentName(1))); !bytes.Equal(got, tc.file) {
			t.Fatalf("a log Open takes was changed by Salvage")
		}
	}
	// A damaged header: a new one, the records kept.
	header := slices.Clone(data)
	header[3] ^= 0xff
	dir := writeLog(t, header)
	if done, err := Salvage(Options{Dir: dir}); err != nil || len(done) != 1 || done[0].Kept != len(offs) || done[0].Dropped != 0 {
		t.Fatalf("unexpected salvage of a damaged header; got %+v, %v; want every record kept", done, err)
	}
	wantBatches(t, openLog(t, dir, Options{}), Offset{}, batches)
	// A later segment too short for its header gets one; a missing one
	// is refused.
	short := writeLog(t, data, second[:7])
	if done, err := Salvage(Options{Dir: short}); err != nil || len(done) != 1 || done[0].Kept != 0 {
		t.Fatalf("unexpected salvage of a segment too short for its header; got %+v, %v; want it given one", done, err)
	}
	wantBatches(t, openLog(t, short, Options{}), Offset{}, batches)
	gap := writeLog(t, data, second)
	if err := os.Rename(filepath.Join(gap, disk.SegmentName(2)), filepath.Join(gap, disk.SegmentName(3))); err != nil {
		t.Fatal(err)
	}
	if _, err := Salvage(Options{Dir: gap}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("unexpected salvage of a log missing a segment; got %v; want ErrCorrupt", err)
	}
	// Not while the log is open.
	if _, err := Salvage(Options{Dir: dir}); !errors.Is(err, ErrInUse) {
		t.Fatalf("unexpected Salvage of an open log; got %v; want ErrInUse", err)
	}
}

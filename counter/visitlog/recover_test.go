package visitlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/counter/disk"
)

// tornLog builds a log of one segment from appends of 1, 3, 1 and 3
// batches, and returns its file, where each append ends and the batches of
// each.
func tornLog(t testing.TB) (data []byte, ends []int, appends [][][]byte) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	id := uint64(1)
	for _, n := range []int{1, 3, 1, 3} {
		var call [][]byte
		for range n {
			call = append(call, encoded(id, 1+int(id%2)))
			id++
		}
		end := mustAppend(t, l, call...)
		ends = append(ends, int(end.Pos))
		appends = append(appends, call)
	}
	l.Close()
	data, err := os.ReadFile(filepath.Join(dir, disk.SegmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	// Append extends the file with zeros ahead of its records.
	if end := ends[len(ends)-1]; len(data) < end || !allZero(data[end:]) {
		t.Fatalf("unexpected segment of %d bytes; want %d and zeros", len(data), end)
	}
	return data[:ends[len(ends)-1]], ends, appends
}

// writeLog writes files as the segments 1, 2, ... of a new log directory.
func writeLog(t testing.TB, files ...[]byte) string {
	t.Helper()
	dir := t.TempDir()
	for i, file := range files {
		if err := os.WriteFile(filepath.Join(dir, disk.SegmentName(uint64(i+1))), file, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// recordOffsets returns where each record of a whole segment starts.
func recordOffsets(t testing.TB, data []byte) []int {
	t.Helper()
	var offs []int
	for off := headerLen; off < len(data); {
		n, _, _, err := frame(data[off:])
		if err != nil {
			t.Fatalf("unexpected bad record at %d: %s", off, err)
		}
		offs = append(offs, off)
		off += n
	}
	return offs
}

// TestTornTail cuts the segment at every byte offset of its last two
// appends (and around every record boundary before), and fills the rest
// with zeros as a file system that wrote the size but not the data would:
// Open keeps exactly the appends whose bytes are whole, cuts the rest, and
// the log takes appends after. Zeros right after a whole append are the
// file's extended end (Options.ExtendBytes): nothing is cut.
func TestTornTail(t *testing.T) {
	data, ends, appends := tornLog(t)
	var cuts []int
	for _, off := range recordOffsets(t, data[:ends[1]]) {
		cuts = append(cuts, off-1, off, off+1, off+frameLen)
	}
	for cut := ends[1]; cut <= len(data); cut++ {
		cuts = append(cuts, cut)
	}
	dir := t.TempDir()
	for _, cut := range cuts {
		for _, zeros := range []bool{false, true} {
			file := slices.Clone(data[:max(cut, headerLen)])
			if zeros {
				file = append(file, make([]byte, len(data)-len(file))...)
			}
			what := fmt.Sprintf("a cut at %d (zeros %v)", cut, zeros)
			// One directory for all: creating one per cut costs more
			// than the rest of the check on a busy disk.
			if err := os.WriteFile(filepath.Join(dir, disk.SegmentName(1)), file, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(Options{Dir: dir, Logger: discard})
			if err != nil {
				t.Fatalf("cannot open %s: %s", what, err)
			}
			end, want := headerLen, [][]byte(nil)
			for i, e := range ends {
				if e <= len(file) && bytes.Equal(file[:e], data[:e]) {
					end, want = e, slices.Concat(appends[:i+1]...)
				}
			}
			wantBatches(t, l, Offset{}, want)
			kept := end
			if allZero(file[end:]) {
				kept = len(file)
			}
			if l.Recovered() != int64(len(file)-kept) || l.End() != (Offset{1, int64(end)}) {
				t.Fatalf("unexpected recovery of %s; got %d bytes cut, end %s; want %d, 1:%d", what, l.Recovered(), l.End(), len(file)-kept, end)
			}
			if fi, err := os.Stat(filepath.Join(dir, disk.SegmentName(1))); err != nil || fi.Size() != int64(kept) {
				t.Fatalf("unexpected file after %s: %v; want %d bytes", what, err, kept)
			}
			if cut%11 != 0 && !slices.Contains(ends, cut) {
				l.Close()
				continue
			}
			// Usable after (on some cuts: an fsync each): a new append,
			// and a reopen finds it all.
			more := encoded(99, 2)
			mustAppend(t, l, more)
			l.Close()
			l = openLog(t, dir, Options{})
			wantBatches(t, l, Offset{}, append(want, more))
			if l.Recovered() != 0 {
				t.Fatalf("unexpected torn tail after recovering from %s", what)
			}
			l.Close()
		}
	}
}

// TestTornAppend: a crash during an Append can leave any of its pages
// unwritten, so a bad record of the last Append may have whole ones after
// it. Open cuts the whole Append; the same damage to an earlier, fsynced
// Append is corruption.
func TestTornAppend(t *testing.T) {
	data, ends, appends := tornLog(t)
	offs := recordOffsets(t, data)
	recEnd := func(i int) int {
		if i+1 < len(offs) {
			return offs[i+1]
		}
		return len(data)
	}
	damage := map[string]func(b []byte, i int){
		"zeroed":          func(b []byte, i int) { clear(b[offs[i]:recEnd(i)]) },
		"a flipped byte":  func(b []byte, i int) { b[(offs[i]+recEnd(i))/2] ^= 0x10 },
		"no magic":        func(b []byte, i int) { b[offs[i]] ^= 0xff },
		"a wrong length":  func(b []byte, i int) { b[offs[i]+4]++ },
		"its second half": func(b []byte, i int) { clear(b[(offs[i]+recEnd(i))/2 : recEnd(i)]) },
	}
	last := ends[len(ends)-2] // where the last append begins
	for name, f := range damage {
		for i, off := range offs {
			file := slices.Clone(data)
			f(file, i)
			what := fmt.Sprintf("record %d at %d: %s", i, off, name)
			dir := writeLog(t, file)
			l, err := Open(Options{Dir: dir, Logger: discard})
			if off < last {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("byte offset %d:", off)) {
					t.Fatalf("unexpected Open error for %s, before the last append; got %v; want ErrCorrupt at %d", what, err, off)
				}
				if got, _ := os.ReadFile(filepath.Join(dir, disk.SegmentName(1))); !bytes.Equal(got, file) {
					t.Fatalf("Open changed a log it refused (%s)", what)
				}
				continue
			}
			if err != nil {
				t.Fatalf("cannot open %s, in the last append: %s", what, err)
			}
			wantBatches(t, l, Offset{}, slices.Concat(appends[:len(appends)-1]...))
			if l.End() != (Offset{1, int64(last)}) {
				t.Fatalf("unexpected end after %s; got %s; want 1:%d", what, l.End(), last)
			}
			l.Close()
		}
	}
}

// TestCorrupt: what no crash explains is refused, naming the segment and
// the byte offset, and Open changes nothing.
func TestCorrupt(t *testing.T) {
	data, ends, _ := tornLog(t)
	offs := recordOffsets(t, data)
	f := func(what, wantIn string, files ...[]byte) {
		t.Helper()
		dir := writeLog(t, files...)
		_, err := Open(Options{Dir: dir, Logger: discard})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), wantIn) {
			t.Fatalf("unexpected Open error for %s; got %v; want ErrCorrupt with %q", what, err, wantIn)
		}
		for i, file := range files {
			if got, _ := os.ReadFile(filepath.Join(dir, disk.SegmentName(uint64(i+1)))); !bytes.Equal(got, file) {
				t.Fatalf("Open changed a log it refused (%s)", what)
			}
		}
	}
	flip := func(b []byte, off int) []byte {
		b = slices.Clone(b)
		b[off] ^= 0x40
		return b
	}
	seg1 := disk.SegmentName(1)
	f("a flipped payload byte in the first record", fmt.Sprintf("%s\" at byte offset %d:", seg1, offs[0]), flip(data, offs[0]+frameLen+3))
	f("a flipped crc in the third record", fmt.Sprintf("byte offset %d:", offs[2]), flip(data, offs[2]+12))
	f("a damaged header", "byte offset 0:", flip(data, 2))
	f("a short header", "byte offset 0:", data[:headerLen-1])
	f("an empty file", "byte offset 0:", nil)

	// Well framed, but not where the append structure says.
	f("a record of no append", fmt.Sprintf("byte offset %d:", len(data)), appendRecord(slices.Clone(data), encoded(9, 1), 7, true))
	f("an append's record claiming an earlier one", fmt.Sprintf("byte offset %d:", len(data)), appendRecord(slices.Clone(data), encoded(9, 1), len(data)-ends[2], true))

	// Two segments: only the last one's tail can be torn.
	second := slices.Concat(segmentHeader(2), data[headerLen:ends[0]])
	f("a torn tail of a segment before the last", fmt.Sprintf("%s\" at byte offset %d:", seg1, offs[len(offs)-1]), data[:len(data)-3], second)
	f("an unfinished append in a segment before the last", seg1, data[:offs[len(offs)-1]], second)
	f("a segment under another's name", "the header says segment 1", data, data)
	dir := writeLog(t, data)
	if err := os.WriteFile(filepath.Join(dir, disk.SegmentName(3)), slices.Concat(segmentHeader(3), data[headerLen:]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, Logger: discard}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "follows segment 1") {
		t.Fatalf("unexpected Open error for a missing segment; got %v; want ErrCorrupt", err)
	}

	// Read checks again: a record damaged after Open.
	dir = writeLog(t, data)
	l := openLog(t, dir, Options{})
	if err := os.WriteFile(filepath.Join(dir, seg1), flip(data, offs[4]+frameLen), 0o600); err != nil {
		t.Fatal(err)
	}
	err := l.Read(Offset{}, func(Offset, Offset, []byte) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("%s\" at byte offset %d:", seg1, offs[4])) {
		t.Fatalf("unexpected Read error for a record damaged after Open; got %v; want ErrCorrupt at %d", err, offs[4])
	}
}

func segmentHeader(seq uint64) []byte {
	var h [headerLen]byte
	copy(h[:], segmentMagic)
	for i := range 8 {
		h[8+i] = byte(seq >> (8 * i))
	}
	return h[:]
}

// TestOpenFrom: Open reads the records from Options.From on, the judge's
// checkpoint, which may fall between the records of one Append. Damage to
// the records before it does not stop the log from opening (without From
// it does); a torn tail after it is cut as ever; damage after it that no
// crash explains is refused.
func TestOpenFrom(t *testing.T) {
	data, ends, appends := tornLog(t)
	batches := slices.Concat(appends...)
	offs := recordOffsets(t, data)
	damaged := func(file []byte, off int) []byte {
		file = slices.Clone(file)
		file[off+frameLen] ^= 0xff // a payload byte: the crc32c fails
		return file
	}
	for i, from := range offs {
		if i == 0 {
			continue
		}
		what := fmt.Sprintf("from record %d at byte offset %d", i, from)
		// Every record before from damaged.
		file := data
		for _, off := range offs[:i] {
			file = damaged(file, off)
		}
		dir := writeLog(t, file)
		if _, err := Open(Options{Dir: dir, Logger: discard}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unexpected Open of damaged records without From; got %v; want ErrCorrupt", err)
		}
		o := Options{From: Offset{1, int64(from)}}
		l := openLog(t, dir, o)
		wantBatches(t, l, o.From, batches[i:])
		if l.End() != (Offset{1, int64(ends[3])}) || l.Recovered() != 0 {
			t.Fatalf("unexpected log %s; got end %s, %d bytes recovered; want 1:%d, none", what, l.End(), l.Recovered(), ends[3])
		}
		more := encoded(99, 2)
		mustAppend(t, l, more)
		l.Close()
		l = openLog(t, dir, o)
		wantBatches(t, l, o.From, append(slices.Clone(batches[i:]), more))
		l.Close()

		// A torn last Append after from is cut.
		if from <= ends[2] {
			cut := (ends[2] + ends[3]) / 2
			dir := writeLog(t, data[:cut])
			l := openLog(t, dir, o)
			if l.End() != (Offset{1, int64(ends[2])}) || l.Recovered() != int64(cut-ends[2]) {
				t.Fatalf("unexpected recovery of a torn tail %s; got end %s, %d bytes cut; want 1:%d, %d", what, l.End(), l.Recovered(), ends[2], cut-ends[2])
			}
			l.Close()
		}
		// A damaged record of an earlier Append after from is corruption.
		if j := slices.IndexFunc(offs, func(off int) bool { return off >= from && off < ends[2] }); j >= 0 {
			dir := writeLog(t, damaged(data, offs[j]))
			if _, err := Open(Options{Dir: dir, Logger: discard, From: o.From}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected Open of a damaged record at %d %s; got %v; want ErrCorrupt", offs[j], what, err)
			}
		}
	}
	// From past the segment's end is corruption, not an empty log.
	dir := writeLog(t, data)
	if _, err := Open(Options{Dir: dir, Logger: discard, From: Offset{1, int64(len(data) + 100)}}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unexpected Open from past the end; got %v; want ErrCorrupt", err)
	}
}

// TestOpenFromSegments: the segments before From's are not read at all,
// by Open or Read.
func TestOpenFromSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 200})
	_, ends := appendMany(t, l, 1, 12)
	from := ends[len(ends)-2]
	want := batchesOf(readAll(t, l, from))
	l.Close()
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("unexpected segments; got %d; want at least 3", len(segs))
	}
	if from.Segment < 2 {
		t.Fatalf("unexpected offset %s; want one past segment 1", from)
	}
	// Segment 1 damaged: a payload byte of its first record.
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[headerLen+frameLen] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, SegmentBytes: 200, Logger: discard}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unexpected Open of a damaged segment without From; got %v; want ErrCorrupt", err)
	}
	l = openLog(t, dir, Options{SegmentBytes: 200, From: from})
	if err := l.Read(Offset{}, func(Offset, Offset, []byte) error { return nil }); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("unexpected Read from before From; got %v; want ErrTrimmed", err)
	}
	wantBatches(t, l, from, want)
	if err := l.Trim(from); err != nil {
		t.Fatalf("cannot trim below %s: %s", from, err)
	}
	if n := len(segments(t, dir)); n >= len(segs) {
		t.Fatalf("unexpected segments after a trim; got %d of %d", n, len(segs))
	}
}

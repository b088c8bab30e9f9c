package visitlog

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/clickgate/clickgate/counter/disk"
	"github.com/clickgate/clickgate/counter/internal/fuzzseed"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the seeds in testdata/fuzz")

// FuzzDecodeBatch feeds arbitrary bytes to DecodeBatch: it never panics,
// refuses only with ErrFormat, a Decoder agrees with it, and what it
// accepts is canonical: encoding the batch again gives back the same
// bytes. The seeds are in
// testdata/fuzz/FuzzDecodeBatch, kept by TestFuzzSeeds.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(head(1).visit(0, "c", "a")))
	var b, viaDecoder Batch
	var dec Decoder // shared by the inputs, as by a judge's batches
	f.Fuzz(func(t *testing.T, p []byte) {
		err := DecodeBatch(p, &b)
		if derr := dec.Decode(p, &viaDecoder); (derr == nil) != (err == nil) || !reflect.DeepEqual(viaDecoder, b) {
			t.Fatalf("a Decoder disagrees with DecodeBatch; got %v; want %v", derr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("unexpected error %v; want ErrFormat", err)
			}
			return
		}
		q := AppendBatch(nil, &b)
		switch p[0] {
		case batchVersion1:
			// Read, never written: it encodes again as the current
			// version, the same but for the blocks it lacks.
			if len(q) != len(p)+8*len(b.Visits) || q[0] != batchVersion || !bytes.Equal(q[1:batchHeaderLen], p[1:batchHeaderLen]) {
				t.Fatalf("a version 1 batch of %d visits encodes to %x; want version %d, 8 bytes more per visit", len(b.Visits), q, batchVersion)
			}
		case batchVersion2:
			// No visit has a link: the same bytes but the version.
			if q[0] != batchVersion || !bytes.Equal(q[1:], p[1:]) {
				t.Fatalf("a version 2 batch encodes to %x; want %x in version %d", q, p, batchVersion)
			}
		default:
			if !bytes.Equal(q, p) {
				t.Fatalf("a decoded batch encodes to other bytes; got %x; want %x", q, p)
			}
		}
		var again Batch
		if err := DecodeBatch(q, &again); err != nil || !reflect.DeepEqual(again, b) {
			t.Fatalf("a batch does not decode again to the same visits: %v", err)
		}
	})
}

// FuzzOpen feeds arbitrary bytes to Open as a log's one segment: it never
// panics; it refuses only as corrupt, leaving the file alone; what it
// accepts it cuts back to a prefix of the file, every record of which
// Read returns; a second Open cuts nothing. The seeds are in
// testdata/fuzz/FuzzOpen, kept by TestFuzzSeeds.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add(segmentHeader(1))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) { checkOpen(t, dir, data) })
}

// FuzzScan is Open's reader alone, in memory, so the fuzzer runs it many
// times faster than FuzzOpen: it never panics; it says a segment is whole
// only up to its end, or up to zeros to its end; the prefix it keeps is
// whole when read again, and a scan from any record boundary in it finds
// the same.
func FuzzScan(f *testing.F) {
	f.Add([]byte{})
	f.Add(segmentHeader(1))
	f.Fuzz(func(t *testing.T, data []byte) {
		end, bad, err := scanSegment(bytes.NewReader(data), int64(len(data)), headerLen, 1, nil)
		if err != nil {
			t.Fatalf("unexpected error reading memory: %s", err)
		}
		if end > int64(len(data)) || (bad == nil && !allZero(data[end:])) || (bad != nil && bad.off < end) {
			t.Fatalf("unexpected end %d of %d bytes, bad record %+v", end, len(data), bad)
		}
		if bad != nil && !bad.torn {
			return
		}
		again, bad2, _ := scanSegment(bytes.NewReader(data[:end]), end, headerLen, 1, nil)
		if again != end || bad2 != nil {
			t.Fatalf("the prefix of %d bytes kept is not whole: end %d, %+v", end, again, bad2)
		}
		// From any record boundary of that prefix (Options.From, even
		// inside an append), the scan finds the same.
		for off := int64(headerLen); off < end; {
			n, _, _, err := frame(data[off:end])
			if err != nil {
				t.Fatalf("unexpected bad record at %d of the whole prefix: %s", off, err)
			}
			off += int64(n)
			from, badFrom, _ := scanSegment(bytes.NewReader(data), int64(len(data)), off, 1, nil)
			if from != end || (badFrom == nil) != (bad == nil) || (bad != nil && *badFrom != *bad) {
				t.Fatalf("unexpected scan from %d; got end %d, %+v; want %d, %+v", off, from, badFrom, end, bad)
			}
		}
	})
}

// FuzzSalvage feeds arbitrary bytes to Salvage as a log's one segment:
// it never panics, it leaves a segment that Open takes as it is, and what
// it writes Open takes, with the original kept beside it. Its seeds are
// FuzzOpen's.
func FuzzSalvage(f *testing.F) {
	f.Add([]byte{})
	f.Add(segmentHeader(1))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		names, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, name := range names {
			os.Remove(name)
		}
		path := filepath.Join(dir, disk.SegmentName(1))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, before := Open(Options{Dir: dir, Logger: discard})
		if before == nil {
			// Open took it, and may have cut a torn tail: as it is now.
			l.Close()
			if data, before = os.ReadFile(path); before != nil {
				t.Fatal(before)
			}
		}
		done, err := Salvage(Options{Dir: dir})
		if err != nil {
			t.Fatalf("unexpected Salvage error: %v", err)
		}
		if before == nil {
			if got, _ := os.ReadFile(path); len(done) != 0 || !bytes.Equal(got, data) {
				t.Fatalf("Salvage changed a segment that Open takes: %+v", done)
			}
			return
		}
		if kept, err := os.ReadFile(path + ".damaged"); len(done) != 1 || err != nil || !bytes.Equal(kept, data) {
			t.Fatalf("unexpected salvage of a segment Open refuses (%v): %+v, the original kept: %v", before, done, err)
		}
		l, err = Open(Options{Dir: dir, Logger: discard})
		if err != nil {
			t.Fatalf("Open refuses a salvaged segment: %v", err)
		}
		if recs := readAll(t, l, Offset{}); len(recs) < done[0].Kept {
			t.Fatalf("unexpected records of a salvaged segment; got %d; want at least the %d kept", len(recs), done[0].Kept)
		}
		l.Close()
	})
}

// checkOpen checks what Open makes of data as segment 1 in dir. A fuzz
// target runs its inputs one at a time, so they can share dir.
func checkOpen(t *testing.T, dir string, data []byte) {
	path := filepath.Join(dir, disk.SegmentName(1))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(Options{Dir: dir, Logger: discard})
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unexpected Open error %v; want ErrCorrupt", err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
			t.Fatalf("Open changed a log it refused")
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(data, got) || int64(len(data)-len(got)) != l.Recovered() {
		t.Fatalf("unexpected file after Open: %d of %d bytes kept, recovered %d, %v", len(got), len(data), l.Recovered(), err)
	}
	// The end is the file's, or where only zeros follow, which Open
	// leaves for Append to write over.
	if end := l.End(); end.Segment != 1 || end.Pos > int64(len(got)) || !allZero(got[end.Pos:]) {
		t.Fatalf("unexpected end %s of a file of %d bytes", end, len(got))
	}
	recs := readAll(t, l, Offset{})
	if len(recs) > 0 && recs[len(recs)-1].next != l.End() {
		t.Fatalf("the last record ends at %s; the log at %s", recs[len(recs)-1].next, l.End())
	}
	l.Close()
	l, err = Open(Options{Dir: dir, Logger: discard})
	if err != nil || l.Recovered() != 0 {
		t.Fatalf("unexpected second Open: %v, %d bytes cut", err, l.Recovered())
	}
	if again := readAll(t, l, Offset{}); !reflect.DeepEqual(again, recs) {
		t.Fatalf("unexpected records after a second Open; got %d; want %d", len(again), len(recs))
	}
	l.Close()
}

// seedBatches returns the batches of FuzzDecodeBatch's seeds by file name.
func seedBatches() map[string]Batch {
	many := visits(3, 40)
	for i := range many {
		many[i].Campaign = "campaign-" + strconv.Itoa(i%9)
		many[i].Creator = "creator-" + strconv.Itoa(i%29)
	}
	ext := visits(4, 2)
	ext[0].Window, ext[0].Expires, ext[0].At, ext[0].Day = math.MaxInt64, math.MinInt64, math.MinInt64, math.MaxInt32
	ext[1].Window, ext[1].Expires, ext[1].At, ext[1].Day = math.MinInt64, math.MaxInt64, math.MaxInt64, math.MinInt32
	return map[string]Batch{
		"one-visit":   {ID: 1, Visits: visits(1, 1)},
		"typical":     {ID: 2, Visits: visits(2, 20)},
		"large-table": {ID: 3, Visits: many},
		"extremes":    {ID: math.MaxUint64, Visits: ext},
	}
}

// fuzzSeeds returns the seeds of each fuzz target by file name. The
// corpus also holds golden inputs of version 1 and 2 batches (v1-*,
// v2-*), which TestVersion1 and TestVersion2 read and which are never
// rewritten.
func fuzzSeeds(t testing.TB) map[string]map[string][]byte {
	batches := map[string][]byte{}
	for name, b := range seedBatches() {
		batches[name] = AppendBatch(nil, &b)
	}

	data, ends, _ := tornLog(t)
	offs := recordOffsets(t, data)
	tornAppend := slices.Clone(data)
	clear(tornAppend[offs[len(offs)-3]:offs[len(offs)-2]])
	flipped := slices.Clone(data)
	flipped[offs[1]+frameLen+2] ^= 0x40
	segs := map[string][]byte{
		"whole":        data,
		"torn-tail":    data[:len(data)-5],
		"torn-append":  tornAppend,
		"unfinished":   data[:offs[len(offs)-1]],
		"zeros-after":  append(slices.Clone(data[:ends[1]]), make([]byte, 60)...),
		"flipped-byte": flipped,
		"header-only":  segmentHeader(1),
	}
	return map[string]map[string][]byte{
		"FuzzDecodeBatch": batches,
		"FuzzOpen":        segs,
		"FuzzSalvage":     segs,
		"FuzzScan":        segs,
	}
}

// TestFuzzSeeds keeps the seed files in the current formats: run with
// -update-seeds after changing one.
func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds(t) {
		fuzzseed.Check(t, target, seeds, *updateSeeds)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

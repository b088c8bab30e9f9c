package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"testing"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/disk"
)

func open(t testing.TB, dir string, o Options) *Spool {
	t.Helper()
	o.Dir = dir
	s, err := Open(o)
	if err != nil {
		t.Fatalf("cannot open spool: %s", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// visits returns n visits of batch b, with every field set, ids of several
// lengths and bytes, and both flags.
func visits(b, n int) []counter.Visit {
	vs := make([]counter.Visit, n)
	for i := range vs {
		v := &vs[i]
		v.Campaign = []string{"spring26", "c", "été-🎉"}[i%3]
		v.Creator = []string{"alice", "bob_the.creator-1"}[(i/2)%2]
		for j := range v.Key {
			v.Key[j] = byte(b*31 + i*7 + j)
		}
		v.Window = 1_778_457_600 - int64(i)*86400
		v.Expires = v.Window + 90000
		v.Day = counter.Day(20584 - i)
		v.MarkOnly = i%4 == 3
		if i%3 == 1 {
			v.HasAlso = true
			v.Also[0], v.Also[15] = byte(b), byte(i)
		}
	}
	if n > 1 {
		vs[1].Window, vs[1].Day = -5, -1 // before the epoch: varints are signed
	}
	return vs
}

func mustAppend(t testing.TB, s *Spool, vs []counter.Visit, held bool) uint64 {
	t.Helper()
	id, err := s.Append(vs, held)
	if err != nil {
		t.Fatalf("cannot append: %s", err)
	}
	return id
}

func wantPending(t testing.TB, s *Spool, want ...uint64) {
	t.Helper()
	if got := s.Pending(nil); !slices.Equal(got, want) {
		t.Fatalf("unexpected pending batches; got %v; want %v", got, want)
	}
}

func wantRead(t testing.TB, s *Spool, id uint64, want []counter.Visit) {
	t.Helper()
	got, err := s.Read(id, nil)
	if err != nil {
		t.Fatalf("cannot read batch %d: %s", id, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unexpected visits of batch %d; got %+v; want %+v", id, got, want)
	}
}

func segments(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	b1, b2, b3 := visits(1, 1), visits(2, 7), visits(3, 300)
	id1, id2, id3 := mustAppend(t, s, b1, false), mustAppend(t, s, b2, false), mustAppend(t, s, b3, false)
	if id1 != 1 || id2 != 2 || id3 != 3 {
		t.Fatalf("unexpected ids; got %d, %d, %d; want 1, 2, 3", id1, id2, id3)
	}
	wantRead(t, s, id1, b1)
	wantRead(t, s, id2, b2)
	wantRead(t, s, id3, b3)
	if err := s.Ack(id2); err != nil {
		t.Fatal(err)
	}
	wantPending(t, s, id1, id3)
	if _, err := s.Read(id2, nil); err == nil {
		t.Fatalf("unexpected success reading an acked batch")
	}
	size := s.Size()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir, Options{})
	wantPending(t, s, id1, id3)
	wantRead(t, s, id1, b1)
	wantRead(t, s, id3, b3)
	if s.Size() != size || s.Recovered() != 0 {
		t.Fatalf("unexpected size after reopen; got %d (recovered %d); want %d (0)", s.Size(), s.Recovered(), size)
	}
	// Ids go on from the last one, and appends go to a new segment.
	if id := mustAppend(t, s, b2, false); id != 4 {
		t.Fatalf("unexpected id after reopen; got %d; want 4", id)
	}
	if n := len(segments(t, dir)); n != 2 {
		t.Fatalf("unexpected segment files; got %d; want 2", n)
	}
	for _, id := range []uint64{1, 3, 4} {
		if err := s.Ack(id); err != nil {
			t.Fatal(err)
		}
	}
	// Everything acked: every segment is gone.
	if names := segments(t, dir); len(names) != 0 || s.Size() != 0 {
		t.Fatalf("unexpected segments after acking everything; got %v, size %d", names, s.Size())
	}
	s.Close()
	s = open(t, dir, Options{})
	wantPending(t, s)
}

func TestInUse(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{})
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrInUse) {
		t.Fatalf("unexpected error opening a spool in use; got %v; want ErrInUse", err)
	}
}

func TestHeldRelease(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	a := mustAppend(t, s, visits(1, 2), true)
	b := mustAppend(t, s, visits(2, 2), false)
	wantPending(t, s, b)
	if s.Len() != 2 {
		t.Fatalf("unexpected Len; got %d; want 2 (a held batch is not acked)", s.Len())
	}
	s.Release(a)
	wantPending(t, s, a, b)
	mustAppend(t, s, visits(3, 1), true)
	if err := s.Ack(a); err != nil {
		t.Fatal(err)
	}
	wantPending(t, s, b)
}

// torn builds a spool of batches and acks in one segment and returns its
// bytes, the offset where each record ends, and the batches pending after
// each record.
func torn(t testing.TB) (data []byte, ends []int, pending [][]uint64, batches map[uint64][]counter.Visit) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	batches = map[uint64][]counter.Visit{}
	add := func(vs []counter.Visit) {
		batches[mustAppend(t, s, vs, false)] = vs
	}
	add(visits(1, 1))
	add(visits(2, 3))
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	add(visits(3, 2))
	if err := s.Ack(3); err != nil {
		t.Fatal(err)
	}
	add(visits(4, 1))
	s.Close()
	names := segments(t, dir)
	if len(names) != 1 {
		t.Fatalf("unexpected segments %v", names)
	}
	data, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	recs, end, bad := scan(data)
	if bad != nil || end != len(data) || len(recs) != 6 {
		t.Fatalf("unexpected scan of a whole segment: %d records, end %d of %d, bad %+v", len(recs), end, len(data), bad)
	}
	var cur []uint64
	for _, r := range recs {
		if r.kind == kindBatch || r.kind == kindLegacy {
			cur = append(slices.Clone(cur), r.id)
		} else {
			cur = slices.DeleteFunc(slices.Clone(cur), func(id uint64) bool { return id == r.id })
		}
		ends = append(ends, int(r.off)+r.n)
		pending = append(pending, cur)
	}
	return data, ends, pending, batches
}

// TestTornTail cuts a segment at every byte offset, and fills the rest with
// zeros as a file system that wrote the size but not the data would: Open
// keeps exactly the records that are whole, truncates the rest, and the
// spool is usable after.
func TestTornTail(t *testing.T) {
	data, ends, pending, batches := torn(t)
	name := disk.SegmentName(1)
	for cut := headerLen; cut <= len(data); cut++ {
		for _, zeros := range []bool{false, true} {
			file := slices.Clone(data[:cut])
			if zeros {
				file = append(file, make([]byte, len(data)-cut)...)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, name), file, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{Dir: dir})
			if err != nil {
				t.Fatalf("cannot open a segment cut at %d (zeros %v): %s", cut, zeros, err)
			}
			// A record is whole when its bytes are: zeros may complete
			// one that ends with zeros.
			end, want := headerLen, []uint64(nil)
			for i, e := range ends {
				if e <= len(file) && bytes.Equal(file[:e], data[:e]) {
					end, want = e, pending[i]
				}
			}
			if got := s.Pending(nil); !slices.Equal(got, want) {
				t.Fatalf("unexpected pending batches for a cut at %d (zeros %v); got %v; want %v", cut, zeros, got, want)
			}
			for _, id := range want {
				wantRead(t, s, id, batches[id])
			}
			if s.Recovered() != int64(len(file)-end) {
				t.Fatalf("unexpected recovered bytes for a cut at %d (zeros %v); got %d; want %d", cut, zeros, s.Recovered(), len(file)-end)
			}
			if len(want) > 0 {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil || fi.Size() != int64(end) {
					t.Fatalf("unexpected file after a cut at %d (zeros %v); got %v, %v; want size %d", cut, zeros, fi.Size(), err, end)
				}
			}
			// Usable after: a new batch, and a reopen finds it all.
			id := mustAppend(t, s, visits(9, 2), false)
			s.Close()
			s = open(t, dir, Options{})
			wantPending(t, s, append(slices.Clone(want), id)...)
			if s.Recovered() != 0 {
				t.Fatalf("unexpected torn tail after recovery from a cut at %d", cut)
			}
			s.Close()
		}
	}
}

// TestCorrupt: a bad record followed by a whole one is not a crash. Open
// refuses the spool and changes nothing; Salvage rewrites it without the
// bad records, and it opens, with every batch that is whole.
func TestCorrupt(t *testing.T) {
	data, ends, _, batches := torn(t) // batches 1 and 3 acked, 2 and 4 pending
	f := func(what string, file []byte, salvaged []uint64) {
		t.Helper()
		dir := t.TempDir()
		path := filepath.Join(dir, disk.SegmentName(1))
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unexpected Open error for %s; got %v; want ErrCorrupt", what, err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, file) {
			t.Fatalf("Open changed a spool it refused (%s)", what)
		}
		// Salvage makes it open, with every whole record but the bad ones.
		done, err := Salvage(dir)
		if err != nil || len(done) != 1 || done[0].Segment != path {
			t.Fatalf("unexpected salvage of %s; got %+v, %v", what, done, err)
		}
		if kept, err := os.ReadFile(done[0].Original); err != nil || !bytes.Equal(kept, file) {
			t.Fatalf("the original of %s was not kept as it was: %v", what, err)
		}
		s := open(t, dir, Options{})
		wantPending(t, s, salvaged...)
		for _, id := range salvaged {
			wantRead(t, s, id, batches[id])
		}
		s.Close()
		if done, err := Salvage(dir); err != nil || len(done) != 0 {
			t.Fatalf("unexpected second salvage of %s; got %+v, %v; want nothing to do", what, done, err)
		}
	}
	flip := func(off int) []byte {
		b := slices.Clone(data)
		b[off] ^= 0x40
		return b
	}
	f("a flipped payload byte in the first record", flip(headerLen+frameLen+3), []uint64{2, 4})
	f("a flipped crc in the second record", flip(ends[0]+8), []uint64{4})
	f("a flipped length in the third record", flip(ends[1]+4), []uint64{1, 2, 4}) // batch 1's ack
	f("a damaged header", flip(2), []uint64{2, 4})
	f("a short header", data[:headerLen-1], nil)
	f("an empty file", nil, nil)
	// Well framed, but not a valid record: corruption even at the end.
	bad := appendRecord(slices.Clone(data), 'X', 7, nil)
	f("an unknown record kind", bad, []uint64{2, 4})
	bad = appendRecord(slices.Clone(data), kindBatch, 0, func(b []byte) []byte { return appendVisits(b, visits(1, 1)) })
	f("batch id 0", bad, []uint64{2, 4})
	bad = appendRecord(slices.Clone(data), kindBatch, 2, func(b []byte) []byte { return appendVisits(b, visits(1, 1)) })
	f("a batch id twice", bad, []uint64{2, 4})
	bad = appendRecord(slices.Clone(data), kindBatch, 9, func(b []byte) []byte { return append(appendVisits(b, visits(1, 1)), 0) })
	f("a byte after the last visit", bad, []uint64{2, 4})

	// A batch id of an earlier segment again, in a later one.
	dir := t.TempDir()
	second := append(slices.Clone(header), data[ends[0]:ends[1]]...) // batch 2 again
	second = appendRecord(second, kindLegacy, 9, func(b []byte) []byte { return appendVisits(b, visits(9, 2)) })
	for i, file := range [][]byte{data, second} {
		if err := os.WriteFile(filepath.Join(dir, disk.SegmentName(uint64(i+1))), file, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unexpected Open of a batch id in two segments; got %v; want ErrCorrupt", err)
	}
	done, err := Salvage(dir)
	if err != nil || len(done) != 1 || done[0].Segment != filepath.Join(dir, disk.SegmentName(2)) || done[0].Kept != 1 {
		t.Fatalf("unexpected salvage of a batch id in two segments; got %+v, %v; want the second segment's copy dropped", done, err)
	}
	s := open(t, dir, Options{})
	wantPending(t, s, 2, 4, 9)
	wantRead(t, s, 9, visits(9, 2))
	s.Close()

	// An id acked may come again, as after every segment was deleted:
	// Open takes it, and Salvage leaves it.
	dir = t.TempDir()
	again := append(slices.Clone(data), data[headerLen:ends[0]]...) // batch 1, acked in data, again
	if err := os.WriteFile(filepath.Join(dir, disk.SegmentName(1)), again, 0o600); err != nil {
		t.Fatal(err)
	}
	if done, err := Salvage(dir); err != nil || len(done) != 0 {
		t.Fatalf("unexpected salvage of an acked id that comes again; got %+v, %v; want nothing to do", done, err)
	}
	open(t, dir, Options{})
}

// TestSegments: with small segments, a segment is deleted once it and
// every older one hold no pending batch; acks in later segments survive
// until then, so a reopen at any point finds exactly the pending batches.
func TestSegments(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 600}
	s := open(t, dir, o)
	var ids []uint64
	for i := range 12 {
		ids = append(ids, mustAppend(t, s, visits(i, 4), false))
	}
	if n := len(segments(t, dir)); n < 4 {
		t.Fatalf("unexpected segment count; got %d; want at least 4", n)
	}
	reopen := func(want []uint64) {
		t.Helper()
		wantPending(t, s, want...)
		s.Close()
		s = open(t, dir, o)
		wantPending(t, s, want...)
	}
	// Newest first: nothing can go until the oldest is acked.
	left := slices.Clone(ids)
	before := len(segments(t, dir))
	for i := len(ids) - 1; i >= 1; i-- {
		if err := s.Ack(ids[i]); err != nil {
			t.Fatal(err)
		}
		left = left[:i]
		reopen(left)
	}
	if n := len(segments(t, dir)); n < before {
		t.Fatalf("a segment was deleted while the oldest one holds a pending batch: %d, was %d", n, before)
	}
	if err := s.Ack(ids[0]); err != nil {
		t.Fatal(err)
	}
	reopen(nil)
	if n := len(segments(t, dir)); n != 0 {
		t.Fatalf("unexpected segments left after acking everything; got %d", n)
	}
}

// TestFull: a batch that does not fit is refused with ErrFull (which is
// counter.ErrSpoolFull), acks are always written, and acking frees room.
func TestFull(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxBytes: 4 << 10, SegmentBytes: 1 << 10})
	var ids []uint64
	for {
		id, err := s.Append(visits(len(ids), 5), false)
		if errors.Is(err, counter.ErrSpoolFull) {
			break
		}
		if err != nil {
			t.Fatalf("unexpected error filling the spool: %s", err)
		}
		ids = append(ids, id)
		if s.Size() > 4<<10 {
			t.Fatalf("spool grew past its bound: %d bytes", s.Size())
		}
	}
	if len(ids) < 5 {
		t.Fatalf("unexpected capacity; got %d batches", len(ids))
	}
	if _, err := s.Append(visits(1, 5), false); !errors.Is(err, ErrFull) {
		t.Fatalf("unexpected error for a batch into a full spool; got %v; want ErrFull", err)
	}
	for _, id := range ids {
		if err := s.Ack(id); err != nil {
			t.Fatalf("cannot ack into a full spool: %s", err)
		}
	}
	if s.Size() != 0 {
		t.Fatalf("unexpected size after acking everything; got %d; want 0", s.Size())
	}
	mustAppend(t, s, visits(1, 5), false)
}

var errEIO = syscall.EIO

// TestSyncError: a failed fsync loses the batch (Append says so), seals the
// segment (a retried fsync could wrongly succeed), and the next batch goes
// to a new segment; a reopen finds the batches before and after, not the
// failed one.
func TestSyncError(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	before := mustAppend(t, s, visits(1, 3), false)
	syncs := 0
	s.sync = func(*os.File) error { syncs++; return errEIO }
	if _, err := s.Append(visits(2, 3), false); !errors.Is(err, errEIO) {
		t.Fatalf("unexpected Append error with a failing fsync; got %v; want EIO", err)
	}
	if syncs != 1 {
		t.Fatalf("unexpected fsync calls; got %d; want 1 (never retried)", syncs)
	}
	s.sync = (*os.File).Sync
	wantPending(t, s, before)
	after := mustAppend(t, s, visits(3, 3), false)
	if n := len(segments(t, dir)); n != 2 {
		t.Fatalf("unexpected segments; got %d; want 2: the failed one takes no more records", n)
	}
	s.Close()
	s = open(t, dir, Options{})
	wantPending(t, s, before, after)
	wantRead(t, s, after, visits(3, 3))
	if s.Recovered() != 0 {
		t.Fatalf("unexpected torn tail: the failed record must have been cut off")
	}
}

// TestWriteError: a short write (a full disk) is cut off at once, so the
// file ends with a whole record; a segment that never held one is removed.
func TestWriteError(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	full := func(f *os.File, p []byte, off int64) (int, error) {
		n, _ := f.WriteAt(p[:len(p)/2], off)
		return n, syscall.ENOSPC
	}
	s.write = full
	if _, err := s.Append(visits(1, 3), false); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("unexpected Append error on a full disk; got %v; want ENOSPC", err)
	}
	if names := segments(t, dir); len(names) != 0 {
		t.Fatalf("unexpected segments after the first segment's header failed: %v", names)
	}
	s.write = (*os.File).WriteAt
	id := mustAppend(t, s, visits(2, 3), false)
	s.write = full
	if _, err := s.Append(visits(3, 3), false); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("unexpected Append error on a full disk; got %v; want ENOSPC", err)
	}
	s.write = (*os.File).WriteAt
	s.Close()
	s = open(t, dir, Options{})
	wantPending(t, s, id)
	if s.Recovered() != 0 {
		t.Fatalf("unexpected torn tail of %d bytes: the half record must have been cut off", s.Recovered())
	}
}

// TestAckError: a batch whose ack cannot be written is forgotten all the
// same, so it is not replayed again and again; a reopen replays it once.
func TestAckError(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	a := mustAppend(t, s, visits(1, 3), false)
	b := mustAppend(t, s, visits(2, 3), false)
	s.sync = func(*os.File) error { return errEIO }
	if err := s.Ack(a); !errors.Is(err, errEIO) {
		t.Fatalf("unexpected Ack error; got %v; want EIO", err)
	}
	s.sync = (*os.File).Sync
	wantPending(t, s, b)
	s.Close()
	s = open(t, dir, Options{})
	wantPending(t, s, a, b)
}

func TestDecodeRefuses(t *testing.T) {
	good := appendVisits(nil, visits(1, 2))
	if _, err := decodeVisits(good, nil); err != nil {
		t.Fatalf("cannot decode a good body: %s", err)
	}
	f := func(what string, body []byte) {
		t.Helper()
		if vs, err := decodeVisits(body, nil); err == nil {
			t.Fatalf("unexpected success decoding %s: %+v", what, vs)
		}
	}
	f("an empty body", nil)
	f("no visits", []byte{0})
	f("a cut body", good[:len(good)-1])
	f("a huge count", append([]byte{0xff, 0xff, 0x03}, good[1:]...))
	long := visits(1, 1)
	long[0].Creator = string(make([]byte, maxIDLen+1))
	f("a long id", appendVisits(nil, long))
	empty := visits(1, 1)
	empty[0].Campaign = ""
	f("an empty id", appendVisits(nil, empty))
	flags := appendVisits(nil, visits(1, 1))
	flags[len(flags)-1] |= 0x80
	f("unknown flags", flags)
	v := visits(1, 1)[0]
	b := []byte{1, byte(len(v.Campaign))}
	b = append(b, v.Campaign...)
	b = append(b, byte(len(v.Creator)))
	b = append(b, v.Creator...)
	b = append(b, v.Key[:]...)
	b = binary.AppendVarint(b, v.Window)
	b = binary.AppendVarint(b, v.Expires)
	b = binary.AppendVarint(b, 1<<40)
	b = append(b, 0)
	f("a day out of range", b)
}

package visitlog

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

var errEIO = syscall.EIO

// TestSyncError: a failed fsync breaks the log. The failed Append's
// records are never fsynced: each later Append first cuts the segment back
// to the last good Append's end, writes zeros past it and fsyncs that, and
// while that fsync fails it writes no records. Read and Trim go on, and
// once the fsync works again the log is repaired in place: a reopen finds
// no trace of the failed Append, though its records reached the page cache.
func TestSyncError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	a := encoded(1, 3)
	end := mustAppend(t, l, a)
	failing := true
	var tails []bool // at each fsync, whether the file holds more than zeros past end
	l.sync = func(f *os.File) error {
		b, err := os.ReadFile(segments(t, dir)[0])
		if err != nil {
			t.Fatal(err)
		}
		tails = append(tails, len(bytes.Trim(b[end.Pos:], "\x00")) > 0)
		if failing {
			return errEIO
		}
		return f.Sync()
	}
	if _, err := l.Append(encoded(2, 3), encoded(3, 1)); !errors.Is(err, ErrBroken) || !errors.Is(err, errEIO) {
		t.Fatalf("unexpected Append error with a failing fsync; got %v; want ErrBroken and EIO", err)
	}
	if _, err := l.Append(encoded(4, 1)); !errors.Is(err, ErrBroken) {
		t.Fatalf("unexpected Append error on a broken log whose repair fails; got %v; want ErrBroken", err)
	}
	if err := l.Repair(); !errors.Is(err, ErrBroken) || !errors.Is(err, errEIO) || !strings.Contains(err.Error(), "cannot repair") {
		t.Fatalf("unexpected Repair error while fsync fails; got %v; want ErrBroken, and the repair's EIO", err)
	}
	if err := l.Err(); !errors.Is(err, ErrBroken) || !errors.Is(err, errEIO) {
		t.Fatalf("unexpected Err of a broken log; got %v; want ErrBroken and EIO", err)
	}
	if !slices.Equal(tails, []bool{true, false, false}) {
		t.Fatalf("unexpected fsyncs; got %v for whether the file held more than zeros past the last good append; want the failed append's, then two repairs'", tails)
	}
	if l.End() != end {
		t.Fatalf("unexpected end of a broken log; got %s; want %s", l.End(), end)
	}
	wantBatches(t, l, Offset{}, [][]byte{a})
	if err := l.Trim(end); err != nil {
		t.Fatalf("cannot trim a broken log: %s", err)
	}
	failing = false
	e := encoded(5, 2)
	mustAppend(t, l, e)
	if err := l.Err(); err != nil {
		t.Fatalf("unexpected Err of a repaired log: %v", err)
	}
	wantBatches(t, l, Offset{}, [][]byte{a, e})
	l.Close()
	if err := l.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("unexpected Err of a closed log; got %v; want ErrClosed", err)
	}
	l = openLog(t, dir, Options{})
	if l.Recovered() != 0 {
		t.Fatalf("unexpected torn tail of %d bytes in a repaired log", l.Recovered())
	}
	wantBatches(t, l, Offset{}, [][]byte{a, e})
}

// TestWriteError: a short write (a full disk) breaks the log. Repair fails
// while the disk is full, and once it has room cuts the half-written
// Append off, with no Append and no reopen.
func TestWriteError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	a := encoded(1, 3)
	end := mustAppend(t, l, a)
	write := l.write
	l.write = func(f *os.File, p []byte, off int64) (int, error) {
		n, _ := f.WriteAt(p[:len(p)/2], off)
		return n, syscall.ENOSPC
	}
	if _, err := l.Append(encoded(2, 3), encoded(3, 3)); !errors.Is(err, ErrBroken) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("unexpected Append error on a full disk; got %v; want ErrBroken and ENOSPC", err)
	}
	if err := l.Repair(); !errors.Is(err, ErrBroken) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "cannot repair") {
		t.Fatalf("unexpected Repair error on a full disk; got %v; want ErrBroken, and the repair's ENOSPC", err)
	}
	l.write = write
	if err := l.Repair(); err != nil {
		t.Fatalf("cannot repair a log once the disk has room: %v", err)
	}
	if err := l.Repair(); err != nil {
		t.Fatalf("unexpected Repair error on a sound log: %v", err)
	}
	b, err := os.ReadFile(segments(t, dir)[0])
	if err != nil {
		t.Fatal(err)
	}
	if tail := bytes.Trim(b[end.Pos:], "\x00"); len(tail) != 0 || len(b) != int(end.Pos+DefaultExtendBytes) {
		t.Fatalf("unexpected segment after a repair; got %d bytes, %d of them not zeros past the last good append's end %d; want none, and %d bytes",
			len(b), len(tail), end.Pos, end.Pos+DefaultExtendBytes)
	}
	mustAppend(t, l, encoded(4, 1))
	wantBatches(t, l, Offset{}, [][]byte{a, encoded(4, 1)})
	l.Close()
	l = openLog(t, dir, Options{})
	if l.Recovered() != 0 {
		t.Fatalf("unexpected torn tail of %d bytes in a repaired log", l.Recovered())
	}
	wantBatches(t, l, Offset{}, [][]byte{a, encoded(4, 1)})
}

// TestRollError: a segment that cannot be created leaves the records in
// the zeros ahead of the last one's, with Err saying why; without zeros
// there, it fails the Append without breaking the log. Either way the next
// Append creates it.
func TestRollError(t *testing.T) {
	for _, ext := range []int64{DefaultExtendBytes, -1} {
		t.Run(strconv.FormatInt(ext, 10), func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, Options{SegmentBytes: 100, ExtendBytes: ext})
			a, b, c := encoded(1, 3), encoded(2, 1), encoded(3, 1)
			mustAppend(t, l, a)
			write := l.write
			l.write = func(f *os.File, p []byte, off int64) (int, error) {
				if off == 0 { // a new segment's header
					return 0, errEIO
				}
				return write(f, p, off)
			}
			want := [][]byte{a}
			if ext > 0 {
				if end := mustAppend(t, l, b); end.Segment != 1 {
					t.Fatalf("unexpected end of an append whose segment cannot be created; got %s; want segment 1", end)
				}
				want = append(want, b)
			} else if _, err := l.Append(b); !errors.Is(err, errEIO) || errors.Is(err, ErrBroken) {
				t.Fatalf("unexpected Append error when a segment cannot be created and no zeros are left; got %v; want its EIO, not ErrBroken", err)
			}
			if names, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(names) != 0 || len(segments(t, dir)) != 1 {
				t.Fatalf("unexpected files left by a failed segment: %v, %v", names, segments(t, dir))
			}
			if err := l.Err(); !errors.Is(err, errEIO) || errors.Is(err, ErrBroken) {
				t.Fatalf("unexpected Err after a failed roll; got %v; want its EIO, not ErrBroken", err)
			}
			l.write = write
			end := mustAppend(t, l, c)
			if err := l.Err(); err != nil {
				t.Fatalf("unexpected Err after an Append succeeded: %v", err)
			}
			if end.Segment != 2 {
				t.Fatalf("unexpected end after a roll; got %s; want segment 2", end)
			}
			wantBatches(t, l, Offset{}, append(want, c))
			l.Close()
			wantBatches(t, openLog(t, dir, Options{SegmentBytes: 100, ExtendBytes: ext}), Offset{}, append(want, c))
		})
	}
}

// TestRepairProbe: near a segment's end, a repair still writes a block of
// zeros past the last good Append, so that a disk still full fails it.
func TestRepairProbe(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 300})
	end := mustAppend(t, l, encoded(1, 1), encoded(2, 1))
	if end.Segment != 1 || 300-end.Pos >= repairProbe {
		t.Fatalf("unexpected end %s; want one near the segment's end", end)
	}
	write := l.write
	l.write = func(*os.File, []byte, int64) (int, error) { return 0, syscall.ENOSPC }
	if _, err := l.Append(encoded(3, 1)); !errors.Is(err, ErrBroken) {
		t.Fatalf("unexpected Append error on a full disk; got %v; want ErrBroken", err)
	}
	var wrote []int
	l.write = func(f *os.File, p []byte, off int64) (int, error) {
		wrote = append(wrote, len(p))
		return write(f, p, off)
	}
	if err := l.Repair(); err != nil {
		t.Fatal(err)
	}
	if len(wrote) != 1 || wrote[0] < repairProbe {
		t.Fatalf("unexpected writes of the repair; got %v bytes; want one of at least %d", wrote, repairProbe)
	}
}

// TestRoomShort: on a disk that fills up, the write of the zeros ahead of
// the records fails, not the records': the Appends go on in the zeros
// left, with Err saying that the room runs short (warned once), then fail,
// writing nothing and breaking nothing. Once there is room, Repair writes
// the zeros ahead again, with no Append, and the log has every batch that
// an Append took.
func TestRoomShort(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	o := Options{ExtendBytes: 4096, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	l := openLog(t, dir, o)
	if err := l.Reserve(); err != nil {
		t.Fatalf("cannot reserve room ahead of the records: %v", err)
	}
	if fi, err := os.Stat(segments(t, dir)[0]); err != nil || fi.Size() != headerLen+4096 {
		t.Fatalf("unexpected segment after Reserve: %v, %v; want %d bytes, the header and the zeros ahead", fi, err, headerLen+4096)
	}
	want := [][]byte{encoded(1, 1)}
	mustAppend(t, l, want[0])
	write := l.write
	l.write = func(f *os.File, p []byte, off int64) (int, error) {
		if allZero(p) {
			return 0, syscall.ENOSPC
		}
		return write(f, p, off)
	}
	var err error
	for id := uint64(2); err == nil; id++ {
		b := encoded(id, 1)
		before := l.End()
		var end Offset
		if end, err = l.Append(b); err == nil {
			want = append(want, b)
		} else if end != before || l.End() != before {
			t.Fatalf("a failed Append moved the end from %s to %s, %s", before, end, l.End())
		}
		if id > 1000 {
			t.Fatal("the zeros ahead of the records never ran out")
		}
	}
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrBroken) {
		t.Fatalf("unexpected Append error once the zeros ran out; got %v; want ENOSPC, not ErrBroken", err)
	}
	// 4096 bytes of zeros, less what the Appends before the first
	// shortfall took (fewer than 2048), hold more than 20 of these.
	if len(want) < 20 {
		t.Fatalf("only %d Appends went on a disk that filled up; want the zeros ahead used", len(want))
	}
	if err := l.Repair(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("unexpected Repair error on a disk still full; got %v; want ENOSPC", err)
	}
	l.write = write
	if err := l.Repair(); err != nil {
		t.Fatalf("unexpected Repair error once the disk has room: %v", err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("unexpected Err once the zeros ahead are written again: %v", err)
	}
	if n := strings.Count(logs.String(), "no room ahead of its records"); n != 1 {
		t.Fatalf("the shortfall was warned of %d times; want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "room ahead of its records again") {
		t.Fatalf("the room regained was not logged:\n%s", logs.String())
	}
	b := encoded(5000, 1)
	mustAppend(t, l, b)
	want = append(want, b)
	wantBatches(t, l, Offset{}, want)
	l.Close()
	wantBatches(t, openLog(t, dir, o), Offset{}, want)
}

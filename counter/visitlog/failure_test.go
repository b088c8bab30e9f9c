package visitlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
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

// TestRollError: a segment that cannot be created fails the Append without
// breaking the log; the next Append creates it.
func TestRollError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 100})
	a := encoded(1, 3)
	mustAppend(t, l, a)
	l.sync = func(*os.File) error { return errEIO }
	if _, err := l.Append(encoded(2, 1)); err == nil || errors.Is(err, ErrBroken) {
		t.Fatalf("unexpected Append error when a segment cannot be created; got %v; want one, not ErrBroken", err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(names) != 0 || len(segments(t, dir)) != 1 {
		t.Fatalf("unexpected files left by a failed segment: %v, %v", names, segments(t, dir))
	}
	if err := l.Err(); !errors.Is(err, errEIO) || errors.Is(err, ErrBroken) {
		t.Fatalf("unexpected Err after a failed roll; got %v; want its EIO, not ErrBroken", err)
	}
	l.sync = (*os.File).Sync
	end := mustAppend(t, l, encoded(2, 1))
	if err := l.Err(); err != nil {
		t.Fatalf("unexpected Err after an Append succeeded: %v", err)
	}
	if end.Segment != 2 {
		t.Fatalf("unexpected end after a roll; got %s; want segment 2", end)
	}
	wantBatches(t, l, Offset{}, [][]byte{a, encoded(2, 1)})
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

package visitlog

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

var errEIO = syscall.EIO

// TestSyncError: a failed fsync breaks the log. It is never retried, later
// Appends write nothing, Read and Trim go on, and a reopen recovers.
func TestSyncError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	a := encoded(1, 3)
	end := mustAppend(t, l, a)
	syncs, writes := 0, 0
	l.sync = func(*os.File) error { syncs++; return errEIO }
	l.write = func(f *os.File, p []byte, off int64) (int, error) { writes++; return f.WriteAt(p, off) }
	b := encoded(2, 3)
	if _, err := l.Append(b, encoded(3, 1)); !errors.Is(err, ErrBroken) || !errors.Is(err, errEIO) {
		t.Fatalf("unexpected Append error with a failing fsync; got %v; want ErrBroken and EIO", err)
	}
	if _, err := l.Append(encoded(4, 1)); !errors.Is(err, ErrBroken) {
		t.Fatalf("unexpected Append error on a broken log; got %v; want ErrBroken", err)
	}
	if err := l.Err(); !errors.Is(err, ErrBroken) || !errors.Is(err, errEIO) {
		t.Fatalf("unexpected Err of a broken log; got %v; want ErrBroken and EIO", err)
	}
	if syncs != 1 || writes != 1 {
		t.Fatalf("unexpected calls; got %d fsyncs, %d writes; want 1, 1: never retried, nothing more written", syncs, writes)
	}
	if l.End() != end {
		t.Fatalf("unexpected end of a broken log; got %s; want %s", l.End(), end)
	}
	wantBatches(t, l, Offset{}, [][]byte{a})
	if err := l.Trim(end); err != nil {
		t.Fatalf("cannot trim a broken log: %s", err)
	}
	l.Close()
	// The written records reached the page cache, so they are there: the
	// Append may or may not be found after a failure.
	if err := l.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("unexpected Err of a closed log; got %v; want ErrClosed", err)
	}
	l = openLog(t, dir, Options{})
	if err := l.Err(); err != nil {
		t.Fatalf("unexpected Err of a reopened log: %v", err)
	}
	wantBatches(t, l, Offset{}, [][]byte{a, b, encoded(3, 1)})
	mustAppend(t, l, encoded(5, 1))
}

// TestWriteError: a short write (a full disk) breaks the log, and a reopen
// cuts the half-written Append off.
func TestWriteError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	a := encoded(1, 3)
	mustAppend(t, l, a)
	l.write = func(f *os.File, p []byte, off int64) (int, error) {
		n, _ := f.WriteAt(p[:len(p)/2], off)
		return n, syscall.ENOSPC
	}
	if _, err := l.Append(encoded(2, 3), encoded(3, 3)); !errors.Is(err, ErrBroken) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("unexpected Append error on a full disk; got %v; want ErrBroken and ENOSPC", err)
	}
	l.Close()
	l = openLog(t, dir, Options{})
	if l.Recovered() == 0 {
		t.Fatalf("unexpected reopen: the half-written append was not cut off")
	}
	wantBatches(t, l, Offset{}, [][]byte{a})
	mustAppend(t, l, encoded(4, 1))
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

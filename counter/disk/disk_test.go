package disk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatalf("cannot sync a directory: %s", err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatalf("unexpected success for a missing directory")
	}
}

// TestWriteFile: a file written in several chunks, or in one, reads back
// whole, replaces the one before, is 0600, and leaves no temporary file;
// in a directory that does not exist, it is an error.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoint")
	big := make([]byte, 2*writeChunk+writeChunk/2)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, data := range [][]byte{big, []byte("small"), {}} {
		if err := WriteFile(path, data); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("unexpected file after writing %d bytes; got %d bytes, %v", len(data), len(got), err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("unexpected mode of the file; got %v, %v; want 0600", fi.Mode(), err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("unexpected files in the directory; got %d; want the one written", len(entries))
		}
	}
	if err := WriteFile(filepath.Join(dir, "missing", "file"), big); err == nil {
		t.Fatal("unexpected success writing into a directory that does not exist")
	}
}

// TestKeepAside: each copy takes the next free name, the ones before it
// kept.
func TestKeepAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.seg")
	for i, want := range []string{path + ".damaged", path + ".damaged.2", path + ".damaged.3"} {
		got, err := KeepAside(path, []byte{byte(i)})
		if err != nil || got != want {
			t.Fatalf("unexpected copy %d; got %q, %v; want %q", i, got, err, want)
		}
	}
	for i, name := range []string{".damaged", ".damaged.2", ".damaged.3"} {
		if b, err := os.ReadFile(path + name); err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("unexpected %s; got %v, %v; want [%d]", name, b, err, i)
		}
	}
}

// TestSegmentName: a segment's name gives back its number; other names,
// and segment 0, are not segments.
func TestSegmentName(t *testing.T) {
	for _, seq := range []uint64{1, 255, 1 << 40, ^uint64(0)} {
		if got, ok := ParseSegmentName(SegmentName(seq)); !ok || got != seq {
			t.Errorf("unexpected parse of %q; got %d, %v; want %d", SegmentName(seq), got, ok, seq)
		}
	}
	for _, name := range []string{SegmentName(0), "0000000000000001.log", "000000000000001.seg", "00000000000000001.seg", "000000000000000g.seg", "lock", ""} {
		if seq, ok := ParseSegmentName(name); ok {
			t.Errorf("unexpected segment %d for %q", seq, name)
		}
	}
}

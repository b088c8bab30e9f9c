// Package disk holds what the stores, the ledger and the service share to
// make files durable.
package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SyncDir fsyncs a directory, so that the files created or renamed in it
// survive a power loss.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	return nil
}

// MakeDir creates dir (0700) if it is missing, and makes its entry durable.
func MakeDir(dir string) error {
	_, err := os.Stat(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(filepath.Clean(dir)))
}

// writeChunk is the most WriteFile writes at once, and writePause how
// long it sleeps between two chunks. The kernel copies a chunk in a
// fraction of a millisecond; a checkpoint of 10 MB written at once held
// the core that the redirects share for 38 ms (a runtime trace of the
// embedded store on one core). Sleeping, not yielding, lets the scheduler
// poll the network meanwhile.
const (
	writeChunk = 256 << 10
	writePause = time.Millisecond
)

// WriteFile replaces the file at path with data (0600) in one step that a
// crash cannot tear: written aside, fsynced, renamed into place, and the
// directory fsynced. Data over writeChunk is written a chunk at a time,
// writePause apart.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename, there is none
	for rest := data; err == nil && len(rest) > 0; rest = rest[min(writeChunk, len(rest)):] {
		if len(rest) < len(data) {
			time.Sleep(writePause)
		}
		_, err = f.Write(rest[:min(writeChunk, len(rest))])
	}
	if err == nil {
		err = f.Sync()
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// KeepAside writes data, a damaged file's bytes, beside path as
// path.damaged, or path.damaged.2, ... when taken, with WriteFile, and
// returns the name it took.
func KeepAside(path string, data []byte) (string, error) {
	name := path + ".damaged"
	for n := 2; ; n++ {
		_, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return name, err
		}
		name = path + ".damaged." + strconv.Itoa(n)
	}
	return name, WriteFile(name, data)
}

// LockDir takes the exclusive lock of dir, on its file "lock" (created
// 0600), which closing the returned file releases. When another process,
// or another open file in this one, holds it, the error wraps inUse.
func LockDir(dir string, inUse error) (*os.File, error) {
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock of %q: %w", dir, err)
	}
	if err := Lock(lock); err != nil {
		lock.Close()
		if errors.Is(err, ErrWouldBlock) {
			return nil, fmt.Errorf("%w: %q", inUse, dir)
		}
		return nil, fmt.Errorf("cannot lock %q: %w", dir, err)
	}
	return lock, nil
}

// SegmentName is the file name of segment seq of a log (the visit log's
// and the spool's): 16 hex digits, then ".seg", so that names sort in
// order.
func SegmentName(seq uint64) string { return fmt.Sprintf("%016x.seg", seq) }

// ParseSegmentName returns the sequence number of a segment's file name,
// and false for any other name (segments are numbered from 1).
func ParseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil && seq > 0
}

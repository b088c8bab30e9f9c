package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/clickgate/clickgate/counter/disk"
)

// Open opens the spool in o.Dir, creating it if missing. It truncates a
// torn tail back to the last whole record, indexes the batches that were
// never acked and deletes the segments that hold none.
func Open(o Options) (*Spool, error) {
	if o.Dir == "" {
		return nil, errors.New("spool directory is required")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(64<<20, o.MaxBytes/8)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := disk.MakeDir(o.Dir); err != nil {
		return nil, fmt.Errorf("cannot open spool %q: %w", o.Dir, err)
	}
	lock, err := disk.LockDir(o.Dir, ErrInUse)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		o:       o,
		lock:    lock,
		nextSeq: 1,
		nextID:  1,
		batches: make(map[uint64]loc),
		held:    make(map[uint64]bool),
		write:   (*os.File).WriteAt,
		sync:    (*os.File).Sync,
	}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.mu.Lock()
	s.collect()
	s.mu.Unlock()
	bytesGauge.Add(float64(s.size))
	pendingGauge.Add(float64(len(s.batches)))
	return s, nil
}

// load reads every segment, oldest first.
func (s *Spool) load() error {
	entries, err := os.ReadDir(s.o.Dir)
	if err != nil {
		return fmt.Errorf("cannot open spool %q: %w", s.o.Dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".seg.tmp") {
			// A segment whose creation did not finish holds no record.
			if err := os.Remove(filepath.Join(s.o.Dir, name)); err != nil {
				return fmt.Errorf("cannot open spool %q: %w", s.o.Dir, err)
			}
			continue
		}
		seq, ok := disk.ParseSegmentName(name)
		if !ok {
			continue
		}
		if err := s.loadSegment(seq, filepath.Join(s.o.Dir, name)); err != nil {
			return err
		}
		s.nextSeq = max(s.nextSeq, seq+1)
	}
	return nil
}

// loadSegment reads one segment and truncates its torn tail. ReadDir sorts
// by name, and names sort by sequence.
func (s *Spool) loadSegment(seq uint64, path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cannot open spool segment: %w", err)
	}
	seg := &segment{seq: seq, path: path, f: f}
	s.segs = append(s.segs, seg) // closed by closeFiles on error
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("cannot read spool segment %q: %w", path, err)
	}
	recs, end, bad := scan(data)
	if bad != nil && !bad.torn {
		return fmt.Errorf("%w: segment %q at byte offset %d: %s", ErrCorrupt, path, bad.off, bad.reason)
	}
	for _, r := range recs {
		switch r.kind {
		case kindBatch, kindLegacy:
			if _, dup := s.batches[r.id]; dup {
				return fmt.Errorf("%w: segment %q at byte offset %d: batch %d appears twice", ErrCorrupt, path, r.off, r.id)
			}
			s.batches[r.id] = loc{seg: seg, off: r.off, n: r.n}
			s.order = append(s.order, r.id)
			seg.pending++
		case kindAck:
			if l, ok := s.batches[r.id]; ok {
				delete(s.batches, r.id)
				l.seg.pending--
			}
		}
		s.nextID = max(s.nextID, r.id+1)
	}
	if bad != nil {
		if err := f.Truncate(int64(end)); err != nil {
			return fmt.Errorf("cannot truncate the torn tail of spool segment %q: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("cannot sync spool segment %q after truncating its torn tail: %w", path, err)
		}
		s.recovered += int64(len(data) - end)
	}
	seg.size = int64(end)
	s.size += seg.size
	// A loaded segment takes no appends: a new one starts after a restart,
	// so the tail of an old one is never written twice.
	seg.sealed = true
	return nil
}

// scanned is a well-framed record of a segment.
type scanned struct {
	record
	off int64
	n   int
}

// badRecord is the first record of a segment that is not whole and valid.
type badRecord struct {
	off    int64
	torn   bool
	reason string
}

// scan reads the records of a segment file. It returns the whole ones
// before the first bad record, where they end, and the bad record. A bad
// record is a torn tail when it fails framing and no whole record follows
// it: what a crash in the middle of an append leaves, even with the file
// system writing its pages out of order. One that frames but does not
// decode, or one followed by a whole record, is corruption.
func scan(data []byte) (recs []scanned, end int, bad *badRecord) {
	if len(data) < headerLen || string(data[:headerLen]) != string(header) {
		// Segments are created with their header and then renamed into
		// place, so a crash never leaves a short one.
		return nil, 0, &badRecord{off: 0, reason: "no spool segment header"}
	}
	off := headerLen
	for off < len(data) {
		n, payload, err := frame(data[off:])
		if err != nil {
			bad = &badRecord{off: int64(off), torn: true, reason: err.Error()}
			if next := nextFramed(data, off+1); next >= 0 {
				bad.torn = false
				bad.reason += fmt.Sprintf("; a whole record follows at byte offset %d", next)
			}
			return recs, off, bad
		}
		r, err := parsePayload(payload)
		if err != nil {
			return recs, off, &badRecord{off: int64(off), reason: err.Error()}
		}
		recs = append(recs, scanned{record: r, off: int64(off), n: n})
		off += n
	}
	return recs, off, nil
}

// nextFramed returns the offset of the first well-framed record at or past
// from, or -1.
func nextFramed(data []byte, from int) int {
	for from < len(data) {
		i := indexMagic(data[from:])
		if i < 0 {
			return -1
		}
		if _, _, err := frame(data[from+i:]); err == nil {
			return from + i
		}
		from += i + 1
	}
	return -1
}

func indexMagic(b []byte) int { return bytes.Index(b, magic[:]) }

// Package spool is the durable local spool of visits that the store did not
// take in time: an append-only log of batches in segment files, each batch
// fsynced once when it is written, and acknowledged once the store has it.
//
// A batch is appended (and fsynced) before the people whose visits it holds
// are redirected, and acked once the store has committed it; Open finds the
// batches that were never acked, and the Recorder replays them into the
// store. Replay is idempotent because the store's dedupe makes a visit
// committed twice a duplicate the second time: a qualified visit is never
// paid twice.
//
// Segments whose batches are all acked are deleted, oldest first, so an ack
// is never lost while its batch is still on disk. The spool is bounded by
// Options.MaxBytes: a batch that does not fit is refused with ErrFull.
//
// Records are framed with a magic, a length and a crc32c (see record.go). A
// crash can leave the last record half written: Open truncates such a torn
// tail back to the last whole record, and refuses (ErrCorrupt) a segment in
// which a bad record is followed by a good one, which no crash explains.
package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/disk"
	"github.com/clickgate/clickgate/counter/visitlog"
)

var (
	// ErrFull is returned by Append when the batch would take the spool
	// past Options.MaxBytes. It is the Recorder's counter.ErrSpoolFull.
	ErrFull = counter.ErrSpoolFull
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrCorrupt is matched by Open's error for a bad record that a crash
	// cannot explain. Open changes nothing then; an operator must look.
	ErrCorrupt = errors.New("spool: corrupt")
	// ErrInUse is matched by Open's error when another process holds the
	// spool.
	ErrInUse = errors.New("spool: in use by another process")
)

// Process-wide figures over every open spool, for /metrics.
var (
	bytesGauge   = metrics.NewGauge(`clickgate_spool_bytes`, nil)
	pendingGauge = metrics.NewGauge(`clickgate_spool_pending_batches`, nil)
	writeErrors  = metrics.NewCounter(`clickgate_spool_write_errors_total`)
)

// Options configure a Spool.
type Options struct {
	// Dir holds the segment files and a lock file; created if missing.
	// Required.
	Dir string
	// MaxBytes bounds the spool's files on disk. A batch that would take
	// it past MaxBytes is refused with ErrFull (acks are always written:
	// they are small and free space). default: 1 GiB
	MaxBytes int64
	// SegmentBytes is the size past which a segment takes no more records,
	// so that acked segments can be deleted. default: 64 MiB, or MaxBytes/8
	// when that is smaller
	SegmentBytes int64
	// Logger receives housekeeping errors (a segment that cannot be
	// deleted). default: slog.Default()
	Logger *slog.Logger
}

// DefaultMaxBytes is the default of Options.MaxBytes.
const DefaultMaxBytes = 1 << 30

// Spool is an open spool directory. It holds an exclusive lock on the
// directory from Open to Close. Its methods are safe for concurrent use.
type Spool struct {
	o    Options
	lock *os.File

	mu        sync.Mutex
	closed    bool
	segs      []*segment // oldest first; the last takes appends unless sealed or full
	nextSeq   uint64     // of the next segment file
	nextID    uint64     // of the next batch
	batches   map[uint64]loc
	order     []uint64 // batch ids in append order; may hold acked ids
	held      map[uint64]bool
	size      int64
	recovered int64
	buf       []byte

	// Hooks for tests: a real write or fsync failure cannot be provoked
	// on demand.
	write func(f *os.File, p []byte, off int64) (int, error)
	sync  func(f *os.File) error
}

type segment struct {
	seq     uint64
	path    string
	f       *os.File
	size    int64 // bytes of the header and the whole records
	pending int   // batches not acked
	// sealed: a write failed, so what follows size is in doubt; the
	// segment takes no more records.
	sealed bool
}

// loc is where a batch record is.
type loc struct {
	seg *segment
	off int64
	n   int
}

// Append writes visits as one batch record and fsyncs it. The batch counts
// as spooled only once Append returns its id. A held batch is not Pending
// until Release: its commit is still in flight and may yet succeed.
//
// A batch that would take the spool past MaxBytes is refused with ErrFull.
// When a write or an fsync fails, the segment takes no more records (after
// a failed fsync the kernel may have dropped the pages and a retry would
// wrongly succeed) and the next Append starts a new one.
func (s *Spool) Append(visits []counter.Visit, held bool) (uint64, error) {
	if len(visits) == 0 {
		panic("BUG: spool: Append of an empty batch")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	id := s.nextID
	s.buf = appendRecord(s.buf[:0], kindBatch, id, func(b []byte) []byte {
		return visitlog.AppendBatch(b, &visitlog.Batch{ID: id, Visits: visits})
	})
	seg, off, err := s.appendLocked(s.buf, true)
	if cap(s.buf) > 1<<20 {
		s.buf = nil // don't keep a huge batch's buffer
	}
	if err != nil {
		return 0, err
	}
	s.nextID++
	s.batches[id] = loc{seg: seg, off: off, n: len(s.buf)}
	s.order = append(s.order, id)
	seg.pending++
	if held {
		s.held[id] = true
	}
	pendingGauge.Inc()
	return id, nil
}

// Ack records that batch id is in the store, and deletes the segments that
// no longer hold a batch to replay. Acking an unknown or acked batch does
// nothing.
//
// The batch is no longer pending even when Ack fails to write its record:
// replayed again and again, it would add its visits as duplicates on every
// pass. The next Open may then find it and replay it once more.
func (s *Spool) Ack(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	l, ok := s.batches[id]
	if !ok {
		return nil
	}
	s.buf = appendRecord(s.buf[:0], kindAck, id, nil)
	_, _, err := s.appendLocked(s.buf, false)
	delete(s.batches, id)
	delete(s.held, id)
	l.seg.pending--
	pendingGauge.Dec()
	s.collect()
	return err
}

// Release makes a held batch pending: its commit failed, and it must be
// replayed.
func (s *Spool) Release(id uint64) {
	s.mu.Lock()
	delete(s.held, id)
	s.mu.Unlock()
}

// Pending appends the ids of the batches to replay, oldest first, to dst:
// neither acked nor held.
func (s *Spool) Pending(dst []uint64) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.order[:0]
	for _, id := range s.order {
		if _, ok := s.batches[id]; !ok {
			continue
		}
		kept = append(kept, id)
		if !s.held[id] {
			dst = append(dst, id)
		}
	}
	clear(s.order[len(kept):])
	s.order = kept
	return dst
}

// Read appends the visits of batch id to dst. The record is checked again:
// the disk may have changed under it since it was written.
func (s *Spool) Read(id uint64, dst []counter.Visit) ([]counter.Visit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dst, ErrClosed
	}
	l, ok := s.batches[id]
	if !ok {
		return dst, fmt.Errorf("cannot read spooled batch %d: not pending", id)
	}
	b := make([]byte, l.n)
	if _, err := l.seg.f.ReadAt(b, l.off); err != nil {
		return dst, fmt.Errorf("cannot read spooled batch %d from %q: %w", id, l.seg.path, err)
	}
	_, payload, err := frame(b)
	var r record
	if err == nil {
		if r, err = parsePayload(payload); err == nil && (r.kind == kindAck || r.id != id) {
			err = fmt.Errorf("found %q record of batch %d", r.kind, r.id)
		}
	}
	if err != nil {
		return dst, fmt.Errorf("%w: batch %d in %q at byte offset %d: %w", ErrCorrupt, id, l.seg.path, l.off, err)
	}
	return r.visits(dst)
}

// Size returns the bytes the spool's segment files take.
func (s *Spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Len returns how many batches are not acked, held ones included.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

// Recovered returns how many bytes of torn tails Open truncated.
func (s *Spool) Recovered() int64 { return s.recovered }

// Close closes the files and releases the lock. The batches not acked stay
// on disk for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	bytesGauge.Add(-float64(s.size))
	pendingGauge.Add(-float64(len(s.batches)))
	return s.closeFiles()
}

func (s *Spool) closeFiles() error {
	var err error
	for _, seg := range s.segs {
		if e := seg.f.Close(); err == nil {
			err = e
		}
	}
	if e := s.lock.Close(); err == nil {
		err = e // releases the lock
	}
	return err
}

// appendLocked writes rec at the end of the segment that takes appends,
// starting a new one if needed, and fsyncs it. A batch is refused when it
// does not fit MaxBytes.
func (s *Spool) appendLocked(rec []byte, bounded bool) (*segment, int64, error) {
	var seg *segment
	if n := len(s.segs); n > 0 && !s.segs[n-1].sealed && s.segs[n-1].size < s.o.SegmentBytes {
		seg = s.segs[n-1]
	}
	grow := int64(len(rec))
	if seg == nil {
		grow += headerLen
	}
	if bounded && s.size+grow > s.o.MaxBytes {
		return nil, 0, ErrFull
	}
	if seg == nil {
		var err error
		if seg, err = s.newSegment(); err != nil {
			writeErrors.Inc()
			return nil, 0, err
		}
	}
	off := seg.size
	n, err := s.write(seg.f, rec, off)
	if err == nil && n != len(rec) {
		err = io.ErrShortWrite
	}
	if err == nil {
		// Never retried: after a failed fsync the kernel may have marked
		// the unwritten pages clean, and a second fsync would succeed.
		err = s.sync(seg.f)
	}
	if err != nil {
		writeErrors.Inc()
		seg.sealed = true
		// Best effort: a record that reached the disk after all would be
		// replayed at the next Open, a visit counted that was reported
		// lost, never a visit counted twice.
		seg.f.Truncate(off)
		if seg.pending == 0 && off == headerLen && seg == s.segs[len(s.segs)-1] {
			// Never held a record: don't let failures pile up empty files.
			if os.Remove(seg.path) == nil {
				seg.f.Close()
				s.segs = s.segs[:len(s.segs)-1]
				s.size -= headerLen
				bytesGauge.Add(-headerLen)
			}
		}
		return nil, 0, fmt.Errorf("cannot write to spool segment %q: %w", seg.path, err)
	}
	seg.size += int64(len(rec))
	s.size += int64(len(rec))
	bytesGauge.Add(float64(len(rec)))
	return seg, off, nil
}

// newSegment creates the next segment file: its header is written and
// fsynced under a temporary name, then renamed into place, so a segment
// file always starts with a whole header.
func (s *Spool) newSegment() (*segment, error) {
	seq := s.nextSeq
	path := filepath.Join(s.o.Dir, disk.SegmentName(seq))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot create spool segment %q: %w", path, err)
	}
	n, err := s.write(f, header, 0)
	if err == nil && n != len(header) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = s.sync(f)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = disk.SyncDir(s.o.Dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		os.Remove(path)
		return nil, fmt.Errorf("cannot create spool segment %q: %w", path, err)
	}
	s.nextSeq++
	seg := &segment{seq: seq, path: path, f: f, size: headerLen}
	s.segs = append(s.segs, seg)
	s.size += headerLen
	bytesGauge.Add(headerLen)
	return seg, nil
}

// collect deletes segments that hold no batch to replay: all of them when
// nothing is pending, else those before the oldest segment that does. Later
// ones may hold acks of batches in an earlier one, so they stay until it
// goes.
func (s *Spool) collect() {
	n := 0
	if len(s.batches) == 0 {
		n = len(s.segs)
	} else {
		for n < len(s.segs) && s.segs[n].pending == 0 {
			n++
		}
	}
	deleted := 0
	for _, seg := range s.segs[:n] {
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Tried again at the next ack, and by the next Open.
			s.o.Logger.Error("cannot delete an acked spool segment", "path", seg.path, "err", err)
			break
		}
		seg.f.Close()
		deleted++
		s.size -= seg.size
		bytesGauge.Add(-float64(seg.size))
	}
	if deleted == 0 {
		return
	}
	s.segs = slices.Delete(s.segs, 0, deleted)
	// An ack is durable without this; a deletion that a power loss undoes
	// only brings back acked batches.
	if err := disk.SyncDir(s.o.Dir); err != nil {
		s.o.Logger.Error("cannot sync the spool directory after deleting segments", "err", err)
	}
}

package visitlog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/disk"
)

var (
	// ErrBroken is matched by the errors of Append and Err once a write
	// or an fsync failed, until a repair succeeds. What the file holds
	// past the last good Append is then unknown (an fsync error may have
	// dropped pages that a second fsync would call clean), so it is never
	// fsynced again as it is: the next Append, or Repair, first cuts it
	// back to that Append's end and fsyncs the cut. Read and Trim go on
	// meanwhile.
	ErrBroken = errors.New("visitlog: broken")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("visitlog: closed")
	// ErrCorrupt is matched by the errors of Open and Read for bytes that
	// no crash explains. Open changes nothing then; an operator must look.
	ErrCorrupt = errors.New("visitlog: corrupt")
	// ErrInUse is matched by Open's error when another Log holds the
	// directory, in this process or another.
	ErrInUse = errors.New("visitlog: in use by another process")
	// ErrTrimmed is matched by Read's error for an offset in a segment that
	// Trim removed.
	ErrTrimmed = errors.New("visitlog: offset trimmed")
	// ErrOffset is matched by the errors of Read and Trim for an offset
	// past the end, or one where no record starts.
	ErrOffset = errors.New("visitlog: no record at offset")
	// ErrShort is matched by Err while there is no room ahead of the
	// records (see Options.ExtendBytes): a disk that filled up. Appends
	// go on in the zeros left.
	ErrShort = errors.New("visitlog: no room ahead of the records")
	// ErrTooLarge is returned by Append for an empty batch or one over
	// MaxRecordBytes; nothing was written and the Log stays usable.
	ErrTooLarge = errors.New("visitlog: batch empty or too large")
)

// Process-wide figures over every open log, for /metrics.
var (
	bytesGauge   = metrics.NewGauge(`clickgate_visitlog_bytes`, nil)
	appendsTotal = metrics.NewCounter(`clickgate_visitlog_appends_total`)
	batchesTotal = metrics.NewCounter(`clickgate_visitlog_batches_total`)
	writeErrors  = metrics.NewCounter(`clickgate_visitlog_write_errors_total`)
	// syncSeconds is the fsync of each Append alone: the disk's share of
	// a commit, which a slow or shared disk stretches.
	syncSeconds = metrics.NewPrometheusHistogramExt(`clickgate_visitlog_sync_seconds`, counter.DurationBuckets)
)

// DefaultSegmentBytes is the default of Options.SegmentBytes.
const DefaultSegmentBytes = 64 << 20

// readBufLen is what Read and Open read at a time; a larger record grows
// the buffer.
const readBufLen = 256 << 10

// Options configure a Log.
type Options struct {
	// Dir holds the segment files and a lock file; created (0700) if
	// missing. Required.
	Dir string
	// SegmentBytes is the size past which a segment takes no more
	// records: the next Append starts a new one. Trim deletes whole
	// segments. default: 64 MiB
	SegmentBytes int64
	// ExtendBytes is how far ahead of its records a segment file is
	// extended with zeros: an Append that would leave fewer than half
	// this many after its records first writes this many more. Its fsync
	// then records the file's new size; the Appends after it overwrite
	// zeros, and their fsync (fdatasync) changes no metadata, which costs
	// about half the CPU and a fraction of the time (BenchmarkLogAppend).
	// And a disk that fills up fails the write of zeros, not of records:
	// the Appends go on in the zeros left, and Err says the room runs
	// short. default: 1 MiB; negative: none, the file grows with each
	// Append
	ExtendBytes int64
	// Logger is told of a torn tail that Open cut off. default:
	// slog.Default()
	Logger *slog.Logger
	// From is the lowest offset that will be read: the judge's
	// checkpoint. Open does not read the records before it, so damage to
	// what was judged already, which only waits for Trim, does not stop
	// the log from opening; Read refuses them (ErrTrimmed). It is an
	// offset Read handed out, or End. default: the beginning
	From Offset
}

// DefaultExtendBytes is the default of Options.ExtendBytes.
const DefaultExtendBytes = 1 << 20

type logState int

const (
	stateOpen   logState = iota
	stateBroken          // a write or fsync failed: Append refuses; Read and Trim go on
	stateClosed
)

// Log is the embedded store's visit log: one log for every partition,
// records in segment files. It holds an exclusive lock on its directory
// from Open to Close. Its methods are safe for concurrent use; Append is
// meant for one committer, Read for any number of readers alongside it.
type Log struct {
	o         Options
	lock      *os.File
	recovered int64

	// Hooks for tests: a real write or fsync failure cannot be provoked
	// on demand.
	write func(f *os.File, p []byte, off int64) (int, error)
	sync  func(f *os.File) error

	amu   sync.Mutex // serializes Append; held through its fsync
	buf   []byte     // the records of one Append, under amu
	zeros []byte     // never written to: what room writes, under amu
	tmu   sync.Mutex // serializes Trim

	mu     sync.Mutex // guards what follows; never held through I/O but a Close
	state  logState
	broken error      // why, in stateBroken; wraps ErrBroken
	failed error      // why the last Append could not write its records, until one succeeds
	short  error      // why the last segment has fewer zeros ahead than it should, until it has them
	segs   []*segment // oldest first; the last takes appends
	end    Offset     // the durable end: after the last fsynced Append
	notify chan struct{}
}

// segment is an open segment file. Read takes a reference, so that Trim
// and Close leave the file open until the Read is done with it.
type segment struct {
	seq  uint64
	path string
	f    *os.File
	size int64 // the header and whole, fsynced records; changes only under amu and mu
	file int64 // the file's size: size and the zeros after it; under amu
	refs int   // the Log's and readers'; the file closes at 0
}

// Append writes each of batches (encoded batches, see AppendBatch) as a
// record, with one write and one fsync for the call, and returns the
// offset after the last. Once it returns, Read sees them all; after a
// crash, Open finds all of them or none.
//
// An empty batch or one over MaxRecordBytes is refused with ErrTooLarge,
// and nothing is written. When a write or the fsync fails, the Log breaks:
// this Append returns an error wrapping ErrBroken, and so does every later
// one until the repair that each first tries succeeds (see ErrBroken).
// After a crash meanwhile, the failed Append's records may or may not be
// found: a batch reported lost may be judged after all, which its batch id
// makes harmless.
func (l *Log) Append(batches ...[]byte) (Offset, error) {
	l.amu.Lock()
	defer l.amu.Unlock()
	l.mu.Lock()
	state, err, end, seg := l.state, l.broken, l.end, l.segs[len(l.segs)-1]
	l.mu.Unlock()
	if state == stateBroken {
		state, err = l.repair(seg)
	}
	switch {
	case state == stateClosed:
		return end, ErrClosed
	case state == stateBroken:
		return end, err
	case len(batches) == 0:
		return end, nil
	}
	total := 0
	for i, b := range batches {
		if len(b) == 0 || len(b) > MaxRecordBytes {
			return end, fmt.Errorf("%w: batch %d of the append has %d bytes; the limit is %d", ErrTooLarge, i, len(b), MaxRecordBytes)
		}
		if total += frameLen + len(b); total > maxAppendBytes {
			return end, fmt.Errorf("%w: an append of over %d bytes", ErrTooLarge, maxAppendBytes)
		}
	}
	l.buf = l.buf[:0]
	for i, b := range batches {
		l.buf = appendRecord(l.buf, b, len(l.buf), i == len(batches)-1)
	}
	records := int64(len(l.buf))
	if seg.size >= l.o.SegmentBytes && seg.size > headerLen {
		// A failure here leaves the segment it would follow as it was:
		// the next Append tries again. Meanwhile the records go on in
		// that segment's zeros while they have room.
		f, path, err := createSegment(l.o.Dir, seg.seq+1, l.write, l.sync)
		if err != nil {
			if err := l.runShort(seg, seg.size+records, err); err != nil {
				return end, err
			}
		} else {
			seg = &segment{seq: seg.seq + 1, path: path, f: f, size: headerLen, file: headerLen, refs: 1}
			end = Offset{seg.seq, seg.size}
			l.mu.Lock()
			l.segs = append(l.segs, seg)
			l.end = end
			l.short = nil // its room is made next, or found short again
			l.mu.Unlock()
			bytesGauge.Add(headerLen)
		}
	}
	if err := l.room(seg, seg.size+records); err != nil {
		if err := l.runShort(seg, seg.size+records, err); err != nil {
			return end, err
		}
	}
	n, err := l.write(seg.f, l.buf, seg.size)
	if err == nil && n != len(l.buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		// Never retried: after a failed fsync the kernel may have marked
		// the unwritten pages clean, and a second fsync would succeed.
		t := time.Now()
		err = l.sync(seg.f)
		syncSeconds.UpdateDuration(t)
	}
	if err != nil {
		writeErrors.Inc()
		err = fmt.Errorf("%w: cannot append to visit log segment %q at byte offset %d: %w", ErrBroken, seg.path, seg.size, err)
		l.mu.Lock()
		l.state, l.broken = stateBroken, err
		l.mu.Unlock()
		return end, err
	}
	seg.file = max(seg.file, seg.size+records)
	l.mu.Lock()
	seg.size += records
	l.end = Offset{seg.seq, seg.size}
	l.failed = nil
	end = l.end
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
	l.mu.Unlock()
	bytesGauge.Add(float64(len(l.buf)))
	appendsTotal.Inc()
	batchesTotal.Add(len(batches))
	if cap(l.buf) > 4<<20 {
		l.buf = nil // don't keep a huge append's buffer
	}
	return end, nil
}

// Err returns why the Log is broken (wrapping ErrBroken), ErrClosed once
// it is closed, why the last Append could not write its records (its
// segment could not be created, or the zeros ahead of it could not be
// written) until an Append succeeds, or why the zeros ahead of the records
// run short (a full disk: Appends go on in the zeros left), or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.state == stateBroken:
		return l.broken
	case l.state == stateClosed:
		return ErrClosed
	case l.failed != nil:
		return l.failed
	}
	return l.short
}

// End returns the durable end: the offset after the last Append.
func (l *Log) End() Offset {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end
}

// Notify returns a channel that is closed once an Append moves the end
// past where it is now, or the Log closes. Take it before a Read that
// reaches the end, then wait on it: an Append during the Read closes it.
func (l *Log) Notify() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notify == nil {
		l.notify = make(chan struct{})
		if l.state == stateClosed {
			close(l.notify)
		}
	}
	return l.notify
}

// Recovered returns how many bytes of a torn tail Open cut off.
func (l *Log) Recovered() int64 { return l.recovered }

// Trim deletes the segments that lie wholly below below: those before its
// segment. Every record at or after below stays readable. below is the
// lowest checkpoint of all the judges; one past the end is refused with
// ErrOffset.
func (l *Log) Trim(below Offset) error {
	l.tmu.Lock()
	defer l.tmu.Unlock()
	l.mu.Lock()
	if l.state == stateClosed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.end.Less(below) {
		end := l.end
		l.mu.Unlock()
		return fmt.Errorf("%w: cannot trim below %s, past the end %s", ErrOffset, below, end)
	}
	var doomed []*segment
	for _, seg := range l.segs[:len(l.segs)-1] {
		if seg.seq >= below.Segment {
			break
		}
		doomed = append(doomed, seg)
	}
	l.mu.Unlock()
	for _, seg := range doomed {
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot trim visit log segment %q: %w", seg.path, err)
		}
		l.mu.Lock()
		if l.state == stateClosed {
			l.mu.Unlock()
			return ErrClosed
		}
		l.segs[0] = nil
		l.segs = l.segs[1:]
		l.unref(seg)
		l.mu.Unlock()
		bytesGauge.Add(-float64(seg.size))
		// One at a time, oldest first: the segments a power loss leaves
		// are always the newest ones, with none missing between.
		if err := disk.SyncDir(l.o.Dir); err != nil {
			return fmt.Errorf("cannot trim visit log segment %q: %w", seg.path, err)
		}
	}
	return nil
}

// Close closes the log and releases its lock, after the Append in flight.
// A Read in progress finishes on the files it has open; any later call
// returns ErrClosed.
func (l *Log) Close() error {
	l.amu.Lock()
	defer l.amu.Unlock()
	l.tmu.Lock()
	defer l.tmu.Unlock()
	l.mu.Lock()
	if l.state == stateClosed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.state = stateClosed
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
	bytesGauge.Add(-float64(l.size()))
	var err error
	for _, seg := range l.segs {
		if e := l.unref(seg); err == nil {
			err = e
		}
	}
	l.mu.Unlock()
	if e := l.lock.Close(); err == nil {
		err = e // releases the lock
	}
	return err
}

// size is the bytes of the segments; the caller holds mu or owns l.
func (l *Log) size() int64 {
	var n int64
	for _, seg := range l.segs {
		n += seg.size
	}
	return n
}

// unref drops a reference to seg, closing its file at the last. The
// caller holds mu.
func (l *Log) unref(seg *segment) error {
	if seg.refs--; seg.refs > 0 {
		return nil
	}
	if seg.refs < 0 {
		panic("BUG: visitlog: segment " + seg.path + " released twice")
	}
	return seg.f.Close()
}

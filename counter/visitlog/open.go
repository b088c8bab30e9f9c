package visitlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/clickgate/clickgate/counter/disk"
)

// Open opens the log in o.Dir, creating it if missing. It reads every
// segment from o.From on: a torn tail of the last one (what a crash during
// an Append leaves) is cut back to the end of the last whole Append, and
// fsynced; anything else that is not whole (a bad record that a crash
// cannot explain, a bad header, a missing segment) is refused with an
// error that matches ErrCorrupt and names the file and the byte offset,
// and Open changes nothing.
func Open(o Options) (*Log, error) {
	if o.Dir == "" {
		return nil, errors.New("visit log directory is required")
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.ExtendBytes == 0 {
		o.ExtendBytes = DefaultExtendBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := disk.MakeDir(o.Dir); err != nil {
		return nil, fmt.Errorf("cannot open visit log %q: %w", o.Dir, err)
	}
	lock, err := disk.LockDir(o.Dir, ErrInUse)
	if err != nil {
		return nil, err
	}
	l := &Log{o: o, lock: lock, write: (*os.File).WriteAt, sync: disk.DataSync}
	if err := l.load(); err != nil {
		for _, seg := range l.segs {
			seg.f.Close()
		}
		lock.Close()
		return nil, err
	}
	last := l.segs[len(l.segs)-1]
	l.end = Offset{last.seq, last.size}
	bytesGauge.Add(float64(l.size()))
	return l, nil
}

// load opens the segments, checking them all before it cuts a torn tail,
// or creates the first one.
func (l *Log) load() error {
	entries, err := os.ReadDir(l.o.Dir)
	if err != nil {
		return fmt.Errorf("cannot open visit log %q: %w", l.o.Dir, err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".seg.tmp") {
			// A segment whose creation did not finish holds no record.
			if err := os.Remove(filepath.Join(l.o.Dir, name)); err != nil {
				return fmt.Errorf("cannot open visit log %q: %w", l.o.Dir, err)
			}
			continue
		}
		if seq, ok := disk.ParseSegmentName(name); ok {
			seqs = append(seqs, seq) // ReadDir sorts by name, so by seq
		}
	}
	if len(seqs) == 0 {
		f, path, err := createSegment(l.o.Dir, 1, l.write, l.sync)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, &segment{seq: 1, path: path, f: f, size: headerLen, file: headerLen, refs: 1})
		return nil
	}
	buf := make([]byte, readBufLen)
	var torn *badRecord
	var tornSize int64
	for i, seq := range seqs {
		path := filepath.Join(l.o.Dir, disk.SegmentName(seq))
		if i > 0 && seq != seqs[i-1]+1 {
			// Trim deletes the oldest first, fsyncing the directory
			// after each: the segments left are never missing one.
			return fmt.Errorf("%w: segment %q follows segment %d", ErrCorrupt, path, seqs[i-1])
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("cannot open visit log segment: %w", err)
		}
		seg := &segment{seq: seq, path: path, f: f, refs: 1}
		l.segs = append(l.segs, seg)
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("cannot open visit log segment: %w", err)
		}
		last := i == len(seqs)-1
		if seq < l.o.From.Segment && !last {
			// Judged: only Trim, which deletes it whole, needs it.
			seg.size, seg.file = fi.Size(), fi.Size()
			continue
		}
		start := int64(headerLen)
		if seq == l.o.From.Segment {
			start = max(start, l.o.From.Pos)
		}
		end, bad, err := scanSegment(f, fi.Size(), start, seq, buf)
		if err != nil {
			return fmt.Errorf("cannot read visit log segment %q: %w", path, err)
		}
		if bad != nil && (!bad.torn || !last) {
			// Appends go to the last segment only, so only its tail can
			// be torn.
			return fmt.Errorf("%w: segment %q at byte offset %d: %s", ErrCorrupt, path, bad.off, bad.reason)
		}
		seg.size, seg.file = end, fi.Size()
		torn, tornSize = bad, fi.Size()
	}
	if torn == nil {
		return nil
	}
	seg := l.segs[len(l.segs)-1]
	if err := seg.f.Truncate(seg.size); err != nil {
		return fmt.Errorf("cannot cut the torn tail of visit log segment %q: %w", seg.path, err)
	}
	if err := seg.f.Sync(); err != nil {
		return fmt.Errorf("cannot sync visit log segment %q after cutting its torn tail: %w", seg.path, err)
	}
	seg.file = seg.size
	l.recovered = tornSize - seg.size
	l.o.Logger.Warn("visit log: cut a torn tail, the records of an append that a crash interrupted",
		"segment", seg.path, "offset", seg.size, "bytes", l.recovered, "bad_record_offset", torn.off, "reason", torn.reason)
	return nil
}

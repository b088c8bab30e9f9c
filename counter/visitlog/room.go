package visitlog

// The room ahead of the records: the zeros a segment file is extended
// with (Options.ExtendBytes), written before the records that will go in
// them, so that a disk that fills up fails their write, not the records'.

import (
	"fmt"
	"io"
)

// Reserve writes the zeros ahead of the records that the next Append
// would, so that a disk that fills up before it leaves it room. Unlike
// Open, which changes nothing but a torn tail, it writes. It returns why it
// could not, which Err reports then (ErrShort), as after an Append.
func (l *Log) Reserve() error {
	l.amu.Lock()
	defer l.amu.Unlock()
	l.mu.Lock()
	state, seg := l.state, l.segs[len(l.segs)-1]
	l.mu.Unlock()
	if state != stateOpen {
		return l.Err()
	}
	return l.reserve(seg)
}

// reserve is Reserve for seg, the last segment. The caller holds amu.
func (l *Log) reserve(seg *segment) error {
	err := l.room(seg, seg.size)
	if err != nil {
		l.runShort(seg, seg.size, err)
	}
	return err
}

// room makes ExtendBytes/2 of zeros at least follow end, the end of the
// records about to be written to seg: when fewer do, it writes ExtendBytes
// more, before the records, so that a disk that fills up
// fails that write, not theirs, and the records go on in the zeros left
// meanwhile. Past SegmentBytes too, for a segment whose successor cannot be
// created. The caller holds amu.
func (l *Log) room(seg *segment, end int64) error {
	if l.o.ExtendBytes <= 0 || seg.file >= end+l.o.ExtendBytes/2 {
		return nil
	}
	to := max(seg.file, end) + l.o.ExtendBytes // the file grows by ExtendBytes: one fsync in so many bytes changes metadata
	if int64(len(l.zeros)) < to-seg.file {
		l.zeros = make([]byte, to-seg.file)
	}
	n, err := l.write(seg.f, l.zeros[:to-seg.file], seg.file)
	if err == nil && n != int(to-seg.file) {
		err = io.ErrShortWrite
	}
	if len(l.zeros) > 4<<20 {
		l.zeros = nil // don't keep what a huge append needed
	}
	if err != nil {
		return fmt.Errorf("cannot write the zeros ahead of the records of visit log segment %q, to byte offset %d: %w", seg.path, to, err)
	}
	seg.file = to
	l.mu.Lock()
	again := l.short != nil
	l.short = nil
	l.mu.Unlock()
	if again {
		l.o.Logger.Info("visit log: room ahead of its records again", "segment", seg.path)
	}
	return nil
}

// runShort records err, why there is no more room ahead of the records
// (ErrShort), and warns of it the first time. It returns err when the
// records that would end at end do not fit the zeros left in seg either:
// then the Append writes nothing, and Err says why until one succeeds.
func (l *Log) runShort(seg *segment, end int64, err error) error {
	l.mu.Lock()
	first := l.short == nil
	l.short = fmt.Errorf("%w: %w", ErrShort, err)
	if end > seg.file {
		l.failed = err
	}
	l.mu.Unlock()
	writeErrors.Inc()
	if first {
		l.o.Logger.Warn("visit log: no room ahead of its records; appends go on in the zeros left",
			"segment", seg.path, "bytes_left", max(0, seg.file-end), "err", err)
	}
	if end > seg.file {
		return err
	}
	return nil
}

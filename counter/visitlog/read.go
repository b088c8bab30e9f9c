package visitlog

import (
	"fmt"
	"io"
	"sync"
)

// readBufs keeps Read's buffers: a judge that tails the log reads often.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufLen); return &b }}

// Read calls fn with each record from from on, in order, up to the
// durable end as it is when Read starts: at is where the record starts,
// next where the one after it starts (the offset to resume from), and batch
// its payload, valid only during the call. An error from fn stops Read,
// which returns it as it is.
//
// The zero Offset is the log's beginning. An offset in a segment that Trim
// removed (before or during the Read), or before Options.From, is refused
// with ErrTrimmed, one past
// the end or where no record starts with ErrOffset. Read checks each
// record's crc32c again: the disk may have changed since Open. It runs
// alongside Append and Trim; it sees only fsynced records.
func (l *Log) Read(from Offset, fn func(at, next Offset, batch []byte) error) error {
	if from == (Offset{}) {
		from = Offset{1, headerLen}
	}
	l.mu.Lock()
	if l.state == stateClosed {
		l.mu.Unlock()
		return ErrClosed
	}
	stop, first := l.end, l.segs[0].seq
	l.mu.Unlock()
	switch {
	case from.Segment < first:
		return fmt.Errorf("%w: cannot read from %s: the log begins in segment %d", ErrTrimmed, from, first)
	case from.Less(l.o.From):
		return fmt.Errorf("%w: cannot read from %s: the log was opened from %s", ErrTrimmed, from, l.o.From)
	case stop.Less(from):
		return fmt.Errorf("%w: cannot read from %s, past the end %s", ErrOffset, from, stop)
	case from.Pos < headerLen:
		return fmt.Errorf("%w: cannot read from %s, inside the segment header", ErrOffset, from)
	}
	bp := readBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 4*readBufLen {
			readBufs.Put(bp) // don't keep a huge record's buffer
		}
	}()
	for seq := from.Segment; seq <= stop.Segment; seq++ {
		seg, limit, err := l.acquire(seq, stop)
		if err != nil {
			return err
		}
		pos := int64(headerLen)
		if seq == from.Segment {
			pos = from.Pos
		}
		err = readSegment(seg, pos, limit, seq == from.Segment, bp, fn)
		l.mu.Lock()
		l.unref(seg)
		l.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// acquire takes a reference to segment seq, and returns where reading it
// stops: its end, or stop in stop's segment.
func (l *Log) acquire(seq uint64, stop Offset) (*segment, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.state == stateClosed:
		return nil, 0, ErrClosed
	case seq < l.segs[0].seq:
		return nil, 0, fmt.Errorf("%w: segment %d was trimmed during the read", ErrTrimmed, seq)
	}
	seg := l.segs[seq-l.segs[0].seq] // segments up to stop's are there: only Trim removes any
	seg.refs++
	if seq == stop.Segment {
		return seg, stop.Pos, nil
	}
	return seg, seg.size, nil
}

// readSegment calls fn with the records of seg from pos to limit. starts
// says pos came from the caller, who may have made it up.
func readSegment(seg *segment, pos, limit int64, starts bool, bp *[]byte, fn func(at, next Offset, batch []byte) error) error {
	if pos > limit {
		return fmt.Errorf("%w: cannot read from %s, past the end of segment %q at %d", ErrOffset, Offset{seg.seq, pos}, seg.path, limit)
	}
	r := recordReader{f: seg.f, pos: pos, limit: limit, buf: *bp}
	defer func() { *bp = r.buf }()
	for {
		rec, err := r.next()
		fe, framing := err.(*frameError) // next returns them as they are
		switch {
		case err == io.EOF:
			return nil
		case framing && starts && fe.off == pos:
			return fmt.Errorf("%w: %s: no record starts there (an offset the log did not hand out, or a corrupt segment %q): %s", ErrOffset, Offset{seg.seq, pos}, seg.path, fe.reason)
		case framing:
			return fmt.Errorf("%w: segment %q at byte offset %d: %s", ErrCorrupt, seg.path, fe.off, fe.reason)
		case err != nil:
			return fmt.Errorf("cannot read visit log segment %q: %w", seg.path, err)
		}
		at := Offset{seg.seq, rec.off}
		if err := fn(at, Offset{seg.seq, rec.off + int64(rec.n)}, rec.payload); err != nil {
			return err
		}
	}
}

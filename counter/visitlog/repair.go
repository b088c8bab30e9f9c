package visitlog

import (
	"errors"
	"fmt"
	"io"
)

// repair cuts seg, the last segment of a broken Log, back to the end of
// its last whole Append, as Open cuts a torn tail, writes the zeros that
// the next Append would extend it with (Options.ExtendBytes, a block at
// least), and fsyncs it: what a failed Append left past that end, in the file or only in the
// page cache, is gone, and the pages before it were fsynced by the Appends
// that wrote them. The zeros try the disk: on a disk that is still full
// the repair fails. It returns the state the Log is in then, and why it
// is still broken. The caller holds amu.
func (l *Log) repair(seg *segment) (logState, error) {
	// A block at least, past the segment's end if need be (zeros there
	// are its unused end): near it, zeros that fit the block the file's
	// end already holds would try nothing.
	ext := max(repairProbe, min(l.o.ExtendBytes, l.o.SegmentBytes-seg.size))
	err := seg.f.Truncate(seg.size)
	if err == nil {
		seg.file = seg.size
		var n int
		n, err = l.write(seg.f, make([]byte, ext), seg.size)
		if err == nil && n != int(ext) {
			err = io.ErrShortWrite
		}
	}
	if err == nil {
		err = l.sync(seg.f)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		return stateBroken, fmt.Errorf("%w; cannot repair visit log segment %q from byte offset %d: %w", l.broken, seg.path, seg.size, err)
	}
	l.o.Logger.Warn("visit log: repaired; what the failed append wrote was cut off",
		"segment", seg.path, "offset", seg.size, "failure", l.broken)
	seg.file = seg.size + ext
	l.state, l.broken, l.short = stateOpen, nil, nil
	return stateOpen, nil
}

// repairProbe is the least a repair writes: a file system block.
const repairProbe = 4096

// Repair repairs a broken Log, as the next Append would, writes the zeros
// ahead of the records that an Append could not write (see Err), and
// returns Err, or why the repair failed. A caller that checks the Log's
// health calls it, so that a Log broken, or short of room, on a disk that
// was full recovers once there is room, with no Append.
func (l *Log) Repair() error {
	if err := l.Err(); err == nil || errors.Is(err, ErrClosed) {
		return err // without waiting for an Append's fsync
	}
	l.amu.Lock()
	defer l.amu.Unlock()
	l.mu.Lock()
	state, seg := l.state, l.segs[len(l.segs)-1]
	l.mu.Unlock()
	switch state {
	case stateBroken:
		if _, err := l.repair(seg); err != nil {
			return err
		}
	case stateOpen:
		if err := l.reserve(seg); err != nil {
			return l.Err()
		}
		if l.o.ExtendBytes > 0 {
			// The next Append's records have zeros to go in, even
			// should its segment fail to roll over.
			l.mu.Lock()
			l.failed = nil
			l.mu.Unlock()
		}
	}
	return l.Err()
}

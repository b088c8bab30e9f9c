package visitlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/clickgate/clickgate/counter/disk"
)

// Salvaged is what Salvage did to one segment.
type Salvaged struct {
	// Segment is the segment's file, rewritten; Original is where its
	// bytes as they were are kept.
	Segment, Original string
	// Damage is the byte offset where the segment stopped being whole.
	Damage int64
	// Kept is how many whole records after the damage were kept, and
	// Dropped how many bytes after it are in none of them (zeros at the
	// end of the file aside): the visits of the batches they held are
	// lost.
	Kept    int
	Dropped int64
}

// Salvage rewrites each segment of the log in o.Dir that Open refuses as
// corrupt (ErrCorrupt) when given o.From, so that it opens again: what
// comes before the damaged Append (or o.From, when it falls inside it)
// stays byte for byte, and every whole record from there on (magic,
// length and crc32c intact) is kept, each as an Append of its own, so that
// o.From and the offset of every record before the damage keep their
// meaning. A segment too short for its header gets one. Missing segments
// are refused: nothing makes them up. The segment as it was is first written beside it, as
// NAME.damaged (NAME.damaged.2, ... if taken). A segment that Open takes
// as it is, or whose only flaw is a torn last Append, which Open cuts, is
// left alone. No Log may be open on o.Dir: Salvage takes its lock.
//
// What Salvage drops is lost: the judge never sees those batches. It is
// for an operator whose store will not start otherwise.
func Salvage(o Options) ([]Salvaged, error) {
	if o.Dir == "" {
		return nil, errors.New("visit log directory is required")
	}
	lock, err := disk.LockDir(o.Dir, ErrInUse)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read visit log %q: %w", o.Dir, err)
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := disk.ParseSegmentName(e.Name()); ok {
			seqs = append(seqs, seq)
		}
	}
	var done []Salvaged
	for i, seq := range seqs {
		if i > 0 && seq != seqs[i-1]+1 {
			return done, fmt.Errorf("%w: segment %q follows segment %d: the segments between are missing, and salvage cannot make them up",
				ErrCorrupt, filepath.Join(o.Dir, disk.SegmentName(seq)), seqs[i-1])
		}
		last := i == len(seqs)-1
		if seq < o.From.Segment && !last {
			continue
		}
		start := int64(headerLen)
		if seq == o.From.Segment {
			start = max(start, o.From.Pos)
		}
		path := filepath.Join(o.Dir, disk.SegmentName(seq))
		data, err := os.ReadFile(path)
		if err != nil {
			return done, fmt.Errorf("cannot read visit log segment: %w", err)
		}
		if start > headerLen && start > int64(len(data)) {
			return done, fmt.Errorf("%w: segment %q has %d bytes, and its records are to be read from byte offset %d: nothing to salvage",
				ErrCorrupt, path, len(data), start)
		}
		end, bad, err := scanSegment(bytes.NewReader(data), int64(len(data)), start, seq, nil)
		if err != nil {
			return done, fmt.Errorf("cannot read visit log segment %q: %w", path, err)
		}
		if bad == nil || (bad.torn && last) {
			continue
		}
		s, err := salvage(path, seq, data, start, end, bad.off)
		if err != nil {
			return done, err
		}
		done = append(done, s)
	}
	return done, nil
}

// salvage rewrites the segment path, seq, whose bytes are data: whole up
// to end (0: its header is damaged), damaged at damage, its records read
// from start.
func salvage(path string, seq uint64, data []byte, start, end, damage int64) (Salvaged, error) {
	s := Salvaged{Segment: path, Damage: damage}
	var out []byte
	if end == 0 {
		// The header is damaged, or missing: a new one, and what lies
		// before start (judged already) as it is.
		out = binary.LittleEndian.AppendUint64(append([]byte(nil), segmentMagic...), seq)
		if start > headerLen {
			out = append(out, data[headerLen:start]...)
		}
		end = start
	} else {
		out = append([]byte(nil), data[:end]...)
	}
	// From the end of the last whole Append: the records of the damaged
	// one before the damage are whole too.
	tail := data[min(end, int64(len(data))):]
	covered, after := 0, 0 // bytes in kept records; where the last one ends
	eachWhole(tail, func(off, n int, _ uint32, payload []byte) bool {
		out = appendRecord(out, payload, 0, true)
		s.Kept++
		covered, after = covered+n, off+n
		return true
	})
	zeros := len(tail) - len(bytes.TrimRight(tail, "\x00")) // the file's extended end
	s.Dropped = int64(len(tail) - covered - min(zeros, len(tail)-after))
	// The original first: a crash in between leaves it in both places.
	var err error
	if s.Original, err = disk.KeepAside(path, data); err != nil {
		return s, fmt.Errorf("cannot keep the damaged visit log segment: %w", err)
	}
	if err := disk.WriteFile(path, out); err != nil {
		return s, fmt.Errorf("cannot rewrite the damaged visit log segment: %w", err)
	}
	return s, nil
}

package visitlog

import (
	"encoding/binary"
	"fmt"
)

// Offset is a position in the log: a segment's sequence number and a byte
// offset in its file. The offsets the Log hands out (End, Append, Read's at
// and next) are record boundaries. The zero Offset is the log's beginning.
//
// The end of a segment and the start of the next one are the same point
// of the log under two offsets; Read accepts both.
type Offset struct {
	Segment uint64
	Pos     int64
}

// OffsetLen is the length of an Offset's binary form.
const OffsetLen = 16

// Less reports whether o is before p.
func (o Offset) Less(p Offset) bool {
	return o.Segment < p.Segment || (o.Segment == p.Segment && o.Pos < p.Pos)
}

func (o Offset) String() string { return fmt.Sprintf("%d:%d", o.Segment, o.Pos) }

// MarshalBinary returns o as 16 bytes, segment then position, big-endian,
// so that the byte order of two offsets is their order.
func (o Offset) MarshalBinary() ([]byte, error) {
	return o.AppendBinary(make([]byte, 0, OffsetLen))
}

// AppendBinary appends the 16 bytes of MarshalBinary to b.
func (o Offset) AppendBinary(b []byte) ([]byte, error) {
	if o.Pos < 0 {
		return b, fmt.Errorf("cannot encode offset %s: negative position", o)
	}
	b = binary.BigEndian.AppendUint64(b, o.Segment)
	return binary.BigEndian.AppendUint64(b, uint64(o.Pos)), nil
}

// UnmarshalBinary sets o from the 16 bytes of MarshalBinary.
func (o *Offset) UnmarshalBinary(b []byte) error {
	if len(b) != OffsetLen {
		return fmt.Errorf("cannot decode an offset from %d bytes; want %d", len(b), OffsetLen)
	}
	pos := binary.BigEndian.Uint64(b[8:])
	if int64(pos) < 0 {
		return fmt.Errorf("cannot decode an offset with position %d", pos)
	}
	o.Segment, o.Pos = binary.BigEndian.Uint64(b), int64(pos)
	return nil
}

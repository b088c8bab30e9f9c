package visitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/clickgate/clickgate/counter"
)

// DecodeBatch decodes p into into, reusing into.Visits' array. The
// campaign, creator and link strings are allocated once per batch, and shared by
// its visits; none refers to p. Nothing is allocated per visit. An error
// matches ErrFormat, and leaves into with no visits. A reader of many
// batches should use a Decoder.
func DecodeBatch(p []byte, into *Batch) error {
	var s table
	return decode(p, into, nil, &s)
}

// Decoder decodes batches like DecodeBatch, but keeps the campaign,
// creator and link strings it has seen (up to maxNames, then it starts again) and
// its string table, so that a judge reading batch after batch allocates
// nothing once it knows them (see TestDecodeBatchAllocs). Not safe for
// concurrent use.
type Decoder struct {
	names map[string]string
	table table
}

// maxNames bounds the strings a Decoder keeps.
const maxNames = 1 << 16

// Decode decodes p into into; see DecodeBatch.
func (dec *Decoder) Decode(p []byte, into *Batch) error {
	if dec.names == nil || len(dec.names) > maxNames {
		dec.names = make(map[string]string)
	}
	return decode(p, into, dec.names, &dec.table)
}

// table is the string table of one batch.
type table struct {
	strings []string
	index   map[string]struct{} // of strings, once they outgrow smallTable
}

// decode decodes p into into, with t's storage for the string table. With
// names, it takes strings from names and adds new ones to it.
func decode(p []byte, into *Batch, names map[string]string, t *table) error {
	into.ID, into.Visits = 0, into.Visits[:0]
	d := decoder{b: p, t: t, names: names}
	err := d.batch(into)
	// Don't keep the strings of the batch alive.
	clear(t.strings)
	t.strings = t.strings[:0]
	clear(t.index)
	if err != nil {
		clear(into.Visits[:cap(into.Visits)])
		into.ID, into.Visits = 0, into.Visits[:0]
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return nil
}

// decoder reads one batch; the first error sticks.
type decoder struct {
	b     []byte
	err   error
	t     *table
	names map[string]string // strings to reuse, and to add to; nil for none
}

var errShort = errors.New("batch ends inside a visit")

func (d *decoder) batch(into *Batch) error {
	if len(d.b) < batchHeaderLen {
		return fmt.Errorf("%d bytes, too few for a batch", len(d.b))
	}
	version := d.b[0]
	if version < batchVersion1 || version > batchVersion {
		return fmt.Errorf("unknown version %d", version)
	}
	into.ID = binary.LittleEndian.Uint64(d.b[1:])
	if into.ID == 0 {
		return errors.New("batch id 0")
	}
	d.b = d.b[batchHeaderLen:]
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if n == 0 || n > MaxVisits || n > uint64(len(d.b)/minVisitLen) {
		return fmt.Errorf("visit count %d does not fit %d bytes", n, len(d.b))
	}
	into.Visits = growVisits(into.Visits, int(n))
	var prev counter.Visit
	for i := range into.Visits {
		v := &into.Visits[i]
		*v = counter.Visit{}
		flags := d.byte()
		known := byte(flagMarkOnly | flagHasAlso | flagHasLink)
		if version < batchVersion {
			known &^= flagHasLink
		}
		if d.err == nil && flags&^known != 0 {
			d.err = fmt.Errorf("unknown flags %#x in version %d", flags, version)
		}
		v.MarkOnly = flags&flagMarkOnly != 0
		v.HasAlso = flags&flagHasAlso != 0
		v.Campaign = d.ref("campaign")
		v.Creator = d.ref("creator")
		if flags&flagHasLink != 0 {
			v.Link = d.ref("link")
		}
		d.bytes(v.Key[:])
		if v.HasAlso {
			d.bytes(v.Also[:])
		}
		v.Window = prev.Window + d.varint()
		v.Expires = prev.Expires + d.varint()
		day := int64(prev.Day) + d.varint()
		if d.err == nil && (day < math.MinInt32 || day > math.MaxInt32) {
			d.err = fmt.Errorf("day %d is out of range", day)
		}
		v.Day = counter.Day(day)
		v.At = prev.At + d.varint()
		var network [8]byte
		d.bytes(network[:])
		v.Network = binary.LittleEndian.Uint64(network[:])
		if version != batchVersion1 {
			d.bytes(network[:])
			v.Block = binary.LittleEndian.Uint64(network[:])
		}
		d.bytes(v.Nonce[:])
		if d.err != nil {
			into.Visits = into.Visits[:i]
			return fmt.Errorf("visit %d: %w", i, d.err)
		}
		prev = *v
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d bytes after the last visit", len(d.b))
	}
	return nil
}

func growVisits(vs []counter.Visit, n int) []counter.Visit {
	if cap(vs) < n {
		return make([]counter.Visit, n)
	}
	return vs[:n]
}

// uvarint reads a minimal uvarint.
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) > 0 && d.b[0] < 0x80 {
		// Most are one byte: refs, deltas.
		x := d.b[0]
		d.b = d.b[1:]
		return uint64(x)
	}
	x, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.err = errShort
		return 0
	case n < 0:
		d.err = errors.New("varint overflows 64 bits")
		return 0
	case n > 1 && d.b[n-1] == 0:
		d.err = fmt.Errorf("varint of %d bytes is not minimal", n)
		return 0
	}
	d.b = d.b[n:]
	return x
}

// varint reads a minimal zigzag varint.
func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) byte() byte {
	var b [1]byte
	d.bytes(b[:])
	return b[0]
}

func (d *decoder) bytes(dst []byte) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(dst) {
		d.err = errShort
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

// ref reads a campaign, creator or link ref.
func (d *decoder) ref(what string) string {
	r := d.uvarint()
	if d.err != nil {
		return ""
	}
	if r > 0 {
		if r > uint64(len(d.t.strings)) {
			d.err = fmt.Errorf("%s ref %d past a table of %d strings", what, r, len(d.t.strings))
			return ""
		}
		return d.t.strings[r-1]
	}
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n == 0 || n > MaxIDLen {
		d.err = fmt.Errorf("%s id of %d bytes", what, n)
		return ""
	}
	if uint64(len(d.b)) < n {
		d.err = errShort
		return ""
	}
	raw := d.b[:n]
	d.b = d.b[n:]
	if d.has(raw) {
		d.err = fmt.Errorf("%s id %q is new twice", what, raw)
		return ""
	}
	s, ok := d.names[string(raw)]
	if !ok {
		s = string(raw)
		if d.names != nil {
			d.names[s] = s
		}
	}
	t := d.t
	t.strings = append(t.strings, s)
	if len(t.strings) > smallTable {
		if t.index == nil {
			t.index = make(map[string]struct{}, 2*smallTable)
		}
		if len(t.strings) == smallTable+1 {
			for _, old := range t.strings[:smallTable] {
				t.index[old] = struct{}{}
			}
		}
		t.index[s] = struct{}{}
	}
	return s
}

// has reports whether raw is in the table. The lookups do not allocate.
func (d *decoder) has(raw []byte) bool {
	if len(d.t.strings) > smallTable {
		_, ok := d.t.index[string(raw)]
		return ok
	}
	for _, t := range d.t.strings {
		if t == string(raw) {
			return true
		}
	}
	return false
}

package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// A segment file is a header followed by records:
//
//	header   "CGSPOOL" 0x01 (8 bytes)
//	record   magic (4 bytes) | n: payload length (uint32 LE) | crc32c of n's 4 bytes and the payload (uint32 LE) | payload (n bytes)
//	payload  kind (1 byte) | batch id (uint64 LE) | body
//
// A batch record ('V') holds visits; its body is a batch of the visit log
// (counter/visitlog), the one format of visits on disk and in Redis, with
// the batch id of the record. The batch records of earlier versions ('B',
// a uvarint count and the visits, without their time and network) are
// still read, so that a spool left by one is replayed. An ack record ('A') has no body: the batch with its id is in the
// store. The magic lets Open tell a torn tail (nothing whole after the bad
// record) from corruption (a whole record after it) without trying every
// byte offset.
var (
	header = []byte("CGSPOOL\x01")
	magic  = [4]byte{0xc1, 0x1c, 0x6a, 0x7e}
)

const (
	headerLen = 8
	frameLen  = 12 // magic, length, crc

	kindBatch  byte = 'V'
	kindLegacy byte = 'B' // read only
	kindAck    byte = 'A'

	// maxPayload bounds one record, so that a damaged length never makes
	// Open allocate gigabytes. A batch of the Recorder's largest queue,
	// 65,536 visits of two 64-byte ids, takes about 13 MB.
	maxPayload = 64 << 20
	// maxIDLen bounds a campaign or creator id; the admin API allows 64.
	maxIDLen = 256

	flagMarkOnly = 1 << 0
	flagHasAlso  = 1 << 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends a record of kind and id whose body is appended by
// body (nil for none), and returns the record's bytes within dst.
func appendRecord(dst []byte, kind byte, id uint64, body func([]byte) []byte) []byte {
	start := len(dst)
	dst = append(dst, magic[:]...)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // length and crc, set below
	dst = append(dst, kind)
	dst = binary.LittleEndian.AppendUint64(dst, id)
	if body != nil {
		dst = body(dst)
	}
	n := len(dst) - start - frameLen
	if n > maxPayload {
		panic(fmt.Sprintf("BUG: spool record of %d bytes; the limit is %d", n, maxPayload))
	}
	binary.LittleEndian.PutUint32(dst[start+4:], uint32(n))
	crc := crc32.Update(crc32.Checksum(dst[start+4:start+8], castagnoli), castagnoli, dst[start+frameLen:])
	binary.LittleEndian.PutUint32(dst[start+8:], crc)
	return dst
}

// appendVisits appends a legacy batch body: the count, then each visit.
// Only tests write it now.
func appendVisits(dst []byte, visits []counter.Visit) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(visits)))
	for i := range visits {
		v := &visits[i]
		dst = binary.AppendUvarint(dst, uint64(len(v.Campaign)))
		dst = append(dst, v.Campaign...)
		dst = binary.AppendUvarint(dst, uint64(len(v.Creator)))
		dst = append(dst, v.Creator...)
		dst = append(dst, v.Key[:]...)
		dst = binary.AppendVarint(dst, v.Window)
		dst = binary.AppendVarint(dst, v.Expires)
		dst = binary.AppendVarint(dst, int64(v.Day))
		var flags byte
		if v.MarkOnly {
			flags |= flagMarkOnly
		}
		if v.HasAlso {
			flags |= flagHasAlso
		}
		dst = append(dst, flags)
		if v.HasAlso {
			dst = append(dst, v.Also[:]...)
		}
	}
	return dst
}

// frame checks the record that starts b: magic, length and crc32c. It
// returns the record's length and its payload. Failing it is what a torn
// write looks like.
func frame(b []byte) (n int, payload []byte, err error) {
	if len(b) < frameLen {
		return 0, nil, fmt.Errorf("%d bytes left, too few for a record", len(b))
	}
	if !bytes.Equal(b[:4], magic[:]) {
		return 0, nil, errors.New("no record magic")
	}
	size := binary.LittleEndian.Uint32(b[4:])
	if size < 1+8 || size > maxPayload {
		return 0, nil, fmt.Errorf("payload length %d is out of range", size)
	}
	if int64(len(b)-frameLen) < int64(size) {
		return 0, nil, fmt.Errorf("payload of %d bytes, only %d left", size, len(b)-frameLen)
	}
	payload = b[frameLen : frameLen+int(size)]
	want := binary.LittleEndian.Uint32(b[8:])
	if got := crc32.Update(crc32.Checksum(b[4:8], castagnoli), castagnoli, payload); got != want {
		return 0, nil, fmt.Errorf("crc32c mismatch: recorded %08x, computed %08x", want, got)
	}
	return frameLen + int(size), payload, nil
}

// record is a decoded payload; body is the batch body, not yet decoded.
type record struct {
	kind byte
	id   uint64
	body []byte
}

// parsePayload checks what a well-framed payload must hold on its own.
// Failing it is corruption, not a torn write: the crc matched.
func parsePayload(p []byte) (record, error) {
	r := record{kind: p[0], id: binary.LittleEndian.Uint64(p[1:9]), body: p[9:]}
	if r.id == 0 {
		return r, errors.New("batch id 0")
	}
	switch r.kind {
	case kindAck:
		if len(r.body) != 0 {
			return r, fmt.Errorf("ack of batch %d has a body of %d bytes", r.id, len(r.body))
		}
	case kindBatch, kindLegacy:
		// Decoded in full when read: Open only needs the id, but a body
		// that does not decode is refused now, not at replay.
		if _, err := r.visits(nil); err != nil {
			return r, fmt.Errorf("batch %d: %w", r.id, err)
		}
	default:
		return r, fmt.Errorf("unknown record kind %q", r.kind)
	}
	return r, nil
}

// visits appends the visits of a batch record to dst.
func (r *record) visits(dst []counter.Visit) ([]counter.Visit, error) {
	if r.kind == kindLegacy {
		return decodeVisits(r.body, dst)
	}
	var b visitlog.Batch
	if err := visitlog.DecodeBatch(r.body, &b); err != nil {
		return dst, err
	}
	if b.ID != r.id {
		return dst, fmt.Errorf("holds the visits of batch %d", b.ID)
	}
	return append(dst, b.Visits...), nil
}

// decodeVisits appends the visits of a legacy batch body to dst. Consecutive
// visits of one campaign and creator share their strings.
func decodeVisits(b []byte, dst []counter.Visit) ([]counter.Visit, error) {
	d := decoder{b: b}
	count := d.uvarint()
	// A visit takes at least 22 bytes: two one-byte ids, the key, three
	// varints and the flags.
	if d.err == nil && (count == 0 || count > uint64(len(d.b))/22) {
		return dst, fmt.Errorf("visit count %d does not fit %d bytes", count, len(b))
	}
	var campaign, creator string
	for i := uint64(0); i < count && d.err == nil; i++ {
		var v counter.Visit
		v.Campaign = d.id("campaign", campaign)
		v.Creator = d.id("creator", creator)
		campaign, creator = v.Campaign, v.Creator
		d.key(&v.Key)
		v.Window = d.varint()
		v.Expires = d.varint()
		day := d.varint()
		if d.err == nil && int64(counter.Day(day)) != day {
			d.err = fmt.Errorf("day %d is out of range", day)
		}
		v.Day = counter.Day(day)
		flags := d.byte()
		if d.err == nil && flags&^(flagMarkOnly|flagHasAlso) != 0 {
			d.err = fmt.Errorf("unknown flags %#x", flags)
		}
		v.MarkOnly = flags&flagMarkOnly != 0
		v.HasAlso = flags&flagHasAlso != 0
		if v.HasAlso {
			d.key(&v.Also)
		}
		if d.err != nil {
			return dst, fmt.Errorf("visit %d: %w", i, d.err)
		}
		dst = append(dst, v)
	}
	if d.err != nil {
		return dst, d.err
	}
	if len(d.b) != 0 {
		return dst, fmt.Errorf("%d bytes after the last visit", len(d.b))
	}
	return dst, nil
}

// decoder reads a batch body; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("body ends inside a visit")

func (d *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	if !d.advance(n) {
		return 0
	}
	return x
}

func (d *decoder) varint() int64 {
	x, n := binary.Varint(d.b)
	if !d.advance(n) {
		return 0
	}
	return x
}

// advance consumes a varint of n bytes, n as binary.Uvarint returns it, or
// records why there is none.
func (d *decoder) advance(n int) bool {
	switch {
	case d.err != nil:
		return false
	case n == 0:
		d.err = errShort
		return false
	case n < 0:
		d.err = errors.New("varint overflows 64 bits")
		return false
	}
	d.b = d.b[n:]
	return true
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) key(k *counter.VisitorKey) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(k) {
		d.err = errShort
		return
	}
	copy(k[:], d.b)
	d.b = d.b[len(k):]
}

// id reads a campaign or creator id, returning prev itself when equal.
func (d *decoder) id(what, prev string) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n == 0 || n > maxIDLen {
		d.err = fmt.Errorf("%s id of %d bytes", what, n)
		return ""
	}
	if uint64(len(d.b)) < n {
		d.err = errShort
		return ""
	}
	raw := d.b[:n]
	d.b = d.b[n:]
	if string(raw) == prev {
		return prev
	}
	return string(raw)
}

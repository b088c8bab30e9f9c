package visitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/clickgate/clickgate/counter"
)

// An encoded batch, all integers little-endian:
//
//	batch  version (1 byte, 3) | id (8 bytes, not 0) | n: visits (uvarint, 1..MaxVisits) | n visits
//	visit  flags (1 byte) | campaign (ref) | creator (ref) | link (ref, only when HasLink)
//	       | key (16 bytes) | also (16 bytes, only when HasAlso)
//	       | window, expires, day, at: each the zigzag varint of its difference from the previous visit's (0 before the first)
//	       | network (8 bytes) | block (8 bytes) | nonce (8 bytes)
//	ref    uvarint r: 0 = a new string follows, as a uvarint length (1..MaxIDLen) and its bytes, and takes the
//	       next index of the batch's string table; r >= 1 = the string at index r-1
//	flags  bit 0 MarkOnly, bit 1 HasAlso, bit 2 HasLink (Visit.Link is not ""); the other bits are 0
//
// Campaigns, creators and links share the string table, so a link code
// repeated in a batch costs one byte.
//
// The form is canonical, and DecodeBatch refuses anything else: varints are
// minimal, a string is new exactly once (a ref names it afterwards), no
// byte follows the last visit. So encoding a decoded batch gives back the
// same bytes, and a batch has one encoding, whatever carries it (a
// segment record, a Redis stream field). Also is not encoded when HasAlso
// is false: it decodes as zero.
//
// A typical visit (ids and link already in the table, a second key, a
// few milliseconds after the one before) takes 64 bytes, 48 without the
// second key (TestBatchBytes, BenchmarkAppendBatch).
//
// Version 2, which logs written before Visit.Link was recorded hold, is
// version 3 without flag bit 2 and the link ref: DecodeBatch reads it,
// with Link "" (unknown: the visit counts for its creator alone).
// Version 1, written before Visit.Block was recorded, is version 2
// without the block (55 bytes a typical visit), read with Block 0
// (unknown: no block budget applies). AppendBatch writes only version 3.
// A batch of an older version is canonical as that version and encodes
// again as version 3: its identity is its Batch.ID, not its bytes.
const (
	batchVersion = 3
	// batchVersion2 has no link.
	batchVersion2 = 2
	// batchVersion1 has no link and no block.
	batchVersion1 = 1

	// MaxIDLen bounds a campaign or creator id or a link code; the admin
	// API allows 64.
	MaxIDLen = 256
	// MaxVisits bounds the visits of one batch.
	MaxVisits = 1 << 20

	flagMarkOnly = 1 << 0
	flagHasAlso  = 1 << 1
	flagHasLink  = 1 << 2

	batchHeaderLen = 1 + 8
	// minVisitLen is the smallest visit of version 1: flags, two refs,
	// the key, four one-byte deltas, network and nonce. It bounds the
	// count a batch of some length can claim, so a forged count allocates
	// nothing.
	minVisitLen = 1 + 2 + 16 + 4 + 8 + 8
	// smallTable is how many strings the encoder and the decoder look up by
	// scanning before they index them in a map.
	smallTable = 16
)

// Batch is the visits of one group commit, as one value in the log.
type Batch struct {
	// ID makes appends idempotent: unique per writer and never 0 (see
	// BatchIDs). The log keeps a batch appended twice; the judge skips it.
	ID     uint64
	Visits []counter.Visit
}

// ErrFormat is matched by DecodeBatch's errors: the bytes are not a batch
// in the canonical form this package writes.
var ErrFormat = errors.New("visitlog: malformed batch")

// encoder is the string table of one AppendBatch, reused through a pool.
type encoder struct {
	table []string
	index map[string]uint32 // of table, once it outgrows smallTable
}

var encoders = sync.Pool{New: func() any { return new(encoder) }}

// AppendBatch appends the encoding of b to dst. It does not allocate when
// dst has room (see TestAppendBatchAllocs).
//
// A batch with id 0, no visits or more than MaxVisits, or an id that is
// empty or longer than MaxIDLen (a link code may be empty: unknown), is a
// bug of the caller: AppendBatch panics.
func AppendBatch(dst []byte, b *Batch) []byte {
	if b.ID == 0 || len(b.Visits) == 0 || len(b.Visits) > MaxVisits {
		panic(fmt.Sprintf("BUG: visitlog: batch %d of %d visits", b.ID, len(b.Visits)))
	}
	e := encoders.Get().(*encoder)
	dst = append(dst, batchVersion)
	dst = binary.LittleEndian.AppendUint64(dst, b.ID)
	dst = binary.AppendUvarint(dst, uint64(len(b.Visits)))
	var prev counter.Visit
	for i := range b.Visits {
		v := &b.Visits[i]
		var flags byte
		if v.MarkOnly {
			flags |= flagMarkOnly
		}
		if v.HasAlso {
			flags |= flagHasAlso
		}
		if v.Link != "" {
			flags |= flagHasLink
		}
		dst = append(dst, flags)
		dst = e.ref(dst, v.Campaign)
		dst = e.ref(dst, v.Creator)
		if v.Link != "" {
			dst = e.ref(dst, v.Link)
		}
		dst = append(dst, v.Key[:]...)
		if v.HasAlso {
			dst = append(dst, v.Also[:]...)
		}
		// Differences wrap around: decoding adds them back modulo 2^64,
		// so any int64 round-trips.
		dst = binary.AppendVarint(dst, v.Window-prev.Window)
		dst = binary.AppendVarint(dst, v.Expires-prev.Expires)
		dst = binary.AppendVarint(dst, int64(v.Day)-int64(prev.Day))
		dst = binary.AppendVarint(dst, v.At-prev.At)
		dst = binary.LittleEndian.AppendUint64(dst, v.Network)
		dst = binary.LittleEndian.AppendUint64(dst, v.Block)
		dst = append(dst, v.Nonce[:]...)
		prev.Window, prev.Expires, prev.Day, prev.At = v.Window, v.Expires, v.Day, v.At
	}
	e.reset()
	encoders.Put(e)
	return dst
}

// ref appends the ref of s, adding s to the table when it is new.
func (e *encoder) ref(dst []byte, s string) []byte {
	if i, ok := e.lookup(s); ok {
		return binary.AppendUvarint(dst, uint64(i)+1)
	}
	if len(s) == 0 || len(s) > MaxIDLen {
		e.reset()
		panic(fmt.Sprintf("BUG: visitlog: id %q of %d bytes", s, len(s)))
	}
	e.add(s)
	dst = append(dst, 0)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func (e *encoder) lookup(s string) (uint32, bool) {
	if e.index != nil && len(e.table) > smallTable {
		i, ok := e.index[s]
		return i, ok
	}
	// Newest first: a batch tends to repeat the visit before.
	for i := len(e.table) - 1; i >= 0; i-- {
		if e.table[i] == s {
			return uint32(i), true
		}
	}
	return 0, false
}

func (e *encoder) add(s string) {
	e.table = append(e.table, s)
	if len(e.table) <= smallTable {
		return
	}
	if e.index == nil {
		e.index = make(map[string]uint32)
	}
	if len(e.table) == smallTable+1 {
		for i, t := range e.table[:smallTable] {
			e.index[t] = uint32(i)
		}
	}
	e.index[s] = uint32(len(e.table) - 1)
}

// reset forgets the strings, which belong to the caller's visits, so the
// pool does not keep them alive.
func (e *encoder) reset() {
	clear(e.table)
	e.table = e.table[:0]
	clear(e.index)
	if cap(e.table) > 1<<12 {
		e.table, e.index = nil, nil // don't keep a huge batch's table
	}
}

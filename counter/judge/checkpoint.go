package judge

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"runtime"
	"slices"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// Errors of UnmarshalBinary.
var (
	// ErrParams means the checkpoint was made with another sizing
	// (Params.Expected, FP, Partitions, Keying): its filters are laid out
	// otherwise, or keyed by another secret.
	ErrParams = errors.New("judge: checkpoint made with other sizing parameters")
	// ErrVersion means the checkpoint is in a format this build does not
	// read.
	ErrVersion = errors.New("judge: checkpoint format not supported")
	// ErrCorrupt means the checkpoint is damaged: truncated, altered, or
	// not a judge checkpoint at all.
	ErrCorrupt = errors.New("judge: damaged checkpoint")
)

const (
	// version is the format MarshalBinary writes. Version 6, written
	// before the judge remembered batch ids, is version 7 without the
	// batches section: it is read with none. Version 5, written
	// while the velocity rule's networks were in key order, is read too:
	// it is version 6 with the networks in key order, each key as its
	// uvarint difference from the one before. Version 4, written
	// while budgets' counts were in key order, is read too: it is
	// version 5 with each budget's keys in key order, each as its uvarint
	// difference from the one before. Version 3, written before link
	// counters, is version 4 without the links section. Version 2,
	// written before layers, is version 3 with one layer per window.
	// Version 1, written before budgets, is version 2 without the
	// budgets in the params and without the budgets section, and loads
	// into a judge whose budgets are 0.
	version  = 7
	version7 = 7
	version6 = 6
	version5 = 5
	version4 = 4
	version3 = 3
	version2 = 2
	version1 = 1
	// maxStringLen bounds an id, the keying and the offset; the admin API
	// allows ids of 64 bytes and the visit log 256.
	maxStringLen = 256
	// maxWindows bounds the live windows of one partition, so that a
	// checkpoint cannot ask for more filters than any judge holds: a
	// campaign has one or two live windows at a time.
	maxWindows = 4096
	crcLen     = 4
)

var (
	magic      = [8]byte{'C', 'G', 'J', 'U', 'D', 'G', 'E', version}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// MarshalBinary returns the checkpoint of the judge's state, in the format
// of the package documentation. Equal states give equal bytes. It fails
// only on state no checkpoint can hold (ids over 256 bytes, over 4096 live
// windows), which the visit log does not carry.
func (j *Judge) MarshalBinary() ([]byte, error) {
	return j.AppendBinary(make([]byte, 0, j.sizeHint()))
}

// AppendBinary appends the checkpoint to b, as MarshalBinary returns it.
func (j *Judge) AppendBinary(b []byte) ([]byte, error) {
	return j.appendVersion(b, version)
}

// appendVersion appends the checkpoint in format version v: version, or
// an older one for a judge that could have written it (no budgets for
// version 1, windows of one layer for versions 1 and 2, no link counters
// before version 4), to check that a checkpoint of that version is
// canonical.
func (j *Judge) appendVersion(b []byte, v byte) ([]byte, error) {
	var y yielder
	start := len(b)
	b = append(b, magic[:len(magic)-1]...)
	b = append(b, v)
	b = appendParams(b, j.p, j.win.sizes, v)
	b = appendString(b, j.offset)
	b = binary.AppendVarint(b, j.clock)
	b, err := j.appendWindows(b, v, &y)
	if err != nil {
		return nil, err
	}
	b = j.appendNetworks(b, v, &y)
	if v != version1 {
		if b, err = j.appendBudgets(b, v); err != nil {
			return nil, err
		}
	}
	if b, err = appendRows(b, j.cnt.sorted(), rowLevels[:2]); err != nil {
		return nil, err
	}
	if v >= version4 {
		if b, err = appendRows(b, j.links.sorted(), rowLevels[:]); err != nil {
			return nil, err
		}
	} else if len(j.links.rows) > 0 {
		return nil, fmt.Errorf("cannot checkpoint link counters in format version %d", v)
	}
	if v >= version7 {
		ids := j.batches.ordered()
		b = binary.AppendUvarint(b, uint64(len(ids)))
		for _, id := range ids {
			b = binary.LittleEndian.AppendUint64(b, id)
		}
	} else if len(j.batches.ring) > 0 {
		return nil, fmt.Errorf("cannot checkpoint batch ids in format version %d", v)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

func (j *Judge) sizeHint() int {
	n := 128 + len(j.win.sizes)*20 + j.vel.len()*13 + j.bud.entries()*12 + len(j.cnt.rows)*24 + len(j.links.rows)*32 + len(j.batches.ring)*8
	for _, w := range j.win.byKey {
		n += 64
		for i := range w.layers {
			n += int(j.win.sizes[i].m/8) + 2
		}
	}
	return n
}

func appendParams(b []byte, p Params, sizes []layerSize, v byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, p.Expected)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.FP))
	b = binary.LittleEndian.AppendUint32(b, p.Partitions)
	b = binary.LittleEndian.AppendUint32(b, uint32(p.VelocityMax))
	b = binary.LittleEndian.AppendUint64(b, uint64(p.VelocityWindow))
	if v != version1 {
		b = binary.LittleEndian.AppendUint32(b, uint32(p.BudgetNetwork))
		b = binary.LittleEndian.AppendUint32(b, uint32(p.BudgetBlock))
	}
	if v < version3 {
		b = binary.LittleEndian.AppendUint64(b, sizes[0].m)
		b = binary.LittleEndian.AppendUint32(b, uint32(sizes[0].k))
	} else {
		b = binary.AppendUvarint(b, uint64(len(sizes)))
		for _, sz := range sizes {
			b = binary.LittleEndian.AppendUint64(b, sz.m)
			b = binary.LittleEndian.AppendUint32(b, uint32(sz.k))
			b = binary.LittleEndian.AppendUint64(b, sz.seal)
		}
	}
	return appendString(b, p.Keying)
}

func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (j *Judge) appendWindows(b []byte, v byte, y *yielder) ([]byte, error) {
	if len(j.win.byKey) > maxWindows {
		return nil, fmt.Errorf("cannot checkpoint %d live dedupe windows; the limit is %d", len(j.win.byKey), maxWindows)
	}
	ws := make([]*window, 0, len(j.win.byKey))
	for _, w := range j.win.byKey {
		if len(w.campaign) > maxStringLen {
			return nil, fmt.Errorf("cannot checkpoint campaign id %.32q... of %d bytes; the limit is %d", w.campaign, len(w.campaign), maxStringLen)
		}
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *window) int {
		return cmp.Or(strings.Compare(a.campaign, b.campaign), cmp.Compare(a.start, b.start))
	})
	b = binary.AppendUvarint(b, uint64(len(ws)))
	for _, w := range ws {
		b = appendString(b, w.campaign)
		b = binary.AppendVarint(b, w.start)
		b = binary.AppendVarint(b, w.expires)
		if v < version3 {
			if len(w.layers) != 1 {
				return nil, fmt.Errorf("cannot checkpoint a window of %d layers in format version %d", len(w.layers), v)
			}
		} else {
			b = binary.AppendUvarint(b, uint64(len(w.layers)))
		}
		for i := range w.layers {
			b = appendWords(b, w.layers[i].bits, y)
		}
	}
	return b, nil
}

// appendWords appends words as runs: the number of zero words, the number
// of non-zero words, and those, until all are covered. A filter far from
// full is mostly zero words; one near capacity costs its size.
func appendWords(b []byte, words []uint64, y *yielder) []byte {
	for i := 0; i < len(words); {
		z := i
		for z < len(words) && words[z] == 0 {
			z++
		}
		l := z
		for l < len(words) && words[l] != 0 {
			l++
		}
		b = binary.AppendUvarint(b, uint64(z-i))
		b = binary.AppendUvarint(b, uint64(l-z))
		for _, w := range words[z:l] {
			b = binary.LittleEndian.AppendUint64(b, w)
			y.step(8)
		}
		i = l
	}
	return b
}

// appendNetworks appends the networks in the order first counted (in
// format version 5 and before: in key order), each with its counts of
// the current granule and the 7 before it, oldest first.
func (j *Judge) appendNetworks(b []byte, v byte, y *yielder) []byte {
	vc := &j.vel
	b = binary.AppendUvarint(b, uint64(vc.len()))
	nets := vc.nets
	if v < version6 {
		nets = vc.sorted()
	}
	var prev uint64
	for _, e := range nets {
		n := e.n
		if n.g == droppedGranule {
			continue
		}
		if v < version6 {
			b = binary.AppendUvarint(b, e.key-prev)
			prev = e.key
		} else {
			b = binary.LittleEndian.AppendUint64(b, e.key)
		}
		n.roll(vc.cur)
		mask := len(b)
		b = append(b, 0)
		for i := range int64(lanes) {
			if c := n.lanes[floorMod(vc.cur-lanes+1+i, lanes)]; c != 0 {
				b[mask] |= 1 << i
				b = binary.AppendUvarint(b, uint64(c))
			}
		}
		y.step(16)
	}
	return b
}

// yieldEvery is about how many bytes of work a checkpoint does between
// two yields of its goroutine. A checkpoint of megabytes is tens of
// milliseconds of CPU, and Go preempts a goroutine only after 10 ms: on a
// busy core the requests would wait for it, and their p99 with them
// (a judge on Redis marshals on its own goroutine, the embedded store on a
// copy in the background). Yielding lets them go first; a yield costs far
// less than a microsecond, once every 64 KiB.
const yieldEvery = 64 << 10

// yielder counts a checkpoint's work and yields every yieldEvery bytes.
type yielder int

func (y *yielder) step(n int) {
	if *y += yielder(n); *y >= yieldEvery {
		*y = 0
		runtime.Gosched()
	}
}

// appendBudgets appends the budgets of the clock's day by campaign, in id
// order, each with its networks and then its blocks.
func (j *Judge) appendBudgets(b []byte, v byte) ([]byte, error) {
	cs := j.bud.sorted()
	b = binary.AppendUvarint(b, uint64(len(cs)))
	for _, c := range cs {
		if len(c.campaign) > maxStringLen {
			return nil, fmt.Errorf("cannot checkpoint campaign id %.32q... of %d bytes; the limit is %d", c.campaign, len(c.campaign), maxStringLen)
		}
		b = appendString(b, c.campaign)
		b = appendKeyCounts(b, &c.networks, v)
		b = appendKeyCounts(b, &c.blocks, v)
	}
	return b, nil
}

// appendKeyCounts appends the number of keys, then each key and its
// count: in the order they were first counted, each key as 8 bytes; or,
// in format version 4 and before, in key order, each key as its uvarint
// difference from the one before (the first from 0).
func appendKeyCounts(b []byte, k *keyCounts, v byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(k.counts)))
	if v >= version5 {
		for _, c := range k.counts {
			b = binary.LittleEndian.AppendUint64(b, c.key)
			b = binary.AppendUvarint(b, uint64(c.n))
		}
		return b
	}
	sorted := slices.SortedFunc(slices.Values(k.counts), func(x, y keyCount) int { return cmp.Compare(x.key, y.key) })
	var prev uint64
	for _, c := range sorted {
		b = binary.AppendUvarint(b, c.key-prev)
		b = binary.AppendUvarint(b, uint64(c.n))
		prev = c.key
	}
	return b
}

// rowLevel is one level of the grouping of counter rows in a checkpoint:
// rows are grouped by campaign, then creator, then (link rows) link.
type rowLevel struct {
	name string
	get  func(*CreatorDay) string
	set  func(*CreatorDay, string)
}

var rowLevels = [...]rowLevel{
	{"campaign", func(r *CreatorDay) string { return r.Campaign }, func(r *CreatorDay, s string) { r.Campaign = s }},
	{"creator", func(r *CreatorDay) string { return r.Creator }, func(r *CreatorDay, s string) { r.Creator = s }},
	{"link", func(r *CreatorDay) string { return r.Link }, func(r *CreatorDay, s string) { r.Link = s }},
}

// appendRows appends rows, sorted, grouped by levels: the number of
// groups of the first level, then each group's id and its rows grouped by
// the levels after it; past the last level, the number of days and each.
func appendRows(b []byte, rows []CreatorDay, levels []rowLevel) ([]byte, error) {
	if len(levels) == 0 {
		b = binary.AppendUvarint(b, uint64(len(rows)))
		for d := range rows {
			if d == 0 {
				b = binary.AppendVarint(b, int64(rows[d].Day))
			} else {
				b = binary.AppendUvarint(b, uint64(rows[d].Day-rows[d-1].Day))
			}
			b = appendCounts(b, &rows[d].Counts)
		}
		return b, nil
	}
	l := &levels[0]
	n := 0
	for i := 0; i < len(rows); i = groupEnd(rows, i, l) {
		n++
	}
	b = binary.AppendUvarint(b, uint64(n))
	for i := 0; i < len(rows); {
		e := groupEnd(rows, i, l)
		id := l.get(&rows[i])
		if len(id) > maxStringLen {
			return nil, fmt.Errorf("cannot checkpoint %s id %.32q... of %d bytes; the limit is %d", l.name, id, len(id), maxStringLen)
		}
		b = appendString(b, id)
		var err error
		if b, err = appendRows(b, rows[i:e], levels[1:]); err != nil {
			return nil, err
		}
		i = e
	}
	return b, nil
}

// groupEnd returns the end of the run of rows with rows[i]'s id at level l.
func groupEnd(rows []CreatorDay, i int, l *rowLevel) int {
	e := i + 1
	for e < len(rows) && l.get(&rows[e]) == l.get(&rows[i]) {
		e++
	}
	return e
}

// appendCounts appends a mask of the reasons with a count, then each.
func appendCounts(b []byte, c *counter.Counts) []byte {
	var mask uint64
	for r, n := range c {
		if n != 0 {
			mask |= 1 << r
		}
	}
	b = binary.AppendUvarint(b, mask)
	for _, n := range c {
		if n != 0 {
			b = binary.AppendUvarint(b, uint64(n))
		}
	}
	return b
}

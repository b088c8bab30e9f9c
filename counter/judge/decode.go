package judge

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// decoder reads a checkpoint's body. The first error sticks: later reads
// return zeros.
type decoder struct {
	b       []byte
	err     error
	version byte // of the checkpoint
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if v := d.fixed(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.fixed(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length, at most limit, and that many bytes.
func (d *decoder) bytes(what string, limit int) []byte {
	n := d.uvarint(what + " length")
	if n > uint64(limit) {
		d.fail("%s of %d bytes; the limit is %d", what, n, limit)
		return nil
	}
	return d.fixed(int(n))
}

// maxPresize bounds the room made for a count of items before they are
// read: a count is bounded by the bytes left, but an item of a few bytes
// takes tens in memory, so a forged count in a checkpoint of 30 MB made
// room for 600 MB before its first item was refused. Past it (about 50 MB
// of networks and their index), the slices and maps grow as the items
// are read; below it, 1M networks load without growing them (100 ms of
// 330-370 in BenchmarkUnmarshalBinary/1M).
const maxPresize = 1 << 20

// count reads the number of items that follow, each at least minSize
// bytes, and refuses more than limit or than what is left could hold.
func (d *decoder) count(what string, minSize, limit int) int {
	n := d.uvarint(what)
	if n > uint64(limit) || n > uint64(len(d.b)/minSize) {
		d.fail("%d %s in %d bytes", n, what, len(d.b))
		return 0
	}
	return int(n)
}

// decodeState reads what follows the params into j, which is empty. Order,
// ranges and liveness are checked here; that the result re-encodes to the
// input is checked by UnmarshalBinary.
func (j *Judge) decodeState(d *decoder) {
	if o := d.bytes("offset", maxStringLen); len(o) > 0 {
		j.offset = append([]byte(nil), o...)
	}
	j.clock = d.varint("clock")
	if j.clock != math.MinInt64 {
		j.vel.cur = j.vel.granule(j.clock)
	}
	j.decodeWindows(d)
	j.decodeNetworks(d)
	if d.version != version1 {
		if j.clock != math.MinInt64 {
			j.bud.day = floorDiv(j.clock, msPerDay)
		}
		j.decodeBudgets(d)
	}
	d.rows(rowLevels[:2], CreatorDay{}, &j.cnt)
	if d.version >= version4 {
		d.rows(rowLevels[:], CreatorDay{}, &j.links)
	}
	if d.version >= version7 {
		for range d.count("batch ids", 8, maxBatches) {
			if id := d.u64(); d.err == nil && !j.batches.add(id) {
				d.fail("batch id %d twice", id)
			}
		}
	}
	if d.err == nil && j.clock == math.MinInt64 && (len(j.win.byKey) > 0 || j.vel.len() > 0 || len(j.bud.campaigns) > 0 || len(j.cnt.rows) > 0 || len(j.links.rows) > 0) {
		d.fail("state without a clock")
	}
}

func (j *Judge) decodeBudgets(d *decoder) {
	n := d.count("budget campaigns", 4, math.MaxInt)
	var prev string
	for i := range n {
		c := &campaignBudget{campaign: string(d.bytes("campaign id", maxStringLen))}
		if d.err == nil && i > 0 && c.campaign <= prev {
			d.fail("budgets of campaign %q out of order", c.campaign)
		}
		prev = c.campaign
		c.networks = d.keyCounts("network", j.bud.network)
		c.blocks = d.keyCounts("block", j.bud.block)
		if d.err != nil {
			return
		}
		if c.networks.len() == 0 && c.blocks.len() == 0 {
			d.fail("budgets of campaign %q without a count", c.campaign)
			return
		}
		j.bud.campaigns[c.campaign] = c
	}
}

// keyCounts reads the keys and counts of appendKeyCounts: keys not 0, each
// once (before version 5, increasing), counts 1 to budget (none when
// budget is 0).
func (d *decoder) keyCounts(what string, budget uint32) keyCounts {
	minSize := 2
	if d.version >= version5 {
		minSize = 9
	}
	n := d.count(what+"s", minSize, math.MaxInt)
	if n == 0 {
		return keyCounts{}
	}
	if budget == 0 {
		d.fail("%d %ss counted without a %s budget", n, what, what)
		return keyCounts{}
	}
	k := keyCounts{counts: make([]keyCount, 0, min(n, maxPresize)), index: make(map[uint64]int32, min(n, maxPresize))}
	// The labels once, not once per key: a million networks of a day
	// made a million strings.
	keyLabel, countLabel := what+" key", what+" count"
	var key uint64
	for range n {
		prev := key
		if d.version >= version5 {
			key = d.u64()
		} else {
			key += d.uvarint(keyLabel)
		}
		v := d.uvarint(countLabel)
		if d.err != nil {
			return keyCounts{}
		}
		if _, again := k.index[key]; key == 0 || again || d.version < version5 && key <= prev {
			d.fail("%s key %d out of order or repeated", what, key)
			return keyCounts{}
		}
		if v == 0 || v > uint64(budget) {
			d.fail("%s count %d; the budget is %d", what, v, budget)
			return keyCounts{}
		}
		k.add(key, uint32(v))
	}
	return k
}

func (j *Judge) decodeWindows(d *decoder) {
	now := floorDiv(j.clock, 1000)
	sizes := j.win.sizes
	// A live window holds at least one key, so one non-zero word.
	n := d.count("windows", 12, maxWindows)
	var prev *window
	for range n {
		w := &window{
			campaign: string(d.bytes("campaign id", maxStringLen)),
			start:    d.varint("window start"),
			expires:  d.varint("window expiry"),
		}
		if d.err != nil {
			return
		}
		if prev != nil && cmp.Or(strings.Compare(prev.campaign, w.campaign), cmp.Compare(prev.start, w.start)) >= 0 {
			d.fail("window %q %d out of order", w.campaign, w.start)
			return
		}
		if w.expires <= now {
			d.fail("window %q %d expired at %d, before the clock", w.campaign, w.start, w.expires)
			return
		}
		layers := 1
		if d.version >= version3 {
			if layers = d.count("layers", 2, len(sizes)); layers == 0 {
				d.fail("window %q %d without a layer", w.campaign, w.start)
				return
			}
		}
		w.layers = make([]layer, layers)
		for i := range w.layers {
			l := &w.layers[i]
			if l.bits = d.words(int(sizes[i].m / 64)); d.err != nil {
				return
			}
			for _, x := range l.bits {
				l.ones += uint64(bits.OnesCount64(x))
			}
			// A layer is added for a key that the last one, sealed, does
			// not hold: every layer but the last is sealed, and none is
			// empty.
			switch {
			case i < layers-1 && l.ones < sizes[i].seal:
				d.fail("window %q %d: layer %d of %d with %d bits set, not sealed", w.campaign, w.start, i, layers, l.ones)
			case i > 0 && l.ones == 0:
				d.fail("window %q %d: layer %d empty", w.campaign, w.start, i)
			}
		}
		if d.err != nil {
			return
		}
		j.win.byKey[windowKey{w.campaign, w.start}] = w
		j.win.next = min(j.win.next, w.expires)
		prev = w
	}
}

// words reads the runs of a filter of n words.
func (d *decoder) words(n int) []uint64 {
	ws := make([]uint64, n)
	for i := 0; i < n && d.err == nil; {
		z, l := d.uvarint("zero run"), d.uvarint("word run")
		if z == 0 && l == 0 || z > uint64(n-i) || l > uint64(n-i)-z || l > uint64(len(d.b)/8) {
			d.fail("runs of %d and %d words at word %d of %d", z, l, i, n)
			return nil
		}
		i += int(z)
		for range l {
			if ws[i] = d.u64(); ws[i] == 0 {
				d.fail("zero word in a run of non-zero words")
				return nil
			}
			i++
		}
	}
	return ws
}

func (j *Judge) decodeNetworks(d *decoder) {
	vc := &j.vel
	minSize := 3
	if d.version >= version6 {
		minSize = 10
	}
	n := d.count("networks", minSize, math.MaxInt)
	vc.nets, vc.index = make([]netEntry, 0, min(n, maxPresize)), make(map[uint64]int32, min(n, maxPresize))
	var key uint64
	for i := range n {
		if d.version >= version6 {
			key = d.u64()
		} else {
			delta := d.uvarint("network key")
			if i > 0 && (delta == 0 || key+delta < key) {
				d.fail("network %d out of order", i)
				return
			}
			key += delta
		}
		mask := d.fixed(1)
		if d.err != nil {
			return
		}
		if _, again := vc.index[key]; again || mask[0] == 0 {
			d.fail("network %d repeated or without a count", i)
			return
		}
		// The latest granule with a count is the one of the network's
		// latest visit, as a judge that made it would have it.
		c := netCount{g: vc.cur - lanes + int64(bits.Len8(mask[0]))}
		for l := range int64(lanes) {
			if mask[0]&(1<<l) == 0 {
				continue
			}
			v := d.uvarint("network count")
			if v == 0 || v > math.MaxUint16 {
				d.fail("network count %d", v)
				return
			}
			c.lanes[floorMod(vc.cur-lanes+1+l, lanes)] = uint16(v)
		}
		vc.add(key, c)
	}
}

// rows reads the rows of appendRows grouped by levels into cs, each
// with the ids of row and of the levels read. Ids of a level are in
// order, and a link's is not empty.
func (d *decoder) rows(levels []rowLevel, row CreatorDay, cs *counters) {
	if len(levels) == 0 {
		days := d.count("days", 2, math.MaxInt)
		var day int64
		for x := range days {
			if x == 0 {
				day = d.varint("day")
			} else if delta := d.uvarint("day"); delta == 0 || delta > math.MaxInt32 {
				d.fail("day out of order")
			} else {
				day += int64(delta)
			}
			if day < math.MinInt32 || day > math.MaxInt32 {
				d.fail("day %d", day)
			}
			row.Day, row.Counts = counter.Day(day), counter.Counts{}
			d.counts(&row.Counts)
			if d.err != nil {
				return
			}
			cs.insert(row)
		}
		return
	}
	l := &levels[0]
	n := d.count(l.name+"s", 2, math.MaxInt)
	var prev string
	for i := range n {
		id := string(d.bytes(l.name+" id", maxStringLen))
		if d.err == nil && i > 0 && id <= prev {
			d.fail("%s %q out of order", l.name, id)
		}
		if d.err == nil && l.name == "link" && id == "" {
			d.fail("link counters without a code")
		}
		if d.err != nil {
			return
		}
		prev = id
		l.set(&row, id)
		d.rows(levels[1:], row, cs)
	}
}

// counts reads a mask of reasons and a count for each. Version 1 has no
// budget reason.
func (d *decoder) counts(c *counter.Counts) {
	mask := d.uvarint("reasons")
	limit := uint64(1) << counter.NumReasons
	if d.version == version1 {
		limit = 1 << counter.Budget
	}
	if mask == 0 || mask >= limit {
		d.fail("reasons %b", mask)
		return
	}
	for r := range c {
		if mask&(1<<r) != 0 {
			v := d.uvarint("count")
			if v == 0 || v > math.MaxInt64 {
				d.fail("count %d", v)
				return
			}
			c[r] = int64(v)
		}
	}
}

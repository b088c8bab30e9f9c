package judge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/internal/fuzzseed"
)

// smallState returns a judge of testParams that holds a little of
// everything: two windows, networks, budgets, counters and an offset.
func smallState(t testing.TB) *Judge { return smallStateOf(t, testParams) }

// smallStateOf is smallState of a judge of p. Of v1Params, it is the state
// that the seed v1-small holds, written before budgets: blocks change
// nothing without budgets.
func smallStateOf(t testing.TB, p Params) *Judge {
	t.Helper()
	j := mustNew(t, p)
	visits := []counter.Visit{
		visit("c1", "alice", "ann", 0), visit("c1", "alice", "ann", 1000),
		firstVisit("c1", "bob", "bea", 2000), markOnly(visit("c2", "carl", "cid", 3000)),
		in(from(visit("c1", "alice", "dan", 30_000), "cafe"), "town"), in(from(visit("c1", "alice", "eve", 31_000), "cafe"), "town"),
		in(from(visit("c1", "alice", "fay", 32_000), "cafe"), "town"), in(from(visit("c1", "alice", "gus", 33_000), "cafe"), "town"),
	}
	j.Apply(visits, make([]counter.Reason, len(visits)))
	j.SetOffset([]byte("1715000000000-7"))
	return j
}

func mustMarshal(t testing.TB, j *Judge) []byte {
	t.Helper()
	b, err := j.MarshalBinary()
	if err != nil {
		t.Fatalf("unexpected MarshalBinary error: %s", err)
	}
	return b
}

// layeredState returns smallState with a flood of visitors of creator
// fay: c1's window has three layers.
func layeredState(t testing.TB) *Judge {
	t.Helper()
	j := smallState(t)
	flood := make([]counter.Visit, 200)
	for i := range flood {
		flood[i] = from(visit("c1", "fay", "fake-"+strconv.Itoa(i), 34_000+int64(i)), "farm-"+strconv.Itoa(i))
	}
	j.Apply(flood, make([]counter.Reason, len(flood)))
	if f := j.Fill(); len(f) != 2 || f[0].Layers != 3 || f[1].Layers != 1 {
		t.Fatalf("BUG: unexpected windows of the layered state %+v", f)
	}
	return j
}

func TestCheckpointRoundTrip(t *testing.T) {
	for _, j := range []*Judge{mustNew(t, testParams), smallState(t), layeredState(t)} {
		b := mustMarshal(t, j)
		r := mustNew(t, testParams)
		if err := r.UnmarshalBinary(b); err != nil {
			t.Fatalf("unexpected error restoring a checkpoint of %d bytes: %s", len(b), err)
		}
		if again := mustMarshal(t, r); !bytes.Equal(again, b) {
			t.Fatalf("unexpected checkpoint of a restored judge; got %x; want %x", again, b)
		}
		if got, want := r.Counts(), j.Counts(); !reflect.DeepEqual(got, want) {
			t.Fatalf("unexpected counts of a restored judge; got %v; want %v", got, want)
		}
		if got, want := r.Offset(), j.Offset(); !bytes.Equal(got, want) || r.Clock() != j.Clock() {
			t.Fatalf("unexpected offset and clock of a restored judge; got %q %d; want %q %d", got, r.Clock(), want, j.Clock())
		}
		if got, want := r.Fill(), j.Fill(); !reflect.DeepEqual(got, want) {
			t.Fatalf("unexpected windows of a restored judge; got %+v; want %+v", got, want)
		}
		// Both decide the next visits alike.
		next := []counter.Visit{
			visit("c1", "alice", "ann", 40_000), from(visit("c1", "alice", "hal", 40_001), "cafe"),
			visit("c1", "alice", "ivy", 40_002), markOnly(visit("c2", "carl", "cid", 40_003)),
			// cafe's fourth and fifth qualified visits of the day, then
			// one over its budget; town's sixth to eighth.
			in(from(visit("c1", "alice", "jay", 200_000), "cafe"), "town"), in(from(visit("c1", "alice", "kim", 200_001), "cafe"), "town"),
			in(from(visit("c1", "alice", "lou", 200_002), "cafe"), "town"),
			in(visit("c1", "bob", "max", 200_003), "town"), in(visit("c1", "bob", "ned", 200_004), "town"),
		}
		want, got := make([]counter.Reason, len(next)), make([]counter.Reason, len(next))
		j.Apply(next, want)
		r.Apply(next, got)
		if !reflect.DeepEqual(got, want) || !bytes.Equal(mustMarshal(t, r), mustMarshal(t, j)) {
			t.Fatalf("unexpected reasons of a restored judge; got %v; want %v, and the same checkpoint", got, want)
		}
	}
}

// TestCheckpointOtherSizing: a checkpoint of another sizing is refused,
// naming both, and the judge is left as it was.
func TestCheckpointOtherSizing(t *testing.T) {
	b := mustMarshal(t, smallState(t))
	f := func(name string, change func(p *Params)) {
		t.Helper()
		p := testParams
		change(&p)
		j := mustNew(t, p)
		before := mustMarshal(t, j)
		err := j.UnmarshalBinary(b)
		if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), testParams.String()) || !strings.Contains(err.Error(), p.String()) {
			t.Fatalf("unexpected error for a checkpoint made with other %s; got %v; want %v naming both", name, err, ErrParams)
		}
		if !bytes.Equal(mustMarshal(t, j), before) {
			t.Fatalf("unexpected change of the judge after refusing a checkpoint made with other %s", name)
		}
	}
	f("expected", func(p *Params) { p.Expected++ })
	f("fp", func(p *Params) { p.FP = 0.0011 })
	f("partitions", func(p *Params) { p.Partitions = 2 })
	f("keying", func(p *Params) { p.Keying = "other-secret" })
	f("expected and a policy", func(p *Params) { p.Expected, p.BudgetNetwork = 2*p.Expected, 0 })
}

// TestCheckpointOtherPolicy: a judge of another policy restores the state
// of a checkpoint and adopts its own policy, exactly as the judge that
// wrote the checkpoint does by SetPolicy; both decide the next visits
// alike, and the next checkpoint records the new policy.
func TestCheckpointOtherPolicy(t *testing.T) {
	b := mustMarshal(t, smallState(t))
	f := func(name string, change func(p *Params)) {
		t.Helper()
		p := testParams
		change(&p)
		if !p.SameSizing(testParams) || p == testParams {
			t.Fatalf("BUG: %s changes no policy alone", name)
		}
		r := mustNew(t, p)
		if err := r.UnmarshalBinary(b); err != nil {
			t.Fatalf("unexpected error restoring a checkpoint of other %s: %s", name, err)
		}
		if r.Params() != p {
			t.Fatalf("unexpected params of a judge restored with other %s; got %s; want %s", name, r.Params(), p)
		}
		j := smallState(t)
		if err := j.SetPolicy(p.Policy()); err != nil {
			t.Fatalf("unexpected error setting other %s: %s", name, err)
		}
		cp := mustMarshal(t, r)
		if want := mustMarshal(t, j); !bytes.Equal(cp, want) {
			t.Fatalf("unexpected checkpoint of a judge restored with other %s; got %x; want %x as SetPolicy gives", name, cp, want)
		}
		if got, err := CheckpointParams(cp); err != nil || got != p {
			t.Fatalf("unexpected params recorded after other %s; got %s, %v; want %s", name, got, err, p)
		}
		if r.Offset() == nil || !bytes.Equal(r.Offset(), j.Offset()) || r.Clock() != j.Clock() || !reflect.DeepEqual(r.Counts(), j.Counts()) {
			t.Fatalf("unexpected offset, clock or counts of a judge restored with other %s", name)
		}
		next := []counter.Visit{
			visit("c1", "alice", "ann", 40_000), from(visit("c1", "alice", "hal", 40_001), "cafe"),
			in(from(visit("c1", "alice", "jay", 200_000), "cafe"), "town"), in(from(visit("c1", "alice", "kim", 200_001), "cafe"), "town"),
			in(from(visit("c1", "alice", "lou", 200_002), "cafe"), "town"), in(visit("c1", "bob", "max", 200_003), "town"),
		}
		want, got := make([]counter.Reason, len(next)), make([]counter.Reason, len(next))
		j.Apply(next, want)
		r.Apply(next, got)
		if !reflect.DeepEqual(got, want) || !bytes.Equal(mustMarshal(t, r), mustMarshal(t, j)) {
			t.Fatalf("unexpected reasons of a judge restored with other %s; got %v; want %v, and the same checkpoint", name, got, want)
		}
	}
	f("velocity max", func(p *Params) { p.VelocityMax = 4 })
	f("no velocity", func(p *Params) { p.VelocityMax = 0 })
	f("velocity window", func(p *Params) { p.VelocityWindow += time.Millisecond })
	f("longer velocity window", func(p *Params) { p.VelocityWindow = time.Hour })
	f("network budget", func(p *Params) { p.BudgetNetwork++ })
	f("lower network budget", func(p *Params) { p.BudgetNetwork = 2 })
	f("no network budget", func(p *Params) { p.BudgetNetwork = 0 })
	f("block budget", func(p *Params) { p.BudgetBlock++ })
	f("no budgets", func(p *Params) { p.BudgetNetwork, p.BudgetBlock = 0, 0 })
	f("everything", func(p *Params) {
		p.VelocityMax, p.VelocityWindow, p.BudgetNetwork, p.BudgetBlock = 10, time.Minute, 1, 1
	})
}

// withCRC returns b with its magic and checksum made valid, so that what
// lies between them is decoded. A version this build reads is kept.
func withCRC(b []byte) []byte {
	if len(b) < len(magic)+crcLen {
		return b
	}
	v := b[len(magic)-1]
	b = bytes.Clone(b)
	copy(b, magic[:])
	if v >= version1 && v <= version {
		b[len(magic)-1] = v
	}
	binary.LittleEndian.PutUint32(b[len(b)-crcLen:], crc32.Checksum(b[:len(b)-crcLen], castagnoli))
	return b
}

func TestCheckpointDamaged(t *testing.T) {
	testCheckpointDamaged(t, smallState)
}

// TestCheckpointLayersDamaged: a change to the layers of a window, or to
// the layers the checkpoint says a window may have, is refused.
func TestCheckpointLayersDamaged(t *testing.T) {
	testCheckpointDamaged(t, layeredState)
	good := mustMarshal(t, layeredState(t))
	f := func(name string, b []byte, want error) {
		t.Helper()
		j := layeredState(t)
		if err := j.UnmarshalBinary(b); !errors.Is(err, want) {
			t.Fatalf("unexpected error for %s; got %v; want %v", name, err, want)
		} else if testing.Verbose() {
			t.Logf("%s: %s", name, err)
		}
		if !bytes.Equal(mustMarshal(t, j), good) {
			t.Fatalf("unexpected change of the judge after refusing %s", name)
		}
	}
	edit := func(edit func(b []byte) []byte) []byte {
		b := edit(bytes.Clone(good[:len(good)-crcLen]))
		return withCRC(append(b, 0, 0, 0, 0))
	}
	layers := len(magic) + 40 // the count of layers in the params
	f("fewer layers a window may have", edit(func(b []byte) []byte {
		b[layers]--
		return append(b[:layers+1+20*int(b[layers])], b[layers+1+20*int(b[layers]+1):]...)
	}), ErrParams)
	f("another seal", edit(func(b []byte) []byte {
		b[layers+1+12]++
		return b
	}), ErrParams)
	f("no layer a window may have", edit(func(b []byte) []byte {
		return append(append(b[:layers:layers], 0), b[layers+1+20*int(b[layers]):]...)
	}), ErrCorrupt)
	// c1's window, the first, has 3 layers: its count follows its
	// campaign id, start and expiry.
	j := layeredState(t)
	at := len(magic) + 40 + 1 + 20*len(j.win.sizes) + 1 + 1 + len(j.offset)
	_, n := binary.Varint(good[at:])
	at += n + 1 + 1 + len("c1") // the clock, the count of windows, c1
	_, n = binary.Varint(good[at:])
	at += n
	_, n = binary.Varint(good[at:])
	at += n
	if good[at] != 3 {
		t.Fatalf("BUG: unexpected layers of c1's window at byte %d; got %d", at, good[at])
	}
	for _, n := range []byte{0, 2, 4, maxLayers + 1} {
		f("a window of "+strconv.Itoa(int(n))+" layers instead of 3", edit(func(b []byte) []byte {
			b[at] = n
			return b
		}), ErrCorrupt)
	}
	// The layers of a window whose second layer is not sealed: a judge
	// never adds a third to it.
	k := layeredState(t)
	w := k.win.byKey[windowKey{"c1", k.win.last.start}]
	for i, x := range w.layers[1].bits {
		if x != 0 && w.layers[1].ones-uint64(bits.OnesCount64(x)) < k.win.sizes[1].seal {
			w.layers[1].bits[i] = 0
			break
		}
	}
	f("a window whose second layer is not sealed", mustMarshal(t, k), ErrCorrupt)
	// A window whose newest layer is empty: a judge adds one only for a
	// key.
	k = layeredState(t)
	w = k.win.byKey[windowKey{"c1", k.win.last.start}]
	clear(w.layers[2].bits)
	f("a window whose newest layer is empty", mustMarshal(t, k), ErrCorrupt)
	// A checkpoint before layers holds windows of one layer.
	if _, err := layeredState(t).appendVersion(nil, version2); err == nil {
		t.Fatalf("unexpected success writing a window of 3 layers in format version 2")
	}
}

func testCheckpointDamaged(t *testing.T, state func(testing.TB) *Judge) {
	good := mustMarshal(t, state(t))
	f := func(name string, b []byte, want error) {
		t.Helper()
		j := state(t)
		err := j.UnmarshalBinary(b)
		if !errors.Is(err, want) {
			t.Fatalf("unexpected error for %s; got %v; want %v", name, err, want)
		}
		if testing.Verbose() && !strings.Contains(name, "truncated") && !strings.Contains(name, "changed") {
			t.Logf("%s: %s", name, err)
		}
		if !bytes.Equal(mustMarshal(t, j), good) {
			t.Fatalf("unexpected change of the judge after refusing %s", name)
		}
	}
	f("nothing", nil, ErrCorrupt)
	f("another file", []byte("CGSPOOL\x01 and more bytes"), ErrCorrupt)
	version := bytes.Clone(good)
	version[len(magic)-1]++
	f("a later version", version, ErrVersion)
	for n := range len(good) {
		f("a truncated checkpoint", good[:n], ErrCorrupt)
	}
	for i := range good {
		if i == len(magic)-1 {
			continue
		}
		b := bytes.Clone(good)
		b[i] ^= 0x5a
		f("a changed byte", b, ErrCorrupt)
	}
	// Damage the checksum does not see is refused by the decoder.
	body := func(edit func(b []byte) []byte) []byte {
		b := edit(bytes.Clone(good[:len(good)-crcLen]))
		return withCRC(append(b, 0, 0, 0, 0))
	}
	// After the params, the layers and the empty keying.
	offset := len(magic) + 40 + 1 + 20*len(smallState(t).win.sizes) + 1
	f("a long varint", body(func(b []byte) []byte {
		return append(b[:offset:offset], append([]byte{0x80 | b[offset], 0}, b[offset+1:]...)...)
	}), ErrCorrupt)
	f("trailing bytes", body(func(b []byte) []byte { return append(b, 0) }), ErrCorrupt)
	f("a huge count of windows", body(func(b []byte) []byte {
		windows := offset + 1 + int(b[offset]) // after the offset
		_, n := binary.Varint(b[windows:])     // and the clock
		windows += n
		return append(b[:windows:windows], binary.AppendUvarint(nil, math.MaxUint64)...)
	}), ErrCorrupt)
}

// TestCheckpointVersion1 loads checkpoints written before budgets (the
// seeds v1-* of FuzzUnmarshal, written by that build with v1Params, which
// were testParams then): a judge without budgets takes them, in the state
// that build left, and goes on with version 2; a judge with budgets takes
// them too and adopts its budgets, from none spent.
func TestCheckpointVersion1(t *testing.T) {
	// The states of the seeds, as a judge of v1Params reaches them.
	expired := smallStateOf(t, v1Params)
	expired.Apply([]counter.Visit{visit("c3", "dora", "ann", int64(30*time.Hour/time.Millisecond))}, make([]counter.Reason, 1))
	states := map[string]*Judge{"empty": mustNew(t, v1Params), "small": smallStateOf(t, v1Params), "expired": expired, "log": nil}
	for name, want := range states {
		b := fuzzseed.Read(t, "FuzzUnmarshal", "v1-"+name)
		if b[len(magic)-1] != 1 {
			t.Fatalf("unexpected version of seed v1-%s; got %d; want 1", name, b[len(magic)-1])
		}
		if p, err := CheckpointParams(b); err != nil || p != v1Params {
			t.Fatalf("unexpected params of v1-%s; got %s, %v; want %s", name, p, err, v1Params)
		}
		budgeted := mustNew(t, testParams)
		if err := budgeted.UnmarshalBinary(b); err != nil {
			t.Fatalf("unexpected error loading v1-%s into a judge with budgets: %s", name, err)
		}
		if want != nil {
			w := mustNew(t, v1Params)
			if err := w.UnmarshalBinary(mustMarshal(t, want)); err != nil {
				t.Fatal(err)
			}
			if err := w.SetPolicy(testParams.Policy()); err != nil {
				t.Fatal(err)
			}
			if !sameState(t, budgeted, w) || len(budgeted.bud.campaigns) != 0 {
				t.Fatalf("unexpected state of v1-%s loaded with budgets; got %x; want %x", name, mustMarshal(t, budgeted), mustMarshal(t, w))
			}
		}
		j := mustNew(t, v1Params)
		if err := j.UnmarshalBinary(b); err != nil {
			t.Fatalf("unexpected error loading v1-%s: %s", name, err)
		}
		checkGoesOn(t, j, want, "v1-"+name, v1Params)
	}
	// Version 1 has no budget reason.
	j := mustNew(t, v1Params)
	j.cnt.add(&counter.Visit{Campaign: "c1", Creator: "alice"}, counter.Budget)
	j.clock = t0
	b, err := j.appendVersion(nil, version1)
	if err != nil {
		t.Fatal(err)
	}
	if err := mustNew(t, v1Params).UnmarshalBinary(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unexpected error for a version 1 checkpoint with a budget count; got %v; want %v", err, ErrCorrupt)
	}
}

func TestUnmarshalOnZeroJudge(t *testing.T) {
	var j Judge
	if err := j.UnmarshalBinary(mustMarshal(t, smallState(t))); err == nil {
		t.Fatalf("unexpected success of UnmarshalBinary on a zero Judge")
	}
}

// TestCheckpointVersion2 loads checkpoints written before layers (the
// seeds v2-* of FuzzUnmarshal, written by that build with testParams):
// each window is a filter of one layer, in the state that build left, and
// the judge goes on with version 3. v2-full holds a window flooded past
// its capacity (200 visitors of two keys in a filter sized for 50): it
// loads as one layer past its seal, and the next new key adds a layer.
func TestCheckpointVersion2(t *testing.T) {
	expired := smallState(t)
	expired.Apply([]counter.Visit{visit("c3", "dora", "ann", int64(30*time.Hour/time.Millisecond))}, make([]counter.Reason, 1))
	states := map[string]*Judge{"empty": mustNew(t, testParams), "small": smallState(t), "expired": expired, "log": nil, "full": nil}
	for name, want := range states {
		j, b := loadSeed(t, version2, name)
		if p, err := CheckpointParams(b); err != nil || p != testParams {
			t.Fatalf("unexpected params of v2-%s; got %s, %v; want %s", name, p, err, testParams)
		}
		for _, f := range j.Fill() {
			if f.Layers != 1 {
				t.Fatalf("unexpected layers of a window of v2-%s; got %d; want 1", name, f.Layers)
			}
		}
		checkGoesOn(t, j, want, "v2-"+name, testParams)
	}

	j := mustNew(t, testParams)
	if err := j.UnmarshalBinary(fuzzseed.Read(t, "FuzzUnmarshal", "v2-full")); err != nil {
		t.Fatal(err)
	}
	f := j.Fill()
	if len(f) != 1 || f[0].Layers != 1 || f[0].Fill <= FullAt || f[0].Rate <= testParams.FP || f[0].Full {
		t.Fatalf("unexpected window of v2-full; got %+v; want one layer past its capacity", f)
	}
	// The seed's last visitor, then new ones: the first layer finds about
	// half of them (its rate is past 0.5), the others go into a second.
	visits := []counter.Visit{visit("c1", "bob", "ann", 1000)}
	for i := range 20 {
		visits = append(visits, visit("c1", "bob", "new-"+strconv.Itoa(i), 1001+int64(i)))
	}
	out := make([]counter.Reason, len(visits))
	j.Apply(visits, out)
	var c counter.Counts
	for _, r := range out[1:] {
		c[r]++
	}
	if f := j.Fill(); out[0] != counter.Duplicate || c[counter.Qualified] < 5 || f[0].Layers != 2 || j.LayersAdded() != 1 {
		t.Fatalf("unexpected visits after v2-full; got %v, %+v; want a duplicate, then new visitors in a second layer", out, f)
	}
}

// TestCheckpointVersion3 loads checkpoints written before link counters
// (the seeds v3-* of FuzzUnmarshal, written by that build with
// testParams): the state that build left, without link rows, which
// writes again as the same version 3 bytes and goes on with version 4.
// The log of v3-log is genLog's, whose visits had no links then: a judge
// of the same visits without their links reaches the same state.
func TestCheckpointVersion3(t *testing.T) {
	expired := smallState(t)
	expired.Apply([]counter.Visit{visit("c3", "dora", "ann", int64(30*time.Hour/time.Millisecond))}, make([]counter.Reason, 1))
	log := mustNew(t, testParams)
	visits := genLog(150, 5)
	for i := range visits {
		visits[i].Link = ""
	}
	log.Apply(visits, make([]counter.Reason, len(visits)))
	log.SetOffset([]byte{0, 0, 0, 0, 0, 0, 0x0b, 0xb8})
	states := map[string]*Judge{"empty": mustNew(t, testParams), "small": smallState(t), "expired": expired, "log": log, "layers": layeredState(t)}
	for name, want := range states {
		j, _ := loadSeed(t, version3, name)
		if len(j.LinkCounts()) != 0 {
			t.Fatalf("unexpected link rows loaded from v3-%s: %v", name, j.LinkCounts())
		}
		checkGoesOn(t, j, want, "v3-"+name, testParams)
	}
	// A judge with link rows cannot write version 3.
	if _, err := linkedState(t).appendVersion(nil, version3); err == nil {
		t.Fatalf("unexpected success writing link counters in format version 3")
	}
}

// sameState reports whether judges a and b hold the same state, whatever
// the order in which their budgets' keys were first counted (a judge
// loaded from a checkpoint of version 4 or before has them in key order):
// their checkpoints in version 4, which writes the keys in key order.
func sameState(t testing.TB, a, b *Judge) bool {
	t.Helper()
	x, err := a.appendVersion(nil, version4)
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.appendVersion(nil, version4)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// loadSeed returns a judge of testParams loaded from the FuzzUnmarshal
// seed v<v>-name, a checkpoint of format version v, and the seed, having
// checked that the judge writes the same bytes in version v again.
func loadSeed(t *testing.T, v byte, name string) (*Judge, []byte) {
	t.Helper()
	seed := fmt.Sprintf("v%d-%s", v, name)
	b := fuzzseed.Read(t, "FuzzUnmarshal", seed)
	if b[len(magic)-1] != v {
		t.Fatalf("unexpected version of seed %s; got %d; want %d", seed, b[len(magic)-1], v)
	}
	j := mustNew(t, testParams)
	if err := j.UnmarshalBinary(b); err != nil {
		t.Fatalf("unexpected error loading %s: %s", seed, err)
	}
	if again, err := j.appendVersion(nil, v); err != nil || !bytes.Equal(again, b) {
		t.Fatalf("unexpected version %d checkpoint of a judge loaded from %s; got %v; want the seed", v, seed, err)
	}
	return j, b
}

// checkGoesOn checks that j, loaded from seed, goes on with the current
// version: it writes it, with want's state (nil: not checked), and a
// judge of p loads what it wrote.
func checkGoesOn(t *testing.T, j, want *Judge, seed string, p Params) {
	t.Helper()
	again := mustMarshal(t, j)
	if again[len(magic)-1] != version {
		t.Fatalf("unexpected version of a checkpoint of a judge loaded from %s; got %d", seed, again[len(magic)-1])
	}
	if want != nil && !sameState(t, j, want) {
		t.Fatalf("unexpected state loaded from %s; got %x; want %x", seed, again, mustMarshal(t, want))
	}
	if err := mustNew(t, p).UnmarshalBinary(again); err != nil {
		t.Fatalf("unexpected error loading the current version's checkpoint of %s: %s", seed, err)
	}
}

// TestCheckpointVersions4To6 loads checkpoints written while the
// budgets' keys (version 4) and the velocity rule's networks (versions 4
// and 5) were in key order, and before batch ids (versions 4 to 6; the
// seeds v4-*, v5-* and v6-* of FuzzUnmarshal, written by those builds):
// the state that build left, which writes again as the same bytes of its
// version and goes on with the current one, the keys in the order loaded.
func TestCheckpointVersions4To6(t *testing.T) {
	for _, v := range []byte{version4, version5, version6} {
		for name, want := range fuzzSeedStates(t) {
			if name == "batches" {
				continue // no such state before version 7
			}
			j, _ := loadSeed(t, v, name)
			checkGoesOn(t, j, want, fmt.Sprintf("v%d-%s", v, name), testParams)
		}
	}
}

// TestKeysInOrderCounted: a checkpoint holds the velocity rule's networks
// and each campaign's budgeted networks in the order they were first
// counted, not in key order, and a judge loaded from it writes them in
// that order again.
func TestKeysInOrderCounted(t *testing.T) {
	p := budgetParams
	p.VelocityMax = 3
	j := mustNew(t, p)
	var visits []counter.Visit
	var want []uint64
	for i, who := range []string{"zed", "amy", "kim", "bob"} {
		visits = append(visits, visit("c1", "alice", who, int64(1000*i)))
		want = append(want, network(who))
	}
	if slices.IsSorted(want) {
		t.Fatal("the networks happen to be in key order: the test proves nothing")
	}
	j.Apply(visits, make([]counter.Reason, len(visits)))
	orders := func(j *Judge) (velocity, budget []uint64) {
		for _, e := range j.vel.nets {
			velocity = append(velocity, e.key)
		}
		for _, c := range j.bud.campaigns["c1"].networks.counts {
			budget = append(budget, c.key)
		}
		return velocity, budget
	}
	if vel, bud := orders(j); !slices.Equal(vel, want) || !slices.Equal(bud, want) {
		t.Fatalf("unexpected networks counted; got %x (velocity), %x (budgets); want %x, the order of the visits", vel, bud, want)
	}
	b := mustMarshal(t, j)
	loaded := mustNew(t, p)
	if err := loaded.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if vel, bud := orders(loaded); !slices.Equal(vel, want) || !slices.Equal(bud, want) || !bytes.Equal(mustMarshal(t, loaded), b) {
		t.Fatalf("unexpected networks loaded from a checkpoint; got %x (velocity), %x (budgets); want %x, in the order counted", vel, bud, want)
	}
}

// linkedState is smallState with visits of two links of alice's, one of
// bob's and one of alice's without a link.
func linkedState(t testing.TB) *Judge {
	t.Helper()
	j := smallState(t)
	visits := []counter.Visit{
		onLink(visit("c1", "alice", "hal", 40_000), "TIKTOK01"), onLink(visit("c1", "alice", "hal", 41_000), "TIKTOK01"),
		onLink(visit("c1", "alice", "ida", 42_000), "YOUTUBE1"), onLink(visit("c1", "bob", "jan", 43_000), "BOBLINK1"),
		visit("c1", "alice", "kim", 44_000), onLink(markOnly(visit("c1", "alice", "lou", 45_000)), "TIKTOK01"),
	}
	j.Apply(visits, make([]counter.Reason, len(visits)))
	return j
}

func onLink(v counter.Visit, code string) counter.Visit {
	v.Link = code
	return v
}

// TestLinkCounts: a judge counts a visit with a link for its creator and
// for its link, one without for its creator alone, and a checkpoint
// carries the link rows.
func TestLinkCounts(t *testing.T) {
	j := linkedState(t)
	day := counter.DayOf(time.UnixMilli(t0))
	f := func(link string, want counter.Counts) {
		t.Helper()
		got := j.Link("c1", "alice", link)
		if want == (counter.Counts{}) && len(got) == 0 {
			return
		}
		if len(got) != 1 || got[0].Day != day || got[0].Counts != want {
			t.Fatalf("unexpected counts of link %q; got %v; want %v on %s", link, got, want, day)
		}
	}
	f("TIKTOK01", counter.Counts{Q: 1, D: 1})
	f("YOUTUBE1", counter.Counts{Q: 1})
	f("BOBLINK1", counter.Counts{}) // bob's, not alice's
	f("", counter.Counts{})
	if got := j.Link("c1", "bob", "BOBLINK1"); len(got) != 1 || got[0].Counts != (counter.Counts{Q: 1}) {
		t.Fatalf("unexpected counts of bob's link; got %v", got)
	}
	before := smallState(t).Creator("c1", "alice")[0].Counts
	if got := j.Creator("c1", "alice")[0].Counts; got[Q] != before[Q]+3 || got[D] != before[D]+1 {
		t.Fatalf("unexpected counts of alice; got %v; want 3 qualified and 1 duplicate more than %v", got, before)
	}
	r := mustNew(t, testParams)
	if err := r.UnmarshalBinary(mustMarshal(t, j)); err != nil {
		t.Fatal(err)
	}
	if got, want := r.LinkCounts(), j.LinkCounts(); !reflect.DeepEqual(got, want) || len(got) != 3 {
		t.Fatalf("unexpected link rows of a restored judge; got %v; want %v", got, want)
	}
}

// TestBatchIDs: a judge remembers the last 16,384 batch ids it was given,
// in its checkpoint too, so that a judge loaded from it applies a batch
// the log holds twice once; a format before version 7 cannot hold them.
func TestBatchIDs(t *testing.T) {
	j := mustNew(t, testParams)
	for i := range uint64(maxBatches) {
		if !j.NewBatch(i + 1) {
			t.Fatalf("id %d taken for seen", i+1)
		}
	}
	if j.NewBatch(1) || j.NewBatch(maxBatches) {
		t.Fatalf("ids within the last %d taken for new", maxBatches)
	}
	if !j.NewBatch(maxBatches+1) || !j.NewBatch(maxBatches+2) {
		t.Fatalf("new ids taken for seen")
	}
	// Two ids past the length: the two oldest are forgotten, after a
	// checkpoint and in a clone as well.
	for _, k := range []*Judge{j, j.Clone(), loaded(t, mustMarshal(t, j))} {
		if k.NewBatch(3) || k.NewBatch(maxBatches+2) || !k.NewBatch(2) || len(k.batches.set) != maxBatches {
			t.Fatalf("unexpected memory of the ids: %d remembered", len(k.batches.set))
		}
	}
	if _, err := j.appendVersion(nil, version6); err == nil {
		t.Fatal("batch ids written in format version 6")
	}
}

func loaded(t *testing.T, b []byte) *Judge {
	t.Helper()
	j := mustNew(t, testParams)
	if err := j.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return j
}

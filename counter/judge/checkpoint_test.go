package judge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// smallState returns a judge of testParams that holds a little of
// everything: two windows, networks, counters and an offset.
func smallState(t testing.TB) *Judge {
	t.Helper()
	j := mustNew(t, testParams)
	visits := []counter.Visit{
		visit("c1", "alice", "ann", 0), visit("c1", "alice", "ann", 1000),
		firstVisit("c1", "bob", "bea", 2000), markOnly(visit("c2", "carl", "cid", 3000)),
		from(visit("c1", "alice", "dan", 30_000), "cafe"), from(visit("c1", "alice", "eve", 31_000), "cafe"),
		from(visit("c1", "alice", "fay", 32_000), "cafe"), from(visit("c1", "alice", "gus", 33_000), "cafe"),
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

func TestCheckpointRoundTrip(t *testing.T) {
	for _, j := range []*Judge{mustNew(t, testParams), smallState(t)} {
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
		// Both decide the next visits alike.
		next := []counter.Visit{
			visit("c1", "alice", "ann", 40_000), from(visit("c1", "alice", "hal", 40_001), "cafe"),
			visit("c1", "alice", "ivy", 40_002), markOnly(visit("c2", "carl", "cid", 40_003)),
		}
		want, got := make([]counter.Reason, len(next)), make([]counter.Reason, len(next))
		j.Apply(next, want)
		r.Apply(next, got)
		if !reflect.DeepEqual(got, want) || !bytes.Equal(mustMarshal(t, r), mustMarshal(t, j)) {
			t.Fatalf("unexpected reasons of a restored judge; got %v; want %v, and the same checkpoint", got, want)
		}
	}
}

func TestCheckpointOtherParams(t *testing.T) {
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
	f("velocity max", func(p *Params) { p.VelocityMax = 4 })
	f("velocity window", func(p *Params) { p.VelocityWindow += time.Millisecond })
	f("keying", func(p *Params) { p.Keying = "other-secret" })
}

// withCRC returns b with its magic and checksum made valid, so that what
// lies between them is decoded.
func withCRC(b []byte) []byte {
	if len(b) < len(magic)+crcLen {
		return b
	}
	b = bytes.Clone(b)
	copy(b, magic[:])
	binary.LittleEndian.PutUint32(b[len(b)-crcLen:], crc32.Checksum(b[:len(b)-crcLen], castagnoli))
	return b
}

func TestCheckpointDamaged(t *testing.T) {
	good := mustMarshal(t, smallState(t))
	f := func(name string, b []byte, want error) {
		t.Helper()
		j := smallState(t)
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
	offset := len(magic) + 44 + 1 // after the params and the empty keying
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

func TestUnmarshalOnZeroJudge(t *testing.T) {
	var j Judge
	if err := j.UnmarshalBinary(mustMarshal(t, smallState(t))); err == nil {
		t.Fatalf("unexpected success of UnmarshalBinary on a zero Judge")
	}
}

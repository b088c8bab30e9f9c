package judge

// Loading a checkpoint: its magic, version and checksum, its params, and
// the state decode.go reads, checked to re-encode to the same bytes.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"
)

// UnmarshalBinary replaces the judge's state with checkpoint b, which
// must have been made with the judge's sizing (Params.Expected, FP,
// Partitions, Keying; else ErrParams). A checkpoint that is damaged
// (ErrCorrupt) or of a format version this build does not read
// (ErrVersion) is refused too. On error the judge is left as it was.
//
// The judge keeps its own policy: when the checkpoint's differs, the
// state is restored as the judge that wrote it left it, then the judge
// adopts its policy as SetPolicy does, and its next checkpoint records
// it. A checkpoint of version 1, made before budgets, has budgets 0.
// Loading a checkpoint into a judge of another policy is only right when
// no visit after the checkpoint's offset was judged already (under the
// checkpoint's policy) by the judge that wrote it: a log that may hold
// some is replayed by a judge of CheckpointParams first, which then
// adopts the new policy with SetPolicy.
//
// Every length is checked against what is left of b before anything is
// allocated, and the checksum before anything is decoded, so a damaged
// checkpoint costs no more memory than the judge it was made from. A
// checkpoint that does not re-encode to exactly b is refused, so one state
// has one checkpoint.
func (j *Judge) UnmarshalBinary(b []byte) error {
	if j.win.byKey == nil {
		return errors.New("judge: UnmarshalBinary on a Judge not made by New")
	}
	d, p, sizes, err := openCheckpoint(b)
	if err != nil {
		return err
	}
	// A checkpoint before layers records the first layer alone.
	same := slices.Equal(sizes, j.win.sizes)
	if d.version < version3 {
		same = sizes[0].m == j.win.sizes[0].m && sizes[0].k == j.win.sizes[0].k
	}
	if !p.SameSizing(j.p) || !same {
		return fmt.Errorf("%w: the checkpoint has %s (filters of %s); this judge has %s (%s)",
			ErrParams, p, layout(sizes), j.p, layout(j.win.sizes))
	}
	// The state is checked against the policy it was judged under: a
	// budget count within the checkpoint's budget, say.
	nj := newJudge(p, j.win.sizes)
	nj.decodeState(d)
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the counters", len(d.b))
	}
	if d.err != nil {
		return d.err
	}
	if again, err := nj.appendVersion(make([]byte, 0, len(b)), d.version); err != nil || !bytes.Equal(again, b) {
		return fmt.Errorf("%w: not in canonical form", ErrCorrupt)
	}
	nj.setPolicy(j.p.Policy())
	nj.win.added = j.win.added
	*j = *nj
	return nil
}

// layout describes the layers of a window's filter for an error.
func layout(sizes []layerSize) string {
	s := fmt.Sprintf("%d bits, %d functions", sizes[0].m, sizes[0].k)
	if len(sizes) > 1 || sizes[0].seal != 0 {
		s += fmt.Sprintf(", sealed at %d bits set, in up to %d layers", sizes[0].seal, len(sizes))
	}
	return s
}

// CheckpointParams returns the Params that checkpoint b was made with,
// after checking its format version and checksum (ErrVersion, ErrCorrupt).
// A checkpoint of version 1 has budgets 0. The state is not decoded:
// UnmarshalBinary checks it.
func CheckpointParams(b []byte) (Params, error) {
	_, p, _, err := openCheckpoint(b)
	return p, err
}

// openCheckpoint checks b's magic, version and checksum, and returns a
// decoder of what follows its params, the params and the layers of the
// filters they were made with (before version 3, the first alone, whose
// seal is not recorded: 0). Params that are not valid are damage.
func openCheckpoint(b []byte) (d *decoder, p Params, sizes []layerSize, err error) {
	if len(b) < len(magic)+crcLen || !bytes.Equal(b[:len(magic)-1], magic[:len(magic)-1]) {
		return nil, p, nil, fmt.Errorf("%w: not a judge checkpoint (%d bytes)", ErrCorrupt, len(b))
	}
	v := b[len(magic)-1]
	if v < version1 || v > version {
		return nil, p, nil, fmt.Errorf("%w: version %d; this build reads versions %d to %d", ErrVersion, v, version1, version)
	}
	if got, want := binary.LittleEndian.Uint32(b[len(b)-crcLen:]), crc32.Checksum(b[:len(b)-crcLen], castagnoli); got != want {
		return nil, p, nil, fmt.Errorf("%w: checksum %08x of %d bytes; want %08x", ErrCorrupt, got, len(b), want)
	}
	d = &decoder{b: b[len(magic) : len(b)-crcLen], version: v}
	p.Expected = d.u64()
	p.FP = math.Float64frombits(d.u64())
	p.Partitions = d.u32()
	p.VelocityMax = int(d.u32())
	p.VelocityWindow = time.Duration(d.u64())
	if v != version1 {
		p.BudgetNetwork, p.BudgetBlock = int(d.u32()), int(d.u32())
	}
	if v < version3 {
		sizes = []layerSize{{m: d.u64(), k: int(d.u32())}}
	} else {
		n := d.count("layers", 20, maxLayers)
		if n == 0 && d.err == nil {
			d.fail("no layers")
		}
		for range n {
			sizes = append(sizes, layerSize{m: d.u64(), k: int(d.u32()), seal: d.u64()})
		}
	}
	p.Keying = string(d.bytes("keying", maxStringLen))
	if d.err != nil {
		return nil, Params{}, nil, d.err
	}
	if err := p.Validate(); err != nil {
		return nil, Params{}, nil, fmt.Errorf("%w: invalid parameters: %w", ErrCorrupt, err)
	}
	return d, p, sizes, nil
}

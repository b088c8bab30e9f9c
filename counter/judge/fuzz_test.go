package judge

import (
	"bytes"
	"errors"
	"flag"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/internal/fuzzseed"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the seeds in testdata/fuzz/FuzzUnmarshal")

// FuzzUnmarshal feeds arbitrary checkpoints to a judge of testParams and
// one of v1Params: UnmarshalBinary never panics, refuses with one of its
// errors, and what it accepts re-encodes to the same bytes (in its
// version) in a judge of the checkpoint's params, keeps working, and in a
// judge of another policy is that state with the judge's policy adopted. Each input is tried as it is and with a
// valid magic (of its version when it has one this build reads) and
// checksum, so that mutations reach the decoder. The seeds are in
// testdata/fuzz/FuzzUnmarshal, which TestFuzzSeeds keeps in the current
// format; v1-*, v2-* and v3-* are checkpoints of versions 1 to 3, which
// it never rewrites.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte{})
	f.Add(magic[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range []Params{testParams, v1Params} {
			checkUnmarshal(t, p, b)
			checkUnmarshal(t, p, withCRC(b))
		}
	})
}

func checkUnmarshal(t *testing.T, p Params, b []byte) {
	j := mustNew(t, p)
	if err := j.UnmarshalBinary(b); err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrParams) && !errors.Is(err, ErrVersion) {
			t.Fatalf("unexpected error for %q; got %v; want one of the package's", b, err)
		}
		return
	}
	if j.Params() != p {
		t.Fatalf("unexpected params after restoring %q; got %s; want %s", b, j.Params(), p)
	}
	cp, err := CheckpointParams(b)
	if err != nil {
		t.Fatalf("unexpected error reading the params of %q, which UnmarshalBinary took: %s", b, err)
	}
	own := mustNew(t, cp)
	if err := own.UnmarshalBinary(b); err != nil {
		t.Fatalf("unexpected error restoring %q into a judge of its own params %s: %s", b, cp, err)
	}
	if again, _ := own.appendVersion(nil, b[len(magic)-1]); !bytes.Equal(again, b) {
		t.Fatalf("unexpected checkpoint after restoring %q; got %q", b, again)
	}
	if err := own.SetPolicy(p.Policy()); err != nil {
		t.Fatal(err)
	}
	if got, want := mustMarshal(t, j), mustMarshal(t, own); !bytes.Equal(got, want) {
		t.Fatalf("unexpected checkpoint after restoring %q with policy %s; got %q; want %q as SetPolicy gives", b, p.Policy(), got, want)
	}
	// The restored judge decides visits at its clock and a second before,
	// and checkpoints what it reaches.
	at := j.Clock()
	if at == math.MinInt64 {
		at = t0
	}
	visits := make([]counter.Visit, 0, 4)
	for i, who := range []string{"ann", "ann", "bea", "cid"} {
		v := visit("c1", "alice", who, 0)
		v.At = at
		if i%2 == 1 && at > math.MinInt64+1000 {
			v.At -= 1000
		}
		v.SetWindow(time.UnixMilli(v.At), 24*time.Hour)
		visits = append(visits, v)
	}
	j.Apply(visits, make([]counter.Reason, len(visits)))
	r := mustNew(t, p)
	if err := r.UnmarshalBinary(mustMarshal(t, j)); err != nil {
		t.Fatalf("unexpected error restoring the judge restored from %q, after visits: %s", b, err)
	}
}

// fuzzSeedStates returns the states whose checkpoints the fuzzer starts
// from.
func fuzzSeedStates(t testing.TB) map[string]*Judge {
	log := mustNew(t, testParams)
	visits := genLog(150, 5)
	log.Apply(visits, make([]counter.Reason, len(visits)))
	log.SetOffset([]byte{0, 0, 0, 0, 0, 0, 0x0b, 0xb8})
	expired := smallState(t)
	later := []counter.Visit{visit("c3", "dora", "ann", int64(30*time.Hour/time.Millisecond))}
	expired.Apply(later, make([]counter.Reason, 1))
	batched := smallState(t)
	for _, id := range []uint64{0x0b, 0x0a, 1 << 63} {
		batched.NewBatch(id)
	}
	return map[string]*Judge{"empty": mustNew(t, testParams), "small": smallState(t), "expired": expired, "log": log,
		"layers": layeredState(t), "links": linkedState(t), "batches": batched}
}

// fuzzSeeds returns the checkpoints the fuzzer starts from.
func fuzzSeeds(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{}
	for name, j := range fuzzSeedStates(t) {
		seeds[name] = mustMarshal(t, j)
	}
	return seeds
}

// TestFuzzSeeds keeps FuzzUnmarshal's seed files in the current format:
// run with -update-seeds after changing it.
func TestFuzzSeeds(t *testing.T) {
	seeds := fuzzSeeds(t)
	fuzzseed.Check(t, "FuzzUnmarshal", seeds, *updateSeeds)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		if err := mustNew(t, testParams).UnmarshalBinary(seeds[name]); err != nil {
			t.Fatalf("unexpected error restoring seed %q: %s", name, err)
		}
		checkUnmarshal(t, testParams, seeds[name])
	}
}

package judge

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// policyChange applies before under p, adopts q at a checkpoint (the
// judge's checkpoint restored into a judge of q), applies after and
// returns the reasons of after. The judge that adopted q in memory by
// SetPolicy decides alike, and reaches the same checkpoint.
func policyChange(t *testing.T, p Params, q Policy, before, after []counter.Visit) []counter.Reason {
	t.Helper()
	j := mustNew(t, p)
	j.Apply(before, make([]counter.Reason, len(before)))
	r := mustNew(t, p.WithPolicy(q))
	if err := r.UnmarshalBinary(mustMarshal(t, j)); err != nil {
		t.Fatalf("unexpected error adopting %s after %s: %s", q, p.Policy(), err)
	}
	if err := j.SetPolicy(q); err != nil {
		t.Fatalf("unexpected error setting %s: %s", q, err)
	}
	got, want := make([]counter.Reason, len(after)), make([]counter.Reason, len(after))
	r.Apply(after, got)
	j.Apply(after, want)
	cp := mustMarshal(t, r)
	if !slices.Equal(got, want) || !bytes.Equal(cp, mustMarshal(t, j)) {
		t.Fatalf("unexpected reasons after adopting %s at a checkpoint; got %v; want %v as SetPolicy gives, and the same checkpoint", q, got, want)
	}
	// The checkpoint holds state of q: a judge of q takes it as it is.
	again := mustNew(t, p.WithPolicy(q))
	if err := again.UnmarshalBinary(cp); err != nil || !bytes.Equal(mustMarshal(t, again), cp) {
		t.Fatalf("unexpected error restoring the checkpoint taken under %s: %v", q, err)
	}
	return got
}

// TestPolicyBudgets: the day's budget counts carry over a change of
// budgets, against the new ones.
func TestPolicyBudgets(t *testing.T) {
	f := func(name string, p Params, q Policy, before, after []counter.Visit, want ...counter.Reason) {
		t.Helper()
		if got := policyChange(t, p, q, before, after); !slices.Equal(got, want) {
			t.Fatalf("unexpected reasons for %q; got %v; want %v", name, got, want)
		}
	}
	p := budgetParams // a network 3 a day, its block 5
	// cafe (in campus) has spent its 3 today, campus 3 of its 5.
	spent := []counter.Visit{person("ann", "cafe", "campus", 0), person("bea", "cafe", "campus", 1), person("cid", "cafe", "campus", 2)}
	more := []counter.Visit{
		person("dan", "cafe", "campus", 10), person("eve", "cafe", "campus", 11), person("fay", "cafe", "campus", 12),
		person("ann", "cafe", "campus", 13), // a duplicate whatever the budget
		person("gus", "home", "campus", 14),
	}
	with := func(network, block int) Policy {
		q := p.Policy()
		q.BudgetNetwork, q.BudgetBlock = network, block
		return q
	}
	f("unchanged", p, p.Policy(), spent, more, B, B, B, D, Q)
	f("a lower network budget", p, with(2, 5), spent, more, B, B, B, D, Q)
	f("a higher network budget", p, with(5, 5), spent, more, Q, Q, B, D, B)
	f("no network budget", p, with(0, 5), spent, more, Q, Q, B, D, B)
	f("a lower block budget", p, with(3, 2), spent, more, B, B, B, D, B)
	f("no budgets", p, with(0, 0), spent, more, Q, Q, Q, D, Q)
	// Budgets that were 0 count from the change on.
	none := p.WithPolicy(with(0, 0))
	f("budgets from none", none, with(2, 4), spent, more, Q, Q, B, D, Q)
	// The next day starts afresh under the new budgets.
	f("the next day", p, with(1, 5), spent, []counter.Visit{
		person("dan", "cafe", "campus", 10), person("eve", "cafe", "campus", msPerDay), person("fay", "cafe", "campus", msPerDay+1),
	}, B, Q, B)

	// A count over a lowered budget is kept at the budget, as a judge of
	// that budget keeps it.
	j := mustNew(t, p)
	j.Apply(spent, make([]counter.Reason, len(spent)))
	if err := j.SetPolicy(with(2, 1)); err != nil {
		t.Fatal(err)
	}
	c := j.bud.campaigns["c1"]
	if n, b := c.networks.get(network("cafe")), c.blocks.get(in(counter.Visit{}, "campus").Block); n != 2 || b != 1 {
		t.Fatalf("unexpected counts kept under lower budgets; got network %d, block %d; want 2 and 1", n, b)
	}
	if err := j.SetPolicy(with(0, 0)); err != nil || len(j.bud.campaigns) != 0 {
		t.Fatalf("unexpected budgets kept without budgets; got %d campaigns (%v); want none", len(j.bud.campaigns), err)
	}
}

// TestPolicyVelocity: a network's velocity counts carry over a change of
// the limit, and over a change of the window no visit is forgotten sooner
// than the new window says.
func TestPolicyVelocity(t *testing.T) {
	f := func(name string, p Params, q Policy, before, after []counter.Visit, want ...counter.Reason) {
		t.Helper()
		if got := policyChange(t, p, q, before, after); !slices.Equal(got, want) {
			t.Fatalf("unexpected reasons for %q; got %v; want %v", name, got, want)
		}
	}
	sec := func(who, net string, s int64) counter.Visit { return person(who, net, "", s*1000) }
	// Three visits of farm, the limit, then the clock moves on by 60 s.
	p := Params{Expected: 500, FP: 0.001, Partitions: 1, VelocityMax: 3, VelocityWindow: 70 * time.Second} // granules of 10 s
	farm := []counter.Visit{sec("ann", "farm", 0), sec("bea", "farm", 1), sec("cid", "farm", 2), sec("dan", "home", 60)}
	window := func(max int, w time.Duration) Policy {
		q := p.Policy()
		q.VelocityMax, q.VelocityWindow = max, w
		return q
	}
	f("unchanged", p, p.Policy(), farm, []counter.Visit{sec("eve", "farm", 61), sec("fay", "farm", 81)}, V, Q)
	f("a higher limit", p, window(4, 70*time.Second), farm, []counter.Visit{sec("eve", "farm", 61), sec("fay", "farm", 62)}, Q, V)
	f("a lower limit", p, window(2, 70*time.Second), farm, []counter.Visit{sec("eve", "home", 61), sec("fay", "home", 62)}, Q, V)
	// 700 s: the visits of 0-2 s count until 700 s at least, though they
	// were 6 granules of 10 s back, and are forgotten by 800 s, a granule
	// of 100 s later.
	f("a longer window", p, window(3, 700*time.Second), farm, []counter.Visit{
		sec("eve", "farm", 500), sec("fay", "farm", 699), sec("gus", "farm", 800),
	}, V, V, Q)
	// 7 s: the visits of 0-2 s, in the clock's granule of 10 s, count as
	// if made at the clock, 3 s, until 11 s (granules of 1 s), not 7 s
	// past their own time.
	f("a shorter window", p, window(3, 7*time.Second), []counter.Visit{
		sec("ann", "farm", 0), sec("bea", "farm", 1), sec("cid", "farm", 2), sec("dan", "home", 3),
	}, []counter.Visit{sec("eve", "farm", 4), sec("fay", "farm", 10), sec("gus", "farm", 12)}, V, V, Q)
	// No limit forgets the counts; a limit again counts from then on.
	f("no limit", p, window(0, 70*time.Second), farm, []counter.Visit{sec("eve", "farm", 61), sec("fay", "farm", 62)}, Q, Q)
	off := p.WithPolicy(window(0, 70*time.Second))
	f("a limit again", off, p.Policy(), farm, []counter.Visit{
		sec("eve", "farm", 61), sec("fay", "farm", 62), sec("gus", "farm", 63), sec("hal", "farm", 64),
	}, Q, Q, Q, V)
}

// TestParamsSizing: the sizing and the policy split Params.
func TestParamsSizing(t *testing.T) {
	q := Policy{VelocityMax: 9, VelocityWindow: time.Hour, BudgetNetwork: 1, BudgetBlock: 2}
	p := testParams.WithPolicy(q)
	if p.Policy() != q || !p.SameSizing(testParams) || p.SizingString() != testParams.SizingString() || p.WithPolicy(testParams.Policy()) != testParams {
		t.Fatalf("unexpected split of %s into sizing %q and policy %s", p, p.SizingString(), p.Policy())
	}
	for _, change := range []func(p *Params){
		func(p *Params) { p.Expected++ }, func(p *Params) { p.FP /= 2 },
		func(p *Params) { p.Partitions++ }, func(p *Params) { p.Keying = "k" },
	} {
		o := testParams
		change(&o)
		if o.SameSizing(testParams) || o.SizingString() == testParams.SizingString() {
			t.Fatalf("unexpected same sizing of %s and %s", o, testParams)
		}
	}
}

// TestSetPolicyInvalid: an invalid policy is refused and changes nothing.
func TestSetPolicyInvalid(t *testing.T) {
	j := smallState(t)
	before := mustMarshal(t, j)
	for _, q := range []Policy{
		{VelocityMax: -1, VelocityWindow: time.Minute},
		{VelocityMax: 1 << 16, VelocityWindow: time.Minute},
		{VelocityWindow: 0},
		{VelocityWindow: time.Minute + time.Microsecond},
		{VelocityWindow: time.Minute, BudgetNetwork: -1},
		{VelocityWindow: time.Minute, BudgetBlock: 1 << 31},
	} {
		if err := j.SetPolicy(q); err == nil {
			t.Fatalf("unexpected success setting %s", q)
		}
		if !bytes.Equal(mustMarshal(t, j), before) || j.Params() != testParams {
			t.Fatalf("unexpected change of the judge after refusing %s", q)
		}
	}
}

// TestPolicyDeterminism judges a generated log that changes policy half
// way, at a checkpoint: in one go, and in batches through a checkpoint
// after each, restored into a judge of the new policy. Both decide every
// visit alike and reach the same checkpoint; the new policy decides the
// visits after the change, the old one those before.
func TestPolicyDeterminism(t *testing.T) {
	visits := genLog(100_000, 7)
	half := len(visits) / 2
	q := Policy{VelocityMax: 12, VelocityWindow: 5 * time.Minute, BudgetNetwork: 8, BudgetBlock: 30}
	next := logParams.WithPolicy(q)

	old := mustNew(t, logParams) // never changes policy
	ref := make([]counter.Reason, len(visits))
	old.Apply(visits, ref)

	whole := mustNew(t, logParams)
	want := make([]counter.Reason, len(visits))
	whole.Apply(visits[:half], want[:half])
	cp := mustMarshal(t, whole)
	if err := whole.SetPolicy(q); err != nil {
		t.Fatal(err)
	}
	whole.Apply(visits[half:], want[half:])
	whole.SetOffset([]byte("end"))
	wantCheckpoint := mustMarshal(t, whole)
	if !slices.Equal(want[:half], ref[:half]) || slices.Equal(want[half:], ref[half:]) {
		t.Fatalf("unexpected reasons: the old policy must decide the visits before the change, and the new one differently after")
	}
	var before, after counter.Counts
	for i, r := range want {
		if i < half {
			before[r]++
		} else {
			after[r]++
		}
	}
	t.Logf("before the change: qualified %d, velocity %d, budget %d; after: qualified %d, velocity %d, budget %d",
		before[Q], before[V], before[B], after[Q], after[V], after[B])

	for _, seed := range []uint64{1, 2} {
		r := rand.New(rand.NewPCG(seed, 3))
		j := mustNew(t, next)
		if err := j.UnmarshalBinary(cp); err != nil {
			t.Fatal(err)
		}
		got := make([]counter.Reason, len(visits))
		for i := half; i < len(visits); {
			n := min(len(visits)-i, 1+r.IntN(8000))
			j.Apply(visits[i:i+n], got[i:i+n])
			i += n
			j.SetOffset(binary.AppendUvarint(nil, uint64(i)))
			b := mustMarshal(t, j)
			j = mustNew(t, next)
			if err := j.UnmarshalBinary(b); err != nil {
				t.Fatalf("unexpected error resuming after visit %d: %s", i, err)
			}
		}
		for i := half; i < len(visits); i++ {
			if got[i] != want[i] {
				t.Fatalf("unexpected reason of visit %d (seed %d); got %s; want %s", i, seed, got[i], want[i])
			}
		}
		j.SetOffset([]byte("end"))
		if b := mustMarshal(t, j); !bytes.Equal(b, wantCheckpoint) {
			t.Fatalf("unexpected checkpoint (seed %d); got %d bytes; want %d bytes like the judge that changed policy in memory", seed, len(b), len(wantCheckpoint))
		}
	}
}

// TestPolicyReplayAfterCrash is what a store does after a crash that left
// visits after its last checkpoint: it replays them under the
// checkpoint's own policy (CheckpointParams), decided as before the
// crash, then adopts the new policy for the visits after.
func TestPolicyReplayAfterCrash(t *testing.T) {
	visits := genLog(20_000, 9)
	cut, crash := len(visits)/3, 2*len(visits)/3
	first := mustNew(t, logParams)
	want := make([]counter.Reason, len(visits))
	first.Apply(visits[:cut], want[:cut])
	cp := mustMarshal(t, first)
	first.Apply(visits[cut:crash], want[cut:crash]) // judged, then lost

	p, err := CheckpointParams(cp)
	if err != nil || p != logParams {
		t.Fatalf("unexpected params of the checkpoint; got %s, %v; want %s", p, err, logParams)
	}
	j := mustNew(t, p)
	if err := j.UnmarshalBinary(cp); err != nil {
		t.Fatal(err)
	}
	got := make([]counter.Reason, len(visits))
	j.Apply(visits[cut:crash], got[cut:crash])
	if !slices.Equal(got[cut:crash], want[cut:crash]) {
		t.Fatalf("unexpected reasons of the visits replayed under the checkpoint's policy")
	}
	q := Policy{VelocityMax: 5, VelocityWindow: time.Minute, BudgetNetwork: 2, BudgetBlock: 4}
	if err := j.SetPolicy(q); err != nil {
		t.Fatal(err)
	}
	j.Apply(visits[crash:], got[crash:])
	first.Apply(visits[crash:], want[crash:])
	if slices.Equal(got[crash:], want[crash:]) {
		t.Fatalf("unexpected reasons after the change: the same as under the old policy")
	}
	budget := 0
	for _, r := range got[crash:] {
		if r == B {
			budget++
		}
	}
	if budget == 0 {
		t.Fatalf("unexpected reasons under budgets of %d and %d: none over budget", q.BudgetNetwork, q.BudgetBlock)
	}
}

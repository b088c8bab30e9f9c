package judge

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// t0 is 2026-05-11T00:00:00Z, in Unix milliseconds.
const t0 = 1_778_457_600_000

// testParams limit a network to 3 visits per 70 s (granules of 10 s), and
// to 5 qualified visits a day, its block to 8.
var testParams = Params{Expected: 50, FP: 0.001, Partitions: 1, VelocityMax: 3, VelocityWindow: 70 * time.Second,
	BudgetNetwork: 5, BudgetBlock: 8}

// v1Params are testParams without budgets, as checkpoints of version 1
// have them.
var v1Params = Params{Expected: 50, FP: 0.001, Partitions: 1, VelocityMax: 3, VelocityWindow: 70 * time.Second}

func mustNew(t testing.TB, p Params) *Judge {
	t.Helper()
	j, err := New(p)
	if err != nil {
		t.Fatalf("unexpected error for %s: %s", p, err)
	}
	return j
}

// key returns the visitor key of id, keyed by campaign and creator as the
// edge keys it.
func key(campaign, creator, id string) counter.VisitorKey {
	h := sha256.Sum256([]byte(campaign + "\x00" + creator + "\x00" + id))
	return counter.VisitorKey(h[:16])
}

// network returns the network key of a name.
func network(name string) uint64 {
	h := sha256.Sum256([]byte("net\x00" + name))
	return binary.LittleEndian.Uint64(h[:])
}

// visit is a click of person who on creator's link at ms milliseconds
// after t0, with a visitor cookie: keyed by the cookie, the network key
// marked too. Dedupe windows are one day.
func visit(campaign, creator, who string, ms int64) counter.Visit {
	v := counter.Visit{
		Campaign: campaign,
		Creator:  creator,
		Key:      key(campaign, creator, "cookie:"+who),
		Also:     key(campaign, creator, "net:"+who),
		HasAlso:  true,
		At:       t0 + ms,
		Network:  network(who),
	}
	v.SetWindow(time.UnixMilli(v.At), 24*time.Hour)
	return v
}

// firstVisit is who's first click, without a cookie yet: keyed by the
// network, the new cookie marked too.
func firstVisit(campaign, creator, who string, ms int64) counter.Visit {
	v := visit(campaign, creator, who, ms)
	v.Key, v.Also = v.Also, v.Key
	return v
}

func from(v counter.Visit, net string) counter.Visit {
	v.Network = network(net)
	return v
}

// in puts v's network in the block of a name.
func in(v counter.Visit, block string) counter.Visit {
	v.Block = network("block\x00" + block)
	return v
}

func markOnly(v counter.Visit) counter.Visit {
	v.MarkOnly = true
	return v
}

const (
	Q = counter.Qualified
	D = counter.Duplicate
	V = counter.Velocity
	O = counter.OutOfWindow
	B = counter.Budget
)

func TestApply(t *testing.T) {
	day := int64(24 * time.Hour / time.Millisecond)
	// The window of the visits at 0 expires at the end of the day plus
	// the grace of an hour.
	expiry := day + int64(time.Hour/time.Millisecond)
	f := func(name string, visits []counter.Visit, want ...counter.Reason) {
		t.Helper()
		j := mustNew(t, testParams)
		got := make([]counter.Reason, len(visits))
		j.Apply(visits, got)
		if !slices.Equal(got, want) {
			t.Fatalf("unexpected reasons for %q; got %v; want %v", name, got, want)
		}
	}
	f("new visitor", []counter.Visit{visit("c1", "alice", "ann", 0)}, Q)
	f("same key", []counter.Visit{visit("c1", "alice", "ann", 0), visit("c1", "alice", "ann", 1000)}, Q, D)
	f("cookie marked by the first visit",
		[]counter.Visit{firstVisit("c1", "alice", "ann", 0), visit("c1", "alice", "ann", 1000)}, Q, D)
	f("network marked by the first visit",
		[]counter.Visit{visit("c1", "alice", "ann", 0), firstVisit("c1", "alice", "ann", 1000)}, Q, D)
	f("other creator",
		[]counter.Visit{visit("c1", "alice", "ann", 0), visit("c1", "bob", "ann", 1000)}, Q, Q)
	f("other campaign",
		[]counter.Visit{visit("c1", "alice", "ann", 0), visit("c2", "alice", "ann", 1000)}, Q, Q)
	same := visit("c1", "alice", "ann", 0)
	other := same
	other.Campaign = "c2"
	f("other campaign, same key bytes", []counter.Visit{same, other}, Q, Q)
	f("next window",
		[]counter.Visit{visit("c1", "alice", "ann", 0), visit("c1", "alice", "ann", day)}, Q, Q)
	f("other visitors", []counter.Visit{
		visit("c1", "alice", "ann", 0), visit("c1", "alice", "bea", 1),
		visit("c1", "alice", "cid", 2), visit("c1", "alice", "bea", 3),
	}, Q, Q, Q, D)

	// Velocity: 3 visits per network per 70 s, granules of 10 s, counted
	// at least 70 s and at most 80 s.
	f("velocity limit", []counter.Visit{
		from(visit("c1", "alice", "ann", 0), "cafe"), from(visit("c1", "alice", "bea", 1000), "cafe"),
		from(visit("c1", "alice", "cid", 2000), "cafe"), from(visit("c1", "alice", "dan", 3000), "cafe"),
		from(visit("c1", "alice", "eve", 69_999), "cafe"),
		from(visit("c1", "alice", "eve", 79_999), "cafe"),
		// Granule 0 (4 visits) is out of the window; granules 6 and 7
		// hold one visit each.
		from(visit("c1", "alice", "eve", 80_000), "cafe"),
		from(visit("c1", "alice", "fay", 80_001), "cafe"),
	}, Q, Q, Q, V, V, V, Q, V)
	f("velocity counts duplicates", []counter.Visit{
		visit("c1", "alice", "ann", 0), visit("c1", "alice", "ann", 1), visit("c1", "alice", "ann", 2),
		from(visit("c1", "alice", "bea", 3), "ann"),
	}, Q, D, D, V)
	f("velocity across creators and campaigns of the partition", []counter.Visit{
		from(visit("c1", "alice", "ann", 0), "cafe"), from(visit("c1", "bob", "ann", 1), "cafe"),
		from(visit("c2", "carl", "ann", 2), "cafe"), from(visit("c2", "dora", "ann", 3), "cafe"),
	}, Q, Q, Q, V)
	f("velocity visit not marked", []counter.Visit{
		from(visit("c1", "alice", "ann", 0), "cafe"), from(visit("c1", "alice", "bea", 1), "cafe"),
		from(visit("c1", "alice", "cid", 2), "cafe"), from(visit("c1", "alice", "dan", 3), "cafe"),
		from(visit("c1", "alice", "dan", 80_000), "cafe"),
	}, Q, Q, Q, V, Q)
	f("other networks", []counter.Visit{
		from(visit("c1", "alice", "ann", 0), "cafe"), from(visit("c1", "alice", "bea", 1), "cafe"),
		from(visit("c1", "alice", "cid", 2), "cafe"), from(visit("c1", "alice", "dan", 3), "home"),
	}, Q, Q, Q, Q)
	f("out of order visit counted at the clock", []counter.Visit{
		from(visit("c1", "alice", "ann", 60_000), "cafe"), from(visit("c1", "alice", "bea", 0), "cafe"),
		from(visit("c1", "alice", "cid", 0), "cafe"),
		// In granule 8 granule 0 is out of the window, but bea's and
		// cid's visits were counted in granule 6, ann's, the clock's.
		from(visit("c1", "alice", "dan", 80_000), "cafe"),
	}, Q, Q, Q, V)

	// Windows expire by the clock, the largest visit time, at Expires.
	f("window kept until its expiry", []counter.Visit{
		visit("c1", "alice", "ann", 0), visit("c1", "alice", "bea", expiry-1),
		visit("c1", "alice", "ann", 0),
	}, Q, Q, D)
	f("window dropped at its expiry", []counter.Visit{
		visit("c1", "alice", "ann", 0), visit("c1", "alice", "bea", expiry),
		visit("c1", "alice", "ann", 0), markOnly(visit("c1", "alice", "ann", 0)),
	}, Q, Q, O, O)
	f("window dropped by a visit of another campaign", []counter.Visit{
		visit("c1", "alice", "ann", 0), visit("c2", "alice", "bea", expiry+5000),
		visit("c1", "alice", "ann", 0),
	}, Q, Q, O)

	// MarkOnly: the keys are marked, nothing counted, velocity included.
	f("mark only", []counter.Visit{
		markOnly(visit("c1", "alice", "ann", 0)), markOnly(visit("c1", "alice", "ann", 0)),
		firstVisit("c1", "alice", "ann", 1),
	}, Q, D, D)
	f("mark only is not a visit of the network", []counter.Visit{
		from(markOnly(visit("c1", "alice", "ann", 0)), "cafe"), from(markOnly(visit("c1", "alice", "bea", 0)), "cafe"),
		from(markOnly(visit("c1", "alice", "cid", 0)), "cafe"), from(markOnly(visit("c1", "alice", "dan", 0)), "cafe"),
		from(visit("c1", "alice", "eve", 0), "cafe"), from(visit("c1", "alice", "fay", 0), "cafe"),
		from(visit("c1", "alice", "gus", 0), "cafe"),
	}, Q, Q, Q, Q, Q, Q, Q)
}

func TestCounts(t *testing.T) {
	day := int64(24 * time.Hour / time.Millisecond)
	j := mustNew(t, testParams)
	visits := []counter.Visit{
		visit("c2", "bob", "ann", 0),
		visit("c1", "bob", "ann", 1), visit("c1", "bob", "ann", 2),
		visit("c1", "alice", "bea", 3),
		from(visit("c1", "alice", "cid", 4), "ann"), // ann's network's fourth visit
		markOnly(visit("c1", "alice", "eve", 5)),
		visit("c1", "alice", "ann", day),
	}
	j.Apply(visits, make([]counter.Reason, len(visits)))
	d := counter.DayOf(time.UnixMilli(t0))
	counts := func(q, dup, vel int64) (c counter.Counts) {
		c[counter.Qualified], c[counter.Duplicate], c[counter.Velocity] = q, dup, vel
		return c
	}
	want := []CreatorDay{
		{"c1", "alice", "", d, counts(1, 0, 1)},
		{"c1", "alice", "", d + 1, counts(1, 0, 0)},
		{"c1", "bob", "", d, counts(1, 1, 0)},
		{"c2", "bob", "", d, counts(1, 0, 0)},
	}
	if got := j.Counts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("unexpected counts; got %v; want %v", got, want)
	}
	if got, want := j.Clock(), int64(t0+day); got != want {
		t.Fatalf("unexpected clock; got %d; want %d", got, want)
	}
}

func TestParamsValidate(t *testing.T) {
	f := func(name string, change func(p *Params), want string) {
		t.Helper()
		p := testParams
		change(&p)
		err := p.Validate()
		if _, nerr := New(p); (err == nil) != (nerr == nil) {
			t.Fatalf("unexpected New error for %q; got %v; want like %v", name, nerr, err)
		}
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("unexpected error for %q; got %v; want %q", name, err, want)
		}
	}
	f("valid", func(p *Params) {}, "")
	f("no expected", func(p *Params) { p.Expected = 0 }, "expected visitors")
	f("fp 0", func(p *Params) { p.FP = 0 }, "false-positive rate")
	f("fp 1", func(p *Params) { p.FP = 1 }, "false-positive rate")
	f("fp NaN", func(p *Params) { p.FP = math.NaN() }, "false-positive rate")
	f("no partitions", func(p *Params) { p.Partitions = 0 }, "partitions")
	f("too many partitions", func(p *Params) { p.Partitions = 1<<16 + 1 }, "partitions")
	f("no velocity rule", func(p *Params) { p.VelocityMax = 0 }, "")
	f("negative velocity max", func(p *Params) { p.VelocityMax = -1 }, "velocity max")
	f("velocity max too high", func(p *Params) { p.VelocityMax = 65535 }, "velocity max")
	f("no budgets", func(p *Params) { p.BudgetNetwork, p.BudgetBlock = 0, 0 }, "")
	f("negative network budget", func(p *Params) { p.BudgetNetwork = -1 }, "network budget")
	f("network budget too high", func(p *Params) { p.BudgetNetwork = math.MaxInt32 + 1 }, "network budget")
	f("negative block budget", func(p *Params) { p.BudgetBlock = -1 }, "block budget")
	f("block budget too high", func(p *Params) { p.BudgetBlock = math.MaxInt32 + 1 }, "block budget")
	f("largest budgets", func(p *Params) { p.BudgetNetwork, p.BudgetBlock = math.MaxInt32, math.MaxInt32 }, "")
	f("velocity window short", func(p *Params) { p.VelocityWindow = time.Second - 1 }, "velocity window")
	f("velocity window long", func(p *Params) { p.VelocityWindow = 169 * time.Hour }, "velocity window")
	f("velocity window in ns", func(p *Params) { p.VelocityWindow = time.Second + 1 }, "velocity window")
	f("keying too long", func(p *Params) { p.Keying = strings.Repeat("k", 257) }, "keying")
	f("filters too large", func(p *Params) { p.Expected = 1 << 40 }, "the limit is 2^32")
	f("huge expected", func(p *Params) { p.Expected = math.MaxUint64 }, "the limit is 2^32")
}

func TestPartition(t *testing.T) {
	f := func(campaign, creator string, n uint32) {
		t.Helper()
		h := fnv.New64a()
		h.Write([]byte(campaign + "\x00" + creator))
		if got, want := Partition(campaign, creator, n), uint32(h.Sum64()%uint64(n)); got != want {
			t.Fatalf("unexpected partition of %q %q in %d; got %d; want %d", campaign, creator, n, got, want)
		}
	}
	f("", "", 1)
	f("c1", "alice", 16)
	f("spring-2026", "creator-00042", 7)
	f("c1", "", 65536)
	// The layout of existing logs depends on these values.
	if got := Partition("spring-2026", "alice", 16); got != 9 {
		t.Fatalf("unexpected partition of alice; got %d; want 9", got)
	}
}

// TestVelocityForgets checks that networks are dropped once their visits
// are out of the window, and kept until then.
func TestVelocityForgets(t *testing.T) {
	j := mustNew(t, testParams)
	var visits []counter.Visit
	for i := range 1000 {
		visits = append(visits, visit("c1", "alice", strconv.Itoa(i), int64(i)))
	}
	j.Apply(visits, make([]counter.Reason, len(visits)))
	f := func(ms int64, want int) {
		t.Helper()
		j.Apply([]counter.Visit{visit("c1", "alice", "ann", ms)}, make([]counter.Reason, 1))
		if got := j.vel.len(); got != want {
			t.Fatalf("unexpected networks kept at %d ms; got %d; want %d", ms, got, want)
		}
	}
	f(79_999, 1001)
	f(80_000, 1)
	f(1_000_000, 1)
	if got := len(j.vel.latest[floorMod(j.vel.cur, lanes)]); got != 1 {
		t.Fatalf("unexpected networks listed in the current granule; got %d; want 1", got)
	}
}

// TestVelocityCompacts: once more than half the networks are dropped,
// the table is compacted; the networks kept stay in the order first
// counted, and each is still found with its counts.
func TestVelocityCompacts(t *testing.T) {
	j := mustNew(t, testParams)
	vc := &j.vel
	// at returns a time in the k-th granule after the one of t0.
	at := func(k int64) int64 { return (vc.granule(t0)+k)*vc.gran - t0 }
	apply := func(vs ...counter.Visit) []counter.Reason {
		out := make([]counter.Reason, len(vs))
		j.Apply(vs, out)
		return out
	}
	for i := range 10 {
		apply(visit("c1", "alice", "a"+strconv.Itoa(i), at(1)))
	}
	apply(visit("c1", "alice", "b0", at(2)), visit("c1", "alice", "b1", at(2)), from(visit("c1", "alice", "a3 again", at(2)), "a3"),
		visit("c1", "alice", "b2", at(2)), visit("c1", "alice", "b3", at(2)), visit("c1", "alice", "b4", at(2)))
	if vc.len() != 15 || vc.dropped != 0 {
		t.Fatalf("unexpected networks before granule 1 passes; got %d kept, %d dropped; want 15, 0", vc.len(), vc.dropped)
	}
	// Granule 1 passes: 9 of the 15 networks are dropped, a3 is kept.
	apply(visit("c1", "alice", "c0", at(1+lanes)))
	var got []uint64
	for _, e := range vc.nets {
		got = append(got, e.key)
	}
	want := []uint64{network("a3"), network("b0"), network("b1"), network("b2"), network("b3"), network("b4"), network("c0")}
	if !slices.Equal(got, want) || vc.dropped != 0 || vc.len() != len(want) {
		t.Fatalf("unexpected networks after granule 1 passed; got %x (%d dropped); want %x", got, vc.dropped, want)
	}
	// b2 had one visit: two more are within VelocityMax 3, a fourth is not.
	b2 := func(who string) counter.Visit { return from(visit("c1", "alice", who, at(1+lanes)), "b2") }
	if r := apply(b2("x"), b2("y"), b2("z")); !slices.Equal(r, []counter.Reason{Q, Q, V}) {
		t.Fatalf("unexpected reasons of b2's visits after the compaction; got %v; want [Q Q V]", r)
	}
}

// TestNoVelocityRule: with VelocityMax 0 no visit is Velocity, however many
// come from one network.
func TestNoVelocityRule(t *testing.T) {
	p := testParams
	p.VelocityMax = 0
	j, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	vs := make([]counter.Visit, 1000)
	for i := range vs {
		vs[i] = counter.Visit{Campaign: "spring", Creator: "alice", At: at.UnixMilli(), Network: 7}
		vs[i].Key[0], vs[i].Key[1], vs[i].Key[9] = byte(i), byte(i>>8), 1
		vs[i].SetWindow(at, 24*time.Hour)
	}
	out := make([]counter.Reason, len(vs))
	j.Apply(vs, out)
	for i, r := range out {
		if r == counter.Velocity {
			t.Fatalf("unexpected velocity for visit %d without a velocity rule", i)
		}
	}
}

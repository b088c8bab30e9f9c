package judge

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// budgetParams give a network 3 qualified visits a day and its block 5,
// with no velocity rule in the way.
var budgetParams = Params{Expected: 500, FP: 0.001, Partitions: 1, VelocityWindow: time.Minute, BudgetNetwork: 3, BudgetBlock: 5}

// person is a new visitor, who on creator alice's link in c1, from
// network net of block (either "" for unknown), ms after t0.
func person(who, net, block string, ms int64) counter.Visit {
	v := visit("c1", "alice", who, ms)
	v.Network, v.Block = 0, 0
	if net != "" {
		v = from(v, net)
	}
	if block != "" {
		v = in(v, block)
	}
	return v
}

// week gives v a dedupe window of 7 days, so that a visitor is known
// across days.
func week(v counter.Visit) counter.Visit {
	v.SetWindow(time.UnixMilli(v.At), 7*24*time.Hour)
	return v
}

func TestBudgets(t *testing.T) {
	day := int64(msPerDay)
	f := func(name string, p Params, visits []counter.Visit, want ...counter.Reason) {
		t.Helper()
		j := mustNew(t, p)
		got := make([]counter.Reason, len(visits))
		j.Apply(visits, got)
		if !slices.Equal(got, want) {
			t.Fatalf("unexpected reasons for %q; got %v; want %v", name, got, want)
		}
		// The counters agree, by the visit's day.
		var total, counted counter.Counts
		for i := range visits {
			if !visits[i].MarkOnly {
				total[got[i]]++
			}
		}
		for _, c := range j.Counts() {
			counted.Add(&c.Counts)
		}
		if total != counted {
			t.Fatalf("unexpected counters for %q; got %v; want %v", name, counted, total)
		}
	}
	p := budgetParams

	// Network budget: distinct visitors from one network, which is what
	// rotated User-Agents or cookies look like, count against it.
	f("network budget", p, []counter.Visit{
		person("ann", "cafe", "", 0), person("bea", "cafe", "", 1), person("cid", "cafe", "", 2),
		person("dan", "cafe", "", 3), person("eve", "cafe", "", 4), person("fay", "home", "", 5),
	}, Q, Q, Q, B, B, Q)
	f("a first visit and a cookie visit of one person are one", p, []counter.Visit{
		from(firstVisit("c1", "alice", "ann", 0), "cafe"), from(visit("c1", "alice", "ann", 1), "cafe"),
		person("bea", "cafe", "", 2), person("cid", "cafe", "", 3), person("dan", "cafe", "", 4),
	}, Q, D, Q, Q, B)
	f("duplicates are not charged, and stay duplicates over budget", p, []counter.Visit{
		person("ann", "cafe", "", 0), person("ann", "cafe", "", 1), person("bea", "cafe", "", 2),
		person("cid", "cafe", "", 3), person("ann", "cafe", "", 4), person("dan", "cafe", "", 5),
		person("bea", "cafe", "", 6),
	}, Q, D, Q, Q, D, B, D)
	f("per campaign", p, []counter.Visit{
		person("ann", "cafe", "", 0), person("bea", "cafe", "", 1), person("cid", "cafe", "", 2),
		person("dan", "cafe", "", 3),
		from(visit("c2", "alice", "dan", 4), "cafe"),
	}, Q, Q, Q, B, Q)
	f("across the creators of a campaign", p, []counter.Visit{
		person("ann", "cafe", "", 0), from(visit("c1", "bob", "bea", 1), "cafe"),
		from(visit("c1", "carl", "cid", 2), "cafe"), from(visit("c1", "dora", "dan", 3), "cafe"),
	}, Q, Q, Q, B)

	// Block budget: the qualified visits of all the block's networks.
	f("block budget", p, []counter.Visit{
		person("ann", "n1", "campus", 0), person("bea", "n2", "campus", 1), person("cid", "n3", "campus", 2),
		person("dan", "n4", "campus", 3), person("eve", "n5", "campus", 4), person("fay", "n6", "campus", 5),
		person("gus", "n7", "town", 6),
	}, Q, Q, Q, Q, Q, B, Q)
	f("network and block budgets together", p, []counter.Visit{
		person("ann", "n1", "campus", 0), person("bea", "n1", "campus", 1), person("cid", "n1", "campus", 2),
		person("dan", "n1", "campus", 3), // the network's fourth: refused, not charged to the block
		person("eve", "n2", "campus", 4), person("fay", "n2", "campus", 5),
		person("gus", "n2", "campus", 6), // the block's sixth
	}, Q, Q, Q, B, Q, Q, B)
	f("block budget alone", Params{Expected: 500, FP: 0.001, Partitions: 1, VelocityWindow: time.Minute, BudgetBlock: 2}, []counter.Visit{
		person("ann", "n1", "campus", 0), person("bea", "n1", "campus", 1), person("cid", "n1", "campus", 2),
		person("dan", "n1", "town", 3), person("eve", "n1", "town", 4), person("fay", "n1", "town", 5),
	}, Q, Q, B, Q, Q, B)
	f("network budget alone", Params{Expected: 500, FP: 0.001, Partitions: 1, VelocityWindow: time.Minute, BudgetNetwork: 1}, []counter.Visit{
		person("ann", "n1", "campus", 0), person("bea", "n1", "campus", 1),
		person("cid", "n2", "campus", 2), person("dan", "n3", "campus", 3),
	}, Q, B, Q, Q)
	f("unknown networks and blocks have no budget", p, []counter.Visit{
		person("ann", "", "", 0), person("bea", "", "", 1), person("cid", "", "", 2),
		person("dan", "", "", 3), person("eve", "", "", 4), person("fay", "", "", 5),
		person("gus", "", "campus", 6), person("hal", "", "campus", 7), person("ivy", "", "campus", 8),
		person("jon", "", "campus", 9), person("kim", "", "campus", 10), person("lou", "", "campus", 11),
	}, Q, Q, Q, Q, Q, Q, Q, Q, Q, Q, Q, B)
	f("no budgets", Params{Expected: 500, FP: 0.001, Partitions: 1, VelocityWindow: time.Minute}, []counter.Visit{
		person("ann", "cafe", "campus", 0), person("bea", "cafe", "campus", 1), person("cid", "cafe", "campus", 2),
		person("dan", "cafe", "campus", 3), person("eve", "cafe", "campus", 4), person("fay", "cafe", "campus", 5),
	}, Q, Q, Q, Q, Q, Q)

	// A refused visit does not enter the filter: its person may be paid
	// once later in the window, from another network or another day, and
	// no more.
	f("refused visit not marked", p, []counter.Visit{
		week(person("ann", "cafe", "", 0)), week(person("bea", "cafe", "", 1)), week(person("cid", "cafe", "", 2)),
		week(person("dan", "cafe", "", 3)), week(person("dan", "cafe", "", 4)),
		week(person("dan", "home", "", 5)), week(person("dan", "home", "", 6)),
		week(person("dan", "cafe", "", 7)),
	}, Q, Q, Q, B, B, Q, D, D)
	f("refused visit paid the next day, once", p, []counter.Visit{
		week(person("ann", "cafe", "", 0)), week(person("bea", "cafe", "", 1)), week(person("cid", "cafe", "", 2)),
		week(person("dan", "cafe", "", 3)),
		week(person("dan", "cafe", "", day)), week(person("dan", "cafe", "", day+1)),
	}, Q, Q, Q, B, Q, D)
	f("refused visit's second key not marked", p, []counter.Visit{
		person("ann", "cafe", "", 0), person("bea", "cafe", "", 1), person("cid", "cafe", "", 2),
		from(firstVisit("c1", "alice", "dan", 3), "cafe"),
		from(visit("c1", "alice", "dan", 4), "home"), // its cookie, from another network
	}, Q, Q, Q, B, Q)
	f("a refused visit's window is not made", p, []counter.Visit{
		person("ann", "cafe", "", 0), person("bea", "cafe", "", 1), person("cid", "cafe", "", 2),
		week(person("dan", "cafe", "", 3)),
	}, Q, Q, Q, B)

	// Days are UTC days of the judge's clock.
	f("day rollover", p, []counter.Visit{
		person("ann", "cafe", "campus", day-3), person("bea", "cafe", "campus", day-2),
		person("cid", "cafe", "campus", day-1), person("dan", "cafe", "campus", day-1),
		person("dan", "cafe", "campus", day), person("eve", "cafe", "campus", day+1),
		person("fay", "cafe", "campus", day+2), person("gus", "cafe", "campus", day+3),
	}, Q, Q, Q, B, Q, Q, Q, B)
	f("a late visit counts against the clock's day", p, []counter.Visit{
		person("ann", "cafe", "", 0), person("bea", "cafe", "", 1), person("cid", "cafe", "", 2),
		person("dan", "home", "", day), // the clock enters the next day
		person("eve", "cafe", "", day-1000), person("fay", "cafe", "", day+1),
		person("gus", "cafe", "", day+2), person("hal", "cafe", "", day+3),
	}, Q, Q, Q, Q, Q, Q, Q, B)
	f("a late visit does not bring its day back", p, []counter.Visit{
		person("ann", "cafe", "", day-3), person("bea", "cafe", "", day-2), person("cid", "cafe", "", day-1),
		person("dan", "home", "", day),
		person("eve", "cafe", "", day-1000), person("fay", "cafe", "", day-999), person("gus", "cafe", "", day-998),
		person("hal", "cafe", "", day-997),
	}, Q, Q, Q, Q, Q, Q, Q, B)

	// Other rules first.
	f("out of window over budget", p, []counter.Visit{
		person("ann", "cafe", "", 0), person("bea", "cafe", "", 1), person("cid", "cafe", "", 2),
		person("zed", "home", "", day+int64(time.Hour/time.Millisecond)), // the first day's window expires
		person("dan", "cafe", "", 3),
	}, Q, Q, Q, Q, O)
	withVelocity := p
	withVelocity.VelocityMax, withVelocity.VelocityWindow = 4, time.Hour
	f("velocity before budget", withVelocity, []counter.Visit{
		person("ann", "cafe", "", 0), person("bea", "cafe", "", 1), person("cid", "cafe", "", 2),
		person("dan", "cafe", "", 3), person("eve", "cafe", "", 4),
	}, Q, Q, Q, B, V)
	f("mark only neither charged nor refused", p, []counter.Visit{
		markOnly(person("ann", "cafe", "", 0)), markOnly(person("bea", "cafe", "", 1)), markOnly(person("cid", "cafe", "", 2)),
		markOnly(person("dan", "cafe", "", 3)),
		person("eve", "cafe", "", 4), person("fay", "cafe", "", 5), person("gus", "cafe", "", 6),
		markOnly(person("hal", "cafe", "", 7)), person("ivy", "cafe", "", 8), person("hal", "cafe", "", 9),
	}, Q, Q, Q, Q, Q, Q, Q, Q, B, D)
}

// TestBudgetsForget checks that a day's budgets are dropped once the
// clock leaves it, and kept until then.
func TestBudgetsForget(t *testing.T) {
	p := budgetParams
	p.Expected = 100_000 // no false duplicate among the 1000
	j := mustNew(t, p)
	var visits []counter.Visit
	for i := range 1000 {
		visits = append(visits, person(strconv.Itoa(i), "n"+strconv.Itoa(i), "b"+strconv.Itoa(i%300), int64(i)))
	}
	j.Apply(visits, make([]counter.Reason, len(visits)))
	f := func(ms int64, networks, blocks int) {
		t.Helper()
		j.Apply([]counter.Visit{person("ann", "cafe", "campus", ms)}, make([]counter.Reason, 1))
		c := j.bud.campaigns["c1"]
		if len(j.bud.campaigns) != 1 || c.networks.len() != networks || c.blocks.len() != blocks {
			t.Fatalf("unexpected budgets kept at %d ms; got %d campaigns, %d networks, %d blocks; want 1, %d, %d",
				ms, len(j.bud.campaigns), c.networks.len(), c.blocks.len(), networks, blocks)
		}
	}
	f(msPerDay-1, 1001, 301)
	f(msPerDay, 1, 1)
	f(10*msPerDay, 1, 1)
}

// TestCheckpointBudgets round-trips a judge in the middle of its budgets'
// day: the restored judge refuses and allows the same visits.
func TestCheckpointBudgets(t *testing.T) {
	j := mustNew(t, budgetParams)
	first := []counter.Visit{
		person("ann", "cafe", "campus", 0), person("bea", "cafe", "campus", 1), person("cid", "home", "campus", 2),
		person("dan", "n1", "town", 3), from(visit("c2", "bob", "ann", 4), "cafe"),
	}
	j.Apply(first, make([]counter.Reason, len(first)))
	b := mustMarshal(t, j)
	r := mustNew(t, budgetParams)
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatalf("unexpected error restoring a checkpoint with budgets: %s", err)
	}
	if again := mustMarshal(t, r); !bytes.Equal(again, b) {
		t.Fatalf("unexpected checkpoint of a restored judge; got %x; want %x", again, b)
	}
	next := []counter.Visit{
		person("eve", "cafe", "campus", 10), person("fay", "cafe", "campus", 11), // the network's third, fourth
		person("gus", "home", "campus", 12), person("hal", "n2", "campus", 13), // the block's fifth, sixth
		person("ivy", "n1", "town", 14), from(visit("c2", "bob", "bea", 15), "cafe"),
		person("fay", "cafe", "campus", msPerDay), // the next day
	}
	want := []counter.Reason{Q, B, Q, B, Q, Q, Q}
	for name, judge := range map[string]*Judge{"restored": r, "original": j} {
		got := make([]counter.Reason, len(next))
		judge.Apply(next, got)
		if !slices.Equal(got, want) {
			t.Fatalf("unexpected reasons of the %s judge; got %v; want %v", name, got, want)
		}
	}
	if !bytes.Equal(mustMarshal(t, r), mustMarshal(t, j)) {
		t.Fatalf("unexpected checkpoints: the restored judge and the original differ")
	}
}

// TestCheckpointBudgetsDamaged: budget state no judge could reach is
// refused, even with a valid checksum.
func TestCheckpointBudgetsDamaged(t *testing.T) {
	f := func(name string, p Params, edit func(j *Judge)) {
		t.Helper()
		j := mustNew(t, p)
		visits := []counter.Visit{person("ann", "cafe", "campus", 0), person("bea", "home", "campus", 1)}
		j.Apply(visits, make([]counter.Reason, len(visits)))
		edit(j)
		b, err := j.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err = mustNew(t, p).UnmarshalBinary(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unexpected error for %s; got %v; want %v", name, err, ErrCorrupt)
		}
		if testing.Verbose() {
			t.Logf("%s: %s", name, err)
		}
	}
	c1 := func(j *Judge) *campaignBudget { return j.bud.campaigns["c1"] }
	// set sets the count of key, adding it when new.
	set := func(k *keyCounts, key uint64, n uint32) { k.add(key, n-k.get(key)) }
	f("a count over the network budget", budgetParams, func(j *Judge) { set(&c1(j).networks, network("cafe"), 4) })
	f("a count over the block budget", budgetParams, func(j *Judge) { set(&c1(j).blocks, in(counter.Visit{}, "campus").Block, 6) })
	f("a count of 0", budgetParams, func(j *Judge) { set(&c1(j).networks, network("cafe"), 0) })
	f("network 0", budgetParams, func(j *Judge) { set(&c1(j).networks, 0, 1) })
	f("a network twice", budgetParams, func(j *Judge) {
		k := &c1(j).networks
		k.counts = append(k.counts, k.counts[0])
	})
	f("a campaign without counts", budgetParams, func(j *Judge) {
		j.bud.campaigns["c0"] = &campaignBudget{campaign: "c0"}
	})
	noNetwork := budgetParams
	noNetwork.BudgetNetwork = 0
	f("networks without a network budget", noNetwork, func(j *Judge) { set(&c1(j).networks, network("cafe"), 1) })
	noBlock := budgetParams
	noBlock.BudgetBlock = 0
	f("blocks without a block budget", noBlock, func(j *Judge) { set(&c1(j).blocks, 1, 1) })
	f("budgets without a clock", budgetParams, func(j *Judge) {
		j.clock, j.win.byKey, j.cnt = math.MinInt64, map[windowKey]*window{}, newCounters(false)
		j.vel.forget()
	})
}

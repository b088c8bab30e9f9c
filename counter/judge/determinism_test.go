package judge

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// logParams size filters for 1,000 visitors per campaign window, so that
// the generated log's windows, which have several times more, grow
// layers (up to three each), and give the networks and blocks of genLog's people and farms
// budgets that some of them exceed.
var logParams = Params{Expected: 1000, FP: 0.01, Partitions: 4, VelocityMax: 20, VelocityWindow: 10 * time.Minute,
	BudgetNetwork: 25, BudgetBlock: 60}

// genLog returns n visits of one partition's log, seeded: two campaigns
// with two-hour dedupe windows over about 11 hours from 18:00 UTC, so
// across midnight, people who come back (with their cookie, or without
// it from their network) in 400 blocks of networks, click farms over the
// velocity limit and the budgets in one block, marks, a lagging node
// whose visits are a few seconds behind, and a spool shipped hours late,
// whose windows are gone. A person clicks one of three links of their
// creator, or (one in four) comes from a log without links.
func genLog(n int, seed uint64) []counter.Visit {
	r := rand.New(rand.NewPCG(seed, 0x6a756467))
	type person struct {
		campaign, creator string
		id                int
		net, block        uint64
		cookie            bool // the person's browser has the cookie
	}
	people := make([]person, 0, 1024)
	at := int64(t0) - int64(6*time.Hour/time.Millisecond)
	visits := make([]counter.Visit, 0, n)
	for len(visits) < n {
		at += r.Int64N(400)
		var p *person
		switch x := r.IntN(100); {
		case x < 40 || len(people) < 100:
			people = append(people, person{
				campaign: "c" + strconv.Itoa(1+r.IntN(2)),
				creator:  "creator-" + strconv.Itoa(r.IntN(40)),
				id:       len(people),
				net:      r.Uint64(),
				block:    2 + uint64(r.IntN(400)),
			})
			p = &people[len(people)-1]
			if r.IntN(10) == 0 { // behind a farm's network, 0 unknown
				p.net, p.block = uint64(r.IntN(5)), 1
			}
		default:
			p = &people[len(people)-1-r.IntN(min(len(people), 5000))]
		}
		v := counter.Visit{Campaign: p.campaign, Creator: p.creator, Link: []string{"TIKTOK01", "YOUTUBE1", "DISCORD1", ""}[p.id%4],
			Network: p.net, Block: p.block, At: at}
		if r.IntN(20) == 0 { // a lagging node
			v.At -= r.Int64N(5000)
		}
		cookie := key(p.campaign, p.creator, "cookie:"+strconv.Itoa(p.id))
		net := key(p.campaign, p.creator, "net:"+strconv.Itoa(p.id))
		switch {
		case p.cookie && r.IntN(10) > 0:
			v.Key, v.Also, v.HasAlso = cookie, net, r.IntN(2) == 0
		case p.cookie:
			v.Key = net // the cookie was cleared
		default:
			v.Key, v.Also, v.HasAlso = net, cookie, true
			p.cookie = true
		}
		v.SetWindow(time.UnixMilli(v.At), 2*time.Hour)
		v.MarkOnly = r.IntN(50) == 0
		visits = append(visits, v)
	}
	// A spool shipped late: up to 200 visits of four hours ago.
	late := min(200, n/10)
	for i := range late {
		v := visits[n/2-late+i]
		v.At -= int64(4 * time.Hour / time.Millisecond)
		v.SetWindow(time.UnixMilli(v.At), 2*time.Hour)
		visits[n/2+2*i] = v
	}
	return visits
}

func TestDeterminism(t *testing.T) {
	visits := genLog(200_000, 1)
	whole := mustNew(t, logParams)
	want := make([]counter.Reason, len(visits))
	whole.Apply(visits, want)
	whole.SetOffset([]byte("end"))
	wantCheckpoint, err := whole.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The log must exercise every decision, or this test proves little.
	var reasons counter.Counts
	for _, r := range want {
		reasons[r]++
	}
	for _, r := range []counter.Reason{Q, D, V, O, B} {
		if reasons[r] < 100 {
			t.Fatalf("unexpected reasons of the generated log; got %v; want at least 100 %s", reasons, r)
		}
	}
	if first, last := counter.DayOf(time.UnixMilli(visits[0].At)), counter.DayOf(time.UnixMilli(whole.Clock())); last != first+1 {
		t.Fatalf("unexpected days of the generated log; got %s to %s; want two", first, last)
	}
	if whole.LayersAdded() < 20 {
		t.Fatalf("unexpected layers added by the generated log; got %d; want at least 20", whole.LayersAdded())
	}
	t.Logf("reasons: qualified %d, duplicates %d, velocity %d, budget %d, out of window %d; %d layers added; checkpoint %d bytes",
		reasons[Q], reasons[D], reasons[V], reasons[B], reasons[O], whole.LayersAdded(), len(wantCheckpoint))

	// In batches of random sizes, through a checkpoint after each.
	r := rand.New(rand.NewPCG(2, 2))
	j := mustNew(t, logParams)
	got := make([]counter.Reason, len(visits))
	checkpoints := 0
	for i := 0; i < len(visits); {
		n := min(len(visits)-i, 1+r.IntN(6000))
		j.Apply(visits[i:i+n], got[i:i+n])
		i += n
		j.SetOffset(binary.AppendUvarint(nil, uint64(i)))
		b, err := j.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		j = mustNew(t, logParams)
		if err := j.UnmarshalBinary(b); err != nil {
			t.Fatalf("unexpected error resuming after visit %d: %s", i, err)
		}
		if o, _ := binary.Uvarint(j.Offset()); o != uint64(i) {
			t.Fatalf("unexpected offset after visit %d; got %d", i, o)
		}
		checkpoints++
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("unexpected reason of visit %d after %d checkpoints; got %s; want %s", i, checkpoints, got[i], want[i])
		}
	}
	j.SetOffset([]byte("end"))
	b, err := j.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, wantCheckpoint) {
		t.Fatalf("unexpected checkpoint after %d checkpoints; got %d bytes; want %d bytes like the judge that applied the log in one go", checkpoints, len(b), len(wantCheckpoint))
	}
}

// TestJudgedTwice judges one log twice from empty state, one visit at a
// time the second time: the counters and checkpoints are identical.
func TestJudgedTwice(t *testing.T) {
	visits := genLog(50_000, 3)
	a, b := mustNew(t, logParams), mustNew(t, logParams)
	out := make([]counter.Reason, len(visits))
	a.Apply(visits, out)
	for i := range visits {
		b.Apply(visits[i:i+1], out[i:i+1])
	}
	if ca, cb := a.Counts(), b.Counts(); !reflect.DeepEqual(ca, cb) {
		t.Fatalf("unexpected counters of the second judgement; got %v; want %v", cb, ca)
	}
	if ca, cb := a.LinkCounts(), b.LinkCounts(); !reflect.DeepEqual(ca, cb) || len(ca) == 0 {
		t.Fatalf("unexpected link counters of the second judgement; got %d rows; want %d", len(cb), len(ca))
	}
	ba, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	bb, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ba, bb) {
		t.Fatalf("unexpected checkpoint of the second judgement; got %d bytes; want %d identical bytes", len(bb), len(ba))
	}
	var total counter.Counts
	for _, c := range a.Counts() {
		total.Add(&c.Counts)
	}
	marks := 0
	for i := range visits {
		if visits[i].MarkOnly {
			marks++
		}
	}
	if got, want := total.Clicks(), int64(len(visits)-marks); got != want {
		t.Fatalf("unexpected clicks counted; got %d; want %d (every visit but the %d marks)", got, want, marks)
	}
	checkLinkSums(t, a, visits)
}

// checkLinkSums checks that j's link rows split its creator rows: for each
// creator and day, the links' counts are within the creator's by reason,
// Link returns each row, and what the links leave of the creators' clicks
// is exactly the visits of visits without a link.
func checkLinkSums(t *testing.T, j *Judge, visits []counter.Visit) {
	t.Helper()
	type day struct {
		campaign, creator string
		day               counter.Day
	}
	sums := map[day]counter.Counts{}
	for _, r := range j.LinkCounts() {
		if r.Link == "" {
			t.Fatalf("unexpected link row without a link: %+v", r)
		}
		k := day{r.Campaign, r.Creator, r.Day}
		c := sums[k]
		c.Add(&r.Counts)
		sums[k] = c
		if got := j.Link(r.Campaign, r.Creator, r.Link); !slices.ContainsFunc(got, func(d counter.DayCounts) bool { return d.Day == r.Day && d.Counts == r.Counts }) {
			t.Fatalf("unexpected Link(%q, %q, %q); got %v; want a day of %+v", r.Campaign, r.Creator, r.Link, got, r)
		}
	}
	unlinked := 0
	for _, r := range j.Counts() {
		k := day{r.Campaign, r.Creator, r.Day}
		linked := sums[k]
		for reason := range r.Counts {
			if linked[reason] > r.Counts[reason] {
				t.Fatalf("unexpected %s of the links of %+v; got %d; more than the creator's %d", counter.Reason(reason), k, linked[reason], r.Counts[reason])
			}
		}
		all, l := r.Counts.Clicks(), linked.Clicks()
		unlinked += int(all - l)
		delete(sums, k)
	}
	if len(sums) != 0 {
		t.Fatalf("unexpected link rows of no creator row: %v", sums)
	}
	want := 0
	for i := range visits {
		if visits[i].Link == "" && !visits[i].MarkOnly {
			want++
		}
	}
	if unlinked != want {
		t.Fatalf("unexpected visits counted for creators and no link; got %d; want %d, the visits without a link", unlinked, want)
	}
}

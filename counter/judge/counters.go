package judge

import (
	"cmp"
	"slices"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// CreatorDay is what one creator's visits in one campaign on one UTC day
// became, by reason: all of them (Judge.Counts, Link ""), or those of one
// of their links (Judge.LinkCounts).
type CreatorDay struct {
	Campaign string
	Creator  string
	Link     string
	Day      counter.Day
	Counts   counter.Counts
}

func compareCreatorDay(a, b *CreatorDay) int {
	return cmp.Or(strings.Compare(a.Campaign, b.Campaign), strings.Compare(a.Creator, b.Creator),
		strings.Compare(a.Link, b.Link), cmp.Compare(a.Day, b.Day))
}

type counterKey struct {
	owner ownerKey
	day   counter.Day
}

// ownerKey is a creator (link "") or one of their links.
type ownerKey struct{ campaign, creator, link string }

// counters are the partition's counts by (campaign, creator, day, reason),
// or with perLink by (campaign, creator, link, day, reason). Rows are
// kept in the order they were created and sorted when read, so that no
// map order reaches an output.
type counters struct {
	perLink bool
	rows    []CreatorDay
	index   map[counterKey]int
	byOwner map[ownerKey][]int // rows of one creator or link, in the order made
	last    int                // the row of the previous visit, or -1
}

func newCounters(perLink bool) counters {
	return counters{perLink: perLink, index: make(map[counterKey]int), byOwner: make(map[ownerKey][]int), last: -1}
}

// add counts one visit of v's creator (or link) and day for reason r.
func (cs *counters) add(v *counter.Visit, r counter.Reason) {
	link := ""
	if cs.perLink {
		link = v.Link
	}
	i := cs.last
	if i < 0 || cs.rows[i].Day != v.Day || cs.rows[i].Link != link || cs.rows[i].Creator != v.Creator || cs.rows[i].Campaign != v.Campaign {
		var ok bool
		i, ok = cs.index[counterKey{ownerKey{v.Campaign, v.Creator, link}, v.Day}]
		if !ok {
			i = cs.insert(CreatorDay{Campaign: strings.Clone(v.Campaign), Creator: strings.Clone(v.Creator), Link: strings.Clone(link), Day: v.Day})
		}
		cs.last = i
	}
	cs.rows[i].Counts[r]++
}

// insert appends row, whose key is new, and returns its index.
func (cs *counters) insert(row CreatorDay) int {
	cs.rows = append(cs.rows, row)
	i := len(cs.rows) - 1
	k := ownerKey{row.Campaign, row.Creator, row.Link}
	cs.index[counterKey{k, row.Day}] = i
	cs.byOwner[k] = append(cs.byOwner[k], i)
	return i
}

// days returns the counts of one creator (link "") or link by day,
// oldest first.
func (cs *counters) days(campaign, creator, link string) []counter.DayCounts {
	rows := cs.byOwner[ownerKey{campaign, creator, link}]
	days := make([]counter.DayCounts, 0, len(rows))
	for _, i := range rows {
		days = append(days, counter.DayCounts{Day: cs.rows[i].Day, Counts: cs.rows[i].Counts})
	}
	slices.SortFunc(days, func(a, b counter.DayCounts) int { return cmp.Compare(a.Day, b.Day) })
	return days
}

// sorted returns a copy of the rows in (campaign, creator, link, day)
// order.
func (cs *counters) sorted() []CreatorDay {
	rows := slices.Clone(cs.rows)
	slices.SortFunc(rows, func(a, b CreatorDay) int { return compareCreatorDay(&a, &b) })
	return rows
}

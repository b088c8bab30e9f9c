package judge

import (
	"cmp"
	"slices"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// CreatorDay is what one creator's visits in one campaign on one UTC day
// became, by reason.
type CreatorDay struct {
	Campaign string
	Creator  string
	Day      counter.Day
	Counts   counter.Counts
}

func compareCreatorDay(a, b *CreatorDay) int {
	if c := strings.Compare(a.Campaign, b.Campaign); c != 0 {
		return c
	}
	if c := strings.Compare(a.Creator, b.Creator); c != 0 {
		return c
	}
	return cmp.Compare(a.Day, b.Day)
}

type counterKey struct {
	campaign string
	creator  string
	day      counter.Day
}

// counters are the partition's counts by (campaign, creator, day, reason).
// Rows are kept in the order they were created and sorted when read, so
// that no map order reaches an output.
type counters struct {
	rows      []CreatorDay
	index     map[counterKey]int
	byCreator map[creatorKey][]int // rows of one creator, in the order made
	last      int                  // the row of the previous visit, or -1
}

type creatorKey struct{ campaign, creator string }

func newCounters() counters {
	return counters{index: make(map[counterKey]int), byCreator: make(map[creatorKey][]int), last: -1}
}

// add counts one visit of v's creator and day for reason r.
func (cs *counters) add(v *counter.Visit, r counter.Reason) {
	i := cs.last
	if i < 0 || cs.rows[i].Day != v.Day || cs.rows[i].Creator != v.Creator || cs.rows[i].Campaign != v.Campaign {
		var ok bool
		i, ok = cs.index[counterKey{v.Campaign, v.Creator, v.Day}]
		if !ok {
			i = cs.insert(CreatorDay{Campaign: strings.Clone(v.Campaign), Creator: strings.Clone(v.Creator), Day: v.Day})
		}
		cs.last = i
	}
	cs.rows[i].Counts[r]++
}

// insert appends row, whose key is new, and returns its index.
func (cs *counters) insert(row CreatorDay) int {
	cs.rows = append(cs.rows, row)
	i := len(cs.rows) - 1
	cs.index[counterKey{row.Campaign, row.Creator, row.Day}] = i
	k := creatorKey{row.Campaign, row.Creator}
	cs.byCreator[k] = append(cs.byCreator[k], i)
	return i
}

// creator returns the counts of one creator by day, oldest first.
func (cs *counters) creator(campaign, creator string) []counter.DayCounts {
	rows := cs.byCreator[creatorKey{campaign, creator}]
	days := make([]counter.DayCounts, 0, len(rows))
	for _, i := range rows {
		days = append(days, counter.DayCounts{Day: cs.rows[i].Day, Counts: cs.rows[i].Counts})
	}
	slices.SortFunc(days, func(a, b counter.DayCounts) int { return cmp.Compare(a.Day, b.Day) })
	return days
}

// sorted returns a copy of the rows in (campaign, creator, day) order.
func (cs *counters) sorted() []CreatorDay {
	rows := slices.Clone(cs.rows)
	slices.SortFunc(rows, func(a, b CreatorDay) int { return compareCreatorDay(&a, &b) })
	return rows
}

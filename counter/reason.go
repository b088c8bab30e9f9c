package counter

import (
	"strconv"
	"time"
)

// Reason is what became of one click. Every click has exactly one reason,
// so clicks are the sum over reasons and are never stored.
type Reason uint8

const (
	// Qualified is a visit that passed dedupe and was counted: it is paid.
	Qualified Reason = iota
	// Duplicate is a visitor already counted for the creator in the window.
	Duplicate
	// Uncounted is a visit the store could not commit.
	Uncounted
	// Bot is a crawler, an automation tool or an implausible User-Agent.
	Bot
	// Preview is a link-unfurl fetcher; it got the preview page.
	Preview
	// Prefetch is a HEAD, a prefetch or a fetch that is not a navigation.
	Prefetch
	// Velocity is a click from a network over the click-rate limit.
	Velocity
	// OutOfWindow is a click before the campaign starts or after it ends.
	OutOfWindow
	// Inactive is a click on a link of a creator who is not active.
	Inactive
	// Signup is not a click: a new user attributed to the creator.
	Signup
	// Budget is a person's visit that would have qualified, from a
	// network (Visit.Network) or a block of networks (Visit.Block) that
	// already had its daily budget of qualified visits in the campaign:
	// redirected, not paid. It comes after Signup so that no reason
	// stored by its number (the judge's checkpoint) changes meaning.
	Budget
	// NumReasons is the number of reasons; keep it last.
	NumReasons
)

// Pending is no reason that a click is counted under, and is never
// stored: it is what Store.Commit answers for a visit that is durable in
// its partition's log and is decided later, by the partition's judge.
const Pending = NumReasons

// reasonNames are the names used in stats and in the stores' keys. A name,
// once stored, never changes meaning.
var reasonNames = [NumReasons]string{
	Qualified:   "qualified",
	Duplicate:   "duplicates",
	Uncounted:   "uncounted",
	Bot:         "bots",
	Preview:     "previews",
	Prefetch:    "prefetches",
	Velocity:    "velocity",
	OutOfWindow: "out_of_window",
	Inactive:    "inactive",
	Signup:      "signups",
	Budget:      "budget",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	if r == Pending {
		return "pending"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ParseReason returns the reason named name.
func ParseReason(name string) (Reason, bool) {
	for r, n := range reasonNames {
		if n == name {
			return Reason(r), true
		}
	}
	return 0, false
}

// Day is a UTC calendar day, counted from the Unix epoch.
type Day int32

// DayOf returns the UTC day of t.
func DayOf(t time.Time) Day {
	s := t.Unix()
	if s < 0 {
		return Day((s - 86399) / 86400)
	}
	return Day(s / 86400)
}

// Time returns the start of the day.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// String returns the day as 2006-01-02.
func (d Day) String() string { return d.Time().Format(time.DateOnly) }

// ParseDay parses 2006-01-02.
func ParseDay(s string) (Day, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, err
	}
	return DayOf(t), nil
}

// Counts holds one number per reason.
type Counts [NumReasons]int64

// Clicks is every click, whatever became of it.
func (c *Counts) Clicks() int64 {
	var n int64
	for r, v := range c {
		if Reason(r) != Signup {
			n += v
		}
	}
	return n
}

// Add adds o to c.
func (c *Counts) Add(o *Counts) {
	for i := range c {
		c[i] += o[i]
	}
}

// DayCounts are the counts of one UTC day.
type DayCounts struct {
	Day    Day
	Counts Counts
}

// MergeDays adds b's counts to a's, both oldest first.
func MergeDays(a, b []DayCounts) []DayCounts {
	out := make([]DayCounts, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0].Day < b[0].Day:
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0].Day < a[0].Day:
			out, b = append(out, b[0]), b[1:]
		default:
			d := a[0]
			for r := range d.Counts {
				d.Counts[r] += b[0].Counts[r]
			}
			out, a, b = append(out, d), a[1:], b[1:]
		}
	}
	return out
}

// Count is a number of clicks of one reason to add to a creator's
// counters, and to those of the creator's link Link when it is set.
type Count struct {
	Campaign string
	Creator  string
	Link     string // the code of the link clicked; "" counts for the creator only
	Day      Day
	Reason   Reason
	N        int64
}

// Total sums per-day counts.
func Total(days []DayCounts) Counts {
	var t Counts
	for i := range days {
		t.Add(&days[i].Counts)
	}
	return t
}

package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/payout"
)

// The figures the pages show, from the catalog, the counters and the
// ledger. What is earned is computed by counter/payout, as the statement
// is.

// campaignFigures are a campaign's creators with their counts.
type campaignFigures struct {
	Campaign counter.Campaign
	Creators []counter.Creator
	Links    []counter.Link
	// Days are every creator's counts, added up by day.
	Days  []counter.DayCounts
	Total counter.Counts
	Rows  []leaderRow
	// EarnedCents is what the creators would be paid on the counts as
	// they stand (capped, payable creators only).
	EarnedCents int64
}

// leaderRow is one creator on a campaign's leaderboard.
type leaderRow struct {
	Creator counter.Creator
	Counts  counter.Counts
	Payout  payout.Row
	// CapPercent is how far the earnings are to the cap, 0 to 100.
	CapPercent int64
}

// figures reads campaign c's creators, links and counts from cat.
func (s *Server) figures(ctx context.Context, cat *counter.Catalog, c counter.Campaign) (*campaignFigures, error) {
	f := &campaignFigures{Campaign: c}
	for _, cr := range cat.Creators {
		if cr.Campaign == c.ID {
			f.Creators = append(f.Creators, cr)
		}
	}
	for _, l := range cat.Links {
		if l.Campaign == c.ID {
			f.Links = append(f.Links, l)
		}
	}
	slices.SortFunc(f.Links, func(a, b counter.Link) int {
		return cmp.Or(cmp.Compare(a.Creator, b.Creator), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Code, b.Code))
	})
	byDay := map[counter.Day]*counter.Counts{}
	counts := map[string]counter.Counts{}
	totals := map[string]payout.Totals{}
	for _, cr := range f.Creators {
		days, err := s.o.Stats.Stats(ctx, c.ID, cr.ID)
		if err != nil {
			return nil, fmt.Errorf("cannot read the stats of creator %q: %w", cr.ID, err)
		}
		for _, d := range days {
			if byDay[d.Day] == nil {
				byDay[d.Day] = new(counter.Counts)
			}
			byDay[d.Day].Add(&d.Counts)
		}
		t := counter.Total(days)
		counts[cr.ID] = t
		f.Total.Add(&t)
		totals[cr.ID] = payout.Totals{Qualified: t[counter.Qualified], Signups: t[counter.Signup]}
	}
	for d, n := range byDay {
		f.Days = append(f.Days, counter.DayCounts{Day: d, Counts: *n})
	}
	slices.SortFunc(f.Days, func(a, b counter.DayCounts) int { return cmp.Compare(a.Day, b.Day) })
	st, err := payout.Compute(c, ledger.Standing, f.Creators, totals)
	if err != nil {
		return nil, fmt.Errorf("cannot compute the earnings of campaign %q: %w", c.ID, err)
	}
	f.EarnedCents = st.TotalCents
	rows := map[string]payout.Row{}
	for _, r := range st.Rows {
		rows[r.CreatorID] = r
	}
	for _, cr := range f.Creators {
		r := leaderRow{Creator: cr, Counts: counts[cr.ID], Payout: rows[cr.ID]}
		r.CapPercent = capPercent(r.Payout.EarnedCents, c.CapCents)
		f.Rows = append(f.Rows, r)
	}
	slices.SortFunc(f.Rows, func(a, b leaderRow) int {
		return cmp.Or(cmp.Compare(b.Payout.EarnedCents, a.Payout.EarnedCents),
			cmp.Compare(b.Counts[counter.Qualified], a.Counts[counter.Qualified]), cmp.Compare(a.Creator.ID, b.Creator.ID))
	})
	return f, nil
}

func capPercent(earned, capCents int64) int64 {
	if capCents <= 0 {
		return 100
	}
	return min(100, earned*100/capCents)
}

// payableStatus says where campaign c stands towards its payout at now:
// running, in its signup grace, payable, or sealed in this node's ledger.
func payableStatus(c counter.Campaign, now time.Time, rep *ledger.Report) (status string, sealed bool) {
	switch {
	case now.Before(c.StartsAt):
		return "starts " + c.StartsAt.Format(time.DateOnly), false
	case now.Before(c.EndsAt):
		return "running until " + c.EndsAt.Format(time.DateOnly), false
	case !now.After(c.PayableAfter()):
		return "ended; payable after " + c.PayableAfter().Format(time.RFC3339), false
	case rep == nil:
		return "payable; this node keeps no ledger", false
	}
	if st, ok := rep.Statements[c.ID]; ok {
		return "sealed: " + money(st.TotalCents) + " final statement", true
	}
	return "payable; sealed at the next flush", false
}

// money formats cents as dollars: $1,250.00.
func money(cents int64) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	b.WriteByte('$')
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	fmt.Fprintf(&b, ".%02d", cents%100)
	return b.String()
}

// number formats a count with thousands separators.
func number(n int64) string {
	s := money(n * 100)
	s = strings.TrimSuffix(s, ".00")
	return strings.Replace(s, "$", "", 1)
}

var funcs = template.FuncMap{
	"money":  money,
	"number": number,
	"day":    func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"reason": func(c counter.Counts, name string) int64 {
		r, ok := counter.ParseReason(name)
		if !ok {
			panic("BUG: no reason " + name)
		}
		return c[r]
	},
	"add":    func(a, b int) int { return a + b },
	"clicks": func(c counter.Counts) int64 { return c.Clicks() },
	"duration": func(d counter.Duration) string {
		return strings.TrimSuffix(strings.TrimSuffix(time.Duration(d).String(), "0s"), "0m")
	},
}

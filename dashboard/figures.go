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

// campaignFigures are a campaign's counts, and a page of its creators
// with theirs.
type campaignFigures struct {
	Campaign counter.Campaign
	// Creators is the number of the campaign's creators.
	Creators int
	// Days are every creator's counts, added up by day.
	Days  []counter.DayCounts
	Total counter.Counts
	// Rows are the creators of one page of the list, by earnings.
	Rows []leaderRow
	// EarnedCents is what the creators of Rows would be paid on the
	// counts as they stand (capped, payable creators only); it is the
	// campaign's when Rows are all its creators.
	EarnedCents int64
	// NextCreators is the cursor of the next page of creators, or "".
	NextCreators string
}

// leaderRow is one creator on a campaign's leaderboard.
type leaderRow struct {
	Creator counter.Creator
	Counts  counter.Counts
	Payout  payout.Row
	// CapPercent is how far the earnings are to the cap, 0 to 100.
	CapPercent int64
}

// figures reads campaign c's counts, and those of one page of its
// creators (cursor "" for the first).
func (s *Server) figures(ctx context.Context, c counter.Campaign, cursor string) (*campaignFigures, error) {
	t, err := s.campaignTotals(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	f := &campaignFigures{Campaign: c, Creators: t.Creators, Days: t.Days, Total: t.Total}
	creators, next, err := s.creatorList(ctx, c.ID, cursor)
	if err != nil {
		return nil, err
	}
	f.NextCreators = next
	rows, earned, err := s.leaderRows(ctx, c, creators)
	if err != nil {
		return nil, err
	}
	f.Rows, f.EarnedCents = rows, earned
	return f, nil
}

// leaderRows reads the counts of creators and ranks them by earnings.
func (s *Server) leaderRows(ctx context.Context, c counter.Campaign, creators []counter.Creator) ([]leaderRow, int64, error) {
	counts := map[string]counter.Counts{}
	totals := map[string]payout.Totals{}
	for _, cr := range creators {
		days, err := s.o.Stats.Stats(ctx, c.ID, cr.ID)
		if err != nil {
			return nil, 0, fmt.Errorf("cannot read the stats of creator %q: %w", cr.ID, err)
		}
		t := counter.Total(days)
		counts[cr.ID] = t
		totals[cr.ID] = payout.Totals{Qualified: t[counter.Qualified], Signups: t[counter.Signup]}
	}
	st, err := payout.Compute(c, ledger.Standing, creators, totals)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot compute the earnings of campaign %q: %w", c.ID, err)
	}
	byID := map[string]payout.Row{}
	for _, r := range st.Rows {
		byID[r.CreatorID] = r
	}
	var rows []leaderRow
	for _, cr := range creators {
		r := leaderRow{Creator: cr, Counts: counts[cr.ID], Payout: byID[cr.ID]}
		r.CapPercent = capPercent(r.Payout.EarnedCents, c.CapCents)
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b leaderRow) int {
		return cmp.Or(cmp.Compare(b.Payout.EarnedCents, a.Payout.EarnedCents),
			cmp.Compare(b.Counts[counter.Qualified], a.Counts[counter.Qualified]), cmp.Compare(a.Creator.ID, b.Creator.ID))
	})
	return rows, st.TotalCents, nil
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

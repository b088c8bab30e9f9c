package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// FlushResult is what one Flush wrote and what it noticed.
type FlushResult struct {
	Batch Batch // Seq 0 when nothing changed and nothing was written
	// Behind lists creators whose store totals are below the ledger's,
	// as when Redis lost its last second of writes. The ledger keeps its
	// higher totals: it never takes back what it recorded.
	Behind []Key
}

// Flush moves every creator's cumulative totals (qualified visits and
// signups) from the store into the ledger as one batch, with the campaign
// terms and creator details that changed, so that payouts need nothing but
// the ledger. The batch is one
// record, fsynced before Flush returns: a crash before that leaves nothing
// (or a torn tail that Open truncates), so a later Flush writes it again,
// once. Totals are cumulative, so a repeated flush cannot double count.
func Flush(ctx context.Context, s counter.Store, l *Ledger, now time.Time) (FlushResult, error) {
	var res FlushResult
	cat, err := s.Catalog(ctx)
	if err != nil {
		return res, fmt.Errorf("cannot read the catalog: %w", err)
	}
	// One snapshot: the totals and terms of the same moment.
	snap := l.Snapshot()
	old, oldTerms := snap.Totals, snap.Campaigns
	var terms []Terms
	for _, c := range cat.Campaigns {
		t := TermsOf(&c)
		if o, ok := oldTerms[c.ID]; !ok || !termsEqual(o, t) {
			terms = append(terms, t)
		}
	}
	var entries []Entry
	for _, c := range cat.Creators {
		days, err := s.Stats(ctx, c.Campaign, c.ID)
		if err != nil {
			return res, fmt.Errorf("cannot read the totals of creator %q in campaign %q: %w", c.ID, c.Campaign, err)
		}
		t := counter.Total(days)
		k := Key{c.Campaign, c.ID}
		e := Entry{Campaign: c.Campaign, Creator: c.ID, Qualified: t[counter.Qualified], Signups: t[counter.Signup],
			Handle: c.Handle, Country: c.Country, Status: c.Status}
		o := old[k]
		if e.Qualified < o.Qualified || e.Signups < o.Signups {
			res.Behind = append(res.Behind, k)
			e.Qualified, e.Signups = max(e.Qualified, o.Qualified), max(e.Signups, o.Signups)
		}
		if e != o {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 && len(terms) == 0 {
		return res, nil
	}
	res.Batch, err = l.Append(Batch{At: now.UTC(), Entries: entries, Campaigns: terms})
	return res, err
}

// TermsOf returns the payout terms of c.
func TermsOf(c *counter.Campaign) Terms {
	return Terms{ID: c.ID, Name: c.Name, SignupRewardCents: c.SignupRewardCents, VisitBlockSize: c.VisitBlockSize,
		VisitBlockRewardCents: c.VisitBlockRewardCents, CapCents: c.CapCents, EligibleCountries: c.EligibleCountries,
		PayableAfter: c.EndsAt.Add(time.Duration(c.SignupGrace)).UTC()}
}

// Campaign returns the terms as a campaign, for payout.Compute.
func (t Terms) Campaign() counter.Campaign {
	return counter.Campaign{ID: t.ID, Name: t.Name, SignupRewardCents: t.SignupRewardCents, VisitBlockSize: t.VisitBlockSize,
		VisitBlockRewardCents: t.VisitBlockRewardCents, CapCents: t.CapCents, EligibleCountries: t.EligibleCountries}
}

func termsEqual(a, b Terms) bool {
	return a.ID == b.ID && a.Name == b.Name && a.SignupRewardCents == b.SignupRewardCents && a.VisitBlockSize == b.VisitBlockSize &&
		a.VisitBlockRewardCents == b.VisitBlockRewardCents && a.CapCents == b.CapCents && a.PayableAfter.Equal(b.PayableAfter) &&
		slices.Equal(a.EligibleCountries, b.EligibleCountries)
}

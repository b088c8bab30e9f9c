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
	Batch Batch // Seq 0 when no total or term changed and nothing was written
	// Sealed is the record that sealed the final statements of the
	// campaigns that became payable; Seq 0 when none did.
	Sealed Batch
	// Behind lists creators whose store totals are below the ledger's,
	// as when Redis lost its last second of writes. The ledger keeps its
	// higher totals: it never takes back what it recorded.
	Behind []Key
	// Unsettled lists the campaigns past their end plus signup grace whose
	// statement this flush did not seal, as the store could not say that
	// every visit appended before was decided (counter.Settler). A later
	// flush seals them once it can.
	Unsettled []Unsettled
}

// Unsettled is a campaign whose final statement waits, and why.
type Unsettled struct {
	Campaign string
	Err      error
}

// FlushSummary is what one flush wrote, for logs and operators.
type FlushSummary struct {
	Seq      uint64   `json:"seq"`      // the record of totals and terms; 0 when none changed
	Creators int      `json:"creators"` // creators whose totals or details changed
	Terms    int      `json:"terms"`    // campaigns whose terms changed
	Sealed   []string `json:"sealed"`   // campaigns whose final statements were sealed
	Behind   []Key    `json:"behind"`   // creators whose store totals are below the ledger's
	// Unsettled are the campaigns past their end plus grace whose
	// statement waits for visits to be decided.
	Unsettled []string `json:"unsettled"`
	LastSeq   uint64   `json:"last_seq"` // the ledger's last record after the flush
	Head      string   `json:"head"`     // the ledger's head after the flush
}

// Summary summarizes r, with rep the ledger after it.
func (r FlushResult) Summary(rep Report) FlushSummary {
	s := FlushSummary{Seq: r.Batch.Seq, Creators: len(r.Batch.Entries), Terms: len(r.Batch.Campaigns),
		Sealed: []string{}, Behind: r.Behind, Unsettled: []string{}, LastSeq: rep.LastSeq, Head: rep.Head}
	for _, st := range r.Sealed.Statements {
		s.Sealed = append(s.Sealed, st.Campaign)
	}
	for _, u := range r.Unsettled {
		s.Unsettled = append(s.Unsettled, u.Campaign)
	}
	if s.Behind == nil {
		s.Behind = []Key{}
	}
	return s
}

// Flush moves every creator's cumulative totals (qualified visits and
// signups) from the store into the ledger as one batch, with the campaign
// terms and creator details that changed (handle, country, status and the
// time the creator accepted the terms), so that payouts need nothing but
// the ledger. The batch is one
// record, fsynced before Flush returns: a crash before that leaves nothing
// (or a torn tail that Open truncates), so a later Flush writes it again,
// once. Totals are cumulative, so a repeated flush cannot double count.
//
// Then, whether or not anything changed, every campaign whose end plus
// signup grace has passed by now and whose statement is not sealed gets
// its final statement sealed, in a record of its own: computed from the
// ledger as it stands, it never changes afterwards. With a store that is
// a counter.Settler, such a campaign settles before its totals are read,
// and one that does not is left for a later flush (FlushResult.Unsettled).
func Flush(ctx context.Context, s counter.Store, l *Ledger, now time.Time) (FlushResult, error) {
	var res FlushResult
	cat, err := s.Roster(ctx)
	if err != nil {
		return res, fmt.Errorf("cannot read the catalog: %w", err)
	}
	// One snapshot: the totals and terms of the same moment.
	snap := l.Snapshot()
	old, oldTerms := snap.Totals, snap.Campaigns
	// A campaign this flush would seal settles first, so that the totals
	// read below hold every visit appended before its end.
	unsettled := map[string]bool{}
	if st, ok := s.(counter.Settler); ok {
		for _, c := range cat.Campaigns {
			if _, sealed := snap.Statements[c.ID]; sealed || !now.After(c.PayableAfter()) {
				continue
			}
			if err := st.Settle(ctx, c.ID); err != nil {
				unsettled[c.ID] = true
				res.Unsettled = append(res.Unsettled, Unsettled{c.ID, err})
			}
		}
	}
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
			Handle: c.Handle, Country: c.Country, Status: c.Status, AcceptedAt: c.AcceptedAt.UTC()}
		o := old[k]
		if e.Qualified < o.Qualified || e.Signups < o.Signups {
			res.Behind = append(res.Behind, k)
			e.Qualified, e.Signups = max(e.Qualified, o.Qualified), max(e.Signups, o.Signups)
		}
		if !o.AcceptedAt.IsZero() {
			// The first acceptance the ledger recorded stays, as its
			// totals do: a store that lost it cannot take it back.
			e.AcceptedAt = o.AcceptedAt
		}
		if !sameEntry(e, o) {
			entries = append(entries, e)
		}
	}
	if len(entries) > 0 || len(terms) > 0 {
		if res.Batch, err = l.Append(Batch{At: now, Entries: entries, Campaigns: terms}); err != nil {
			return res, err
		}
	}
	seal := slices.DeleteFunc(l.Snapshot().Payable(now), func(id string) bool { return unsettled[id] })
	if len(seal) > 0 {
		res.Sealed, err = l.Append(Batch{At: now, Seal: seal})
	}
	return res, err
}

func sameEntry(a, b Entry) bool {
	return a.Campaign == b.Campaign && a.Creator == b.Creator && a.Qualified == b.Qualified && a.Signups == b.Signups &&
		a.Handle == b.Handle && a.Country == b.Country && a.Status == b.Status && a.AcceptedAt.Equal(b.AcceptedAt)
}

// TermsOf returns the payout terms of c.
func TermsOf(c *counter.Campaign) Terms {
	return Terms{ID: c.ID, Name: c.Name, SignupRewardCents: c.SignupRewardCents, VisitBlockSize: c.VisitBlockSize,
		VisitBlockRewardCents: c.VisitBlockRewardCents, CapCents: c.CapCents, EligibleCountries: c.EligibleCountries,
		PayableAfter: c.PayableAfter()}
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

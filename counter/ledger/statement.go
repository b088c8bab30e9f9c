package ledger

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/payout"
)

// ErrNotPayable means a campaign's final statement is not sealed yet.
var ErrNotPayable = errors.New("ledger: not payable yet")

// statement computes the final statement of campaign from the ledger as it
// stands, to be sealed by a record written at time at: the campaign's
// terms and its creators as last flushed, and their totals. It refuses a
// campaign that is unknown, sealed already, or not payable at at (its end
// plus signup grace has not passed), so that a statement holds every
// visit and signup and is written once.
func (st *state) statement(campaign string, at time.Time) (payout.Statement, error) {
	t, ok := st.campaigns[campaign]
	switch {
	case !ok:
		return payout.Statement{}, fmt.Errorf("campaign %q is not in the ledger", campaign)
	case st.statements[campaign].Campaign != "":
		return payout.Statement{}, fmt.Errorf("the statement of campaign %q is sealed already", campaign)
	case !at.After(t.PayableAfter):
		return payout.Statement{}, fmt.Errorf("campaign %q is payable after %s, not at %s",
			campaign, t.PayableAfter.Format(time.RFC3339), at.Format(time.RFC3339))
	}
	s, err := compute(t, payout.Final, st.totals)
	if err != nil {
		return s, err
	}
	s.LedgerHead = hex.EncodeToString(st.head[:])
	return s, nil
}

// compute computes statement of the campaign of terms t from the ledger's
// totals: its creators as last flushed, and their totals.
func compute(t Terms, statement string, ledgerTotals map[Key]Entry) (payout.Statement, error) {
	var creators []counter.Creator
	totals := map[string]payout.Totals{}
	for k, e := range ledgerTotals {
		if k.Campaign != t.ID {
			continue
		}
		creators = append(creators, counter.Creator{ID: e.Creator, Campaign: t.ID, Handle: e.Handle, Country: e.Country, Status: e.Status})
		totals[e.Creator] = payout.Totals{Qualified: e.Qualified, Signups: e.Signups}
	}
	return payout.Compute(t.Campaign(), statement, creators, totals)
}

// Standing is what the statement of a campaign says now: its sealed final
// statement, or before it is sealed, a statement named Standing computed
// from the ledger as it stands, which is what the final one will be if no
// total changes (for operators and metrics; it is never paid out).
func (r Report) Standing(campaign string) (payout.Statement, error) {
	if s, ok := r.Statements[campaign]; ok {
		return s, nil
	}
	t, ok := r.Campaigns[campaign]
	if !ok {
		return payout.Statement{}, fmt.Errorf("campaign %q is not in the ledger", campaign)
	}
	return compute(t, Standing, r.Totals)
}

// Standing names a statement that is not sealed: see Report.Standing.
const Standing = "standing"

// sameStatement compares statements by their encoding in a record.
func sameStatement(a, b payout.Statement) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && slices.Equal(x, y)
}

// Statement returns the sealed final statement of campaign. Before it is
// sealed, the error matches ErrNotPayable and says when it can be.
func (r Report) Statement(campaign string) (payout.Statement, error) {
	if s, ok := r.Statements[campaign]; ok {
		return s, nil
	}
	t, ok := r.Campaigns[campaign]
	if !ok {
		return payout.Statement{}, fmt.Errorf("campaign %q is not in the ledger: not flushed yet, or not a campaign of the store this ledger flushes", campaign)
	}
	return payout.Statement{}, fmt.Errorf("%w: campaign %q is payable after %s (its end plus signup grace); the first flush after that seals its statement, and the ledger was last written at %s",
		ErrNotPayable, campaign, t.PayableAfter.Format(time.RFC3339), r.LastAt.Format(time.RFC3339))
}

// Payable returns the campaigns whose statement a record written at time at
// would seal: known, not sealed, and past their end plus signup grace.
func (r Report) Payable(at time.Time) []string {
	var ids []string
	for id, t := range r.Campaigns {
		if _, sealed := r.Statements[id]; !sealed && at.After(t.PayableAfter) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

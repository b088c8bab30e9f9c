package payout

import (
	"errors"
	"fmt"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
)

// Final is the one statement of a campaign. Amounts are cumulative, so a
// second statement would pay again: there is no other.
const Final = "final"

// ErrNotPayable means the campaign cannot be paid yet.
var ErrNotPayable = errors.New("payout: not payable yet")

// FromLedger computes a campaign's final statement from a verified ledger
// alone: its terms and its creators as last flushed, and their totals. It
// refuses until the ledger holds a flush made after the campaign's end and
// signup grace, so that the statement holds every visit and signup.
func FromLedger(rep ledger.Report, campaign string) (Statement, error) {
	t, ok := rep.Campaigns[campaign]
	if !ok {
		return Statement{}, fmt.Errorf("campaign %q is not in the ledger", campaign)
	}
	if !rep.LastAt.After(t.PayableAfter) {
		return Statement{}, fmt.Errorf("%w: campaign %q is payable after %s, and the ledger was last flushed at %s",
			ErrNotPayable, campaign, t.PayableAfter.Format(time.RFC3339), rep.LastAt.Format(time.RFC3339))
	}
	var creators []counter.Creator
	totals := map[string]Totals{}
	for k, e := range rep.Totals {
		if k.Campaign != campaign {
			continue
		}
		creators = append(creators, counter.Creator{ID: e.Creator, Campaign: campaign, Handle: e.Handle, Country: e.Country, Status: e.Status})
		totals[e.Creator] = Totals{Qualified: e.Qualified, Signups: e.Signups}
	}
	return Compute(t.Campaign(), Final, creators, totals)
}

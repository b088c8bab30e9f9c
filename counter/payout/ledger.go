package payout

import (
	"fmt"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
)

// FromLedger computes a campaign's statement from a verified ledger alone:
// its terms and its creators as last flushed, and their totals.
func FromLedger(rep ledger.Report, campaign, statement string) (Statement, error) {
	t, ok := rep.Campaigns[campaign]
	if !ok {
		return Statement{}, fmt.Errorf("campaign %q is not in the ledger", campaign)
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
	return Compute(t.Campaign(), statement, creators, totals)
}

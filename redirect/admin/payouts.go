package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/payout"
)

// DefaultStatement names the one statement of a campaign, paid after it ends.
const DefaultStatement = "final"

// rawBody is an answer that is not JSON.
type rawBody struct {
	contentType string
	data        []byte
}

// payouts computes a campaign's statement from the ledger's totals, read
// with Verify so that nothing is paid from a ledger that does not verify,
// and the catalog's terms and creators.
func (a *API) payouts(ctx context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if err := checkID("campaign", id); err != nil {
		return 0, nil, err
	}
	if a.o.Ledger == "" {
		return 0, nil, errorf(fasthttp.StatusNotFound, "this node keeps no ledger")
	}
	statement := string(rc.QueryArgs().Peek("statement"))
	if statement == "" {
		statement = DefaultStatement
	}
	if !validID(statement) {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "statement %q must be 1 to 64 letters, digits, '_', '-' or '.'", statement)
	}
	format := string(rc.QueryArgs().Peek("format"))
	if format != "" && format != "csv" && format != "json" {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "format=%q: want csv or json", format)
	}
	camp, err := a.o.Store.Campaign(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	cat, err := a.o.Store.Catalog(ctx)
	if err != nil {
		return 0, nil, err
	}
	rep, err := ledger.Verify(a.o.Ledger)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, nil, fmt.Errorf("ledger does not verify; no payout: %w", err)
	}
	totals := map[string]payout.Totals{}
	for k, e := range rep.Totals {
		if k.Campaign == id {
			totals[k.Creator] = payout.Totals{Qualified: e.Qualified, Signups: e.Signups}
		}
	}
	var creators []counter.Creator
	for _, c := range cat.Creators {
		if c.Campaign == id {
			creators = append(creators, c)
		}
	}
	st, err := payout.Compute(camp, statement, creators, totals)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot compute payouts of campaign %q: %w", id, err)
	}
	var b bytes.Buffer
	if format == "csv" {
		err = payout.WriteCSV(&b, st.Rows)
	} else {
		err = payout.WriteJSON(&b, st)
	}
	if err != nil {
		return 0, nil, err
	}
	ct := "application/json"
	if format == "csv" {
		ct = "text/csv; charset=utf-8"
	}
	return fasthttp.StatusOK, rawBody{ct, b.Bytes()}, nil
}

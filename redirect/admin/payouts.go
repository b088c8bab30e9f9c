package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/valyala/fasthttp"

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

// payouts computes a campaign's statement from the ledger alone, read with
// Verify, so that nothing is paid from a ledger that does not verify.
func (a *API) payouts(_ context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
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
	rep, err := ledger.Verify(a.o.Ledger)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, errorf(fasthttp.StatusNotFound, "the ledger is empty: nothing was flushed yet")
	} else if err != nil {
		return 0, nil, fmt.Errorf("ledger does not verify; no payout: %w", err)
	}
	if _, ok := rep.Campaigns[id]; !ok {
		return 0, nil, errorf(fasthttp.StatusNotFound, "campaign %q is not in the ledger yet", id)
	}
	st, err := payout.FromLedger(rep, id, statement)
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

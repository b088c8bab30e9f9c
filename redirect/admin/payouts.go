package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter/payout"
)

// rawBody is an answer that is not JSON.
type rawBody struct {
	contentType string
	data        []byte
}

// payouts computes a campaign's final statement from this node's open
// ledger alone, read under its writer's lock.
func (a *API) payouts(_ context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if err := checkID("campaign", id); err != nil {
		return 0, nil, err
	}
	if a.o.Ledger == nil {
		return 0, nil, errorf(fasthttp.StatusNotFound, "this node does not flush a ledger; ask the node that does, or run clickgate payouts --ledger DIR")
	}
	format := string(rc.QueryArgs().Peek("format"))
	if format != "" && format != "csv" && format != "json" {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "format=%q: want csv or json", format)
	}
	rep := a.o.Ledger.Snapshot()
	if _, ok := rep.Campaigns[id]; !ok {
		return 0, nil, errorf(fasthttp.StatusNotFound, "campaign %q is not in the ledger yet", id)
	}
	st, err := payout.FromLedger(rep, id)
	if errors.Is(err, payout.ErrNotPayable) {
		return 0, nil, errorf(fasthttp.StatusConflict, "%s", err)
	} else if err != nil {
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

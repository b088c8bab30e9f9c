package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/payout"
)

// rawBody is an answer that serve writes as it is: not JSON, or JSON
// encoded by the endpoint (a bulk import's answer, a chunk at a time).
type rawBody struct {
	contentType string
	data        []byte
}

var errNoFlusher = errorf(fasthttp.StatusNotFound, "this node does not flush a ledger (--flush-interval 0); ask the node that does, or run clickgate payouts --ledger DIR")

// payouts serves a campaign's final statement as sealed in this node's
// ledger, read under its writer's lock.
func (a *API) payouts(ctx context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if err := checkID("campaign", id); err != nil {
		return 0, nil, err
	}
	if a.o.Flusher == nil {
		return 0, nil, errNoFlusher
	}
	format := string(rc.QueryArgs().Peek("format"))
	if format != "" && format != "csv" && format != "json" {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "format=%q: want csv or json", format)
	}
	rep := a.o.Flusher.Snapshot()
	next := a.o.Flusher.NextFlush().Format(time.RFC3339)
	if _, ok := rep.Campaigns[id]; !ok {
		c, err := a.o.Store.Campaign(ctx, id)
		if err != nil {
			return 0, nil, err
		}
		return 0, nil, errorf(fasthttp.StatusConflict, "not payable yet: campaign %q is payable after %s (its end plus signup grace), and it is not in the ledger yet; the next flush is due at %s",
			id, c.PayableAfter().Format(time.RFC3339), next)
	}
	st, err := rep.Statement(id)
	if errors.Is(err, ledger.ErrNotPayable) {
		return 0, nil, errorf(fasthttp.StatusConflict, "%s; the next flush is due at %s (POST /v1/flush flushes now)",
			err, next)
	} else if err != nil {
		return 0, nil, fmt.Errorf("cannot read the statement of campaign %q: %w", id, err)
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

// flush flushes the store into this node's ledger now and answers with
// what it wrote.
func (a *API) flush(ctx context.Context) (int, any, error) {
	if a.o.Flusher == nil {
		return 0, nil, errNoFlusher
	}
	res, err := a.o.Flusher.Flush(ctx)
	if errors.Is(err, ledger.ErrBroken) {
		// The disk's fault, not the request's: the next flush repairs
		// the ledger first (see ledger.ErrBroken).
		return 0, nil, errorf(fasthttp.StatusServiceUnavailable, "cannot write the ledger; the next flush tries again: %s", err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("cannot flush: %w", err)
	}
	return fasthttp.StatusOK, res.Summary(a.o.Flusher.Snapshot()), nil
}

package admin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// Conversions: the app's backend reports a signup with the click id it got
// from the redirect. Authenticated with the app key, never the admin token:
// either "Authorization: Bearer <app key>", or a signed body,
// "X-Clickgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(app key, t + "." + body)>".
//
// A conversion is judged at its arrival, the server's clock when the request
// is served, not by the time it claims:
//
//   - after the campaign's ends_at + signup_grace it is 409, whatever its
//     occurred_at: a conversion cannot be backdated into the campaign;
//   - occurred_at may not be later than the arrival nor earlier than the
//     click (422). There is no allowance for clock skew either way: the app
//     backend's clock must be in sync with the server's (NTP), and a
//     signup stamped ahead of the server's clock is refused, not clamped;
//   - the click must be at most attribution_window before the arrival, else
//     422 "click_id expired";
//   - the click id must be attributable: a person's navigation that was
//     eligible when it happened (not HEAD, a prefetch, a preview, a bot or a
//     click farm; inside the campaign; its creator active). The flag is under
//     the signature, so an id that was not stays 422, also after the creator
//     is reactivated;
//   - a click id credits at most one user: a second user on it is 409 and
//     changes nothing. The same user again is a duplicate (200), as is a user
//     attributed before through another click.
//   - an attribution, new or a duplicate, emits the signup.attributed
//     webhook event (see emitSignup); when the outbox cannot take it the
//     answer is 503 and the same conversion should be sent again.

// SignatureTolerance bounds the age of a signed body, against replay.
const SignatureTolerance = 300 * time.Second

type conversionRequest struct {
	ClickID    string     `json:"click_id"`
	UserID     string     `json:"user_id"`
	OccurredAt *time.Time `json:"occurred_at"`
}

func (a *API) conversion(ctx context.Context, rc *fasthttp.RequestCtx) (int, any, error) {
	arrival := a.o.Now().UTC()
	if err := a.appAuthorized(rc, arrival); err != nil {
		return 0, nil, err
	}
	var req conversionRequest
	if err := decode(rc, &req); err != nil {
		return 0, nil, err
	}
	if !validUserID(req.UserID) {
		return 0, nil, unprocessable("user_id must be 1 to 128 printable ASCII characters")
	}
	if req.OccurredAt == nil {
		return 0, nil, unprocessable("occurred_at is required (RFC 3339)")
	}
	at := req.OccurredAt.UTC()
	claims, err := a.o.Clicks.Parse([]byte(req.ClickID))
	switch {
	case errors.Is(err, clickid.ErrForged):
		return 0, nil, unprocessable("click_id is forged: bad signature")
	case err != nil:
		return 0, nil, unprocessable("click_id is malformed")
	}
	if !claims.Attributable {
		return 0, nil, unprocessable("click_id is not an attributable person's click: it was a HEAD, a prefetch, a preview, a bot, " +
			"a click over the rate limit, a click on an inactive creator's link or a click outside the campaign")
	}
	camp, err := a.o.Store.Campaign(ctx, claims.Campaign)
	if errors.Is(err, counter.ErrNotFound) {
		return 0, nil, unprocessable("click_id names campaign %q, which does not exist", claims.Campaign)
	} else if err != nil {
		return 0, nil, err
	}
	if closes := camp.PayableAfter(); arrival.After(closes) {
		return 0, nil, errorf(fasthttp.StatusConflict, "the conversion arrived at %s, after campaign %q closed to signups at %s (ends_at + signup_grace)",
			arrival.Format(time.RFC3339), camp.ID, closes.Format(time.RFC3339))
	}
	clicked := time.Unix(claims.Time, 0).UTC()
	// The click was inside the campaign when it was made (it is
	// attributable); the campaign may have been moved since.
	if !camp.Running(clicked) {
		return 0, nil, errorf(fasthttp.StatusConflict, "the click at %s is outside campaign %q", clicked.Format(time.RFC3339), camp.ID)
	}
	if at.After(arrival) {
		return 0, nil, unprocessable("occurred_at %s is in the future: it is later than the arrival of the conversion at %s",
			at.Format(time.RFC3339Nano), arrival.Format(time.RFC3339Nano))
	}
	if at.Before(clicked) {
		return 0, nil, unprocessable("occurred_at %s is before the click at %s", at.Format(time.RFC3339Nano), clicked.Format(time.RFC3339))
	}
	if window := time.Duration(camp.AttributionWindow); arrival.Sub(clicked) > window {
		return 0, nil, unprocessable("click_id expired: the click at %s is more than %s before the conversion arrived at %s",
			clicked.Format(time.RFC3339), window, arrival.Format(time.RFC3339))
	}
	cr, err := a.o.Store.Creator(ctx, camp.ID, claims.Creator)
	if errors.Is(err, counter.ErrNotFound) {
		return 0, nil, unprocessable("creator %q of the click does not exist in campaign %q", claims.Creator, camp.ID)
	} else if err != nil {
		return 0, nil, err
	}
	if cr.Status != counter.StatusActive {
		return 0, nil, unprocessable("creator %q is %s, not active", cr.ID, cr.Status)
	}
	created, owner, err := a.o.Store.AttributeSignup(ctx, counter.Conversion{
		Campaign: camp.ID, Creator: cr.ID, UserID: req.UserID, Click: claims.Key(), Link: claims.Link, Day: counter.DayOf(at)})
	if errors.Is(err, counter.ErrClickUsed) {
		return 0, nil, errorf(fasthttp.StatusConflict, "click_id was used by another user: one click, one signup")
	} else if err != nil {
		return 0, nil, err
	}
	if err := a.emitSignup(camp.ID, owner, req.UserID, at); err != nil {
		return 0, nil, err
	}
	out := map[string]any{"campaign": camp.ID, "creator": owner, "user_id": req.UserID, "duplicate": !created}
	if !created {
		// One new user, one reward, whoever the creator.
		return fasthttp.StatusOK, out, nil
	}
	return fasthttp.StatusCreated, out, nil
}

func validUserID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// appAuthorized checks the app key: a signed body when the signature header
// is present, else the bearer key.
func (a *API) appAuthorized(rc *fasthttp.RequestCtx, now time.Time) error {
	if len(a.appKey) == 0 {
		return errorf(fasthttp.StatusUnauthorized, "conversions are disabled: no app key is configured")
	}
	if sig := rc.Request.Header.Peek("X-Clickgate-Signature"); len(sig) > 0 {
		return checkSignature(a.appKey, sig, rc.PostBody(), now)
	}
	if !bearerIs(rc, sha256.Sum256(a.appKey)) {
		return errorf(fasthttp.StatusUnauthorized, "missing or wrong app key")
	}
	return nil
}

// checkSignature verifies "t=<unix>,v1=<hex>[,v1=<hex>…]" over body.
func checkSignature(key, header, body []byte, now time.Time) error {
	var t int64 = -1
	var sigs [][]byte
	for part := range bytes.SplitSeq(header, []byte(",")) {
		k, v, _ := bytes.Cut(bytes.TrimSpace(part), []byte("="))
		switch string(k) {
		case "t":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return errorf(fasthttp.StatusUnauthorized, "bad signature header: t is not a Unix time")
			}
			t = n
		case "v1":
			if s, err := hex.DecodeString(string(v)); err == nil {
				sigs = append(sigs, s)
			}
		}
	}
	if t < 0 || len(sigs) == 0 {
		return errorf(fasthttp.StatusUnauthorized, "bad signature header: want t=<unix seconds>,v1=<hex>")
	}
	if d := now.Sub(time.Unix(t, 0)); d > SignatureTolerance || d < -SignatureTolerance {
		return errorf(fasthttp.StatusUnauthorized, "signature timestamp is outside the %s tolerance", SignatureTolerance)
	}
	m := hmac.New(sha256.New, key)
	m.Write(strconv.AppendInt(nil, t, 10))
	m.Write([]byte("."))
	m.Write(body)
	want := m.Sum(nil)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return errorf(fasthttp.StatusUnauthorized, "bad signature")
}

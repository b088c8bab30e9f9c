package admin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// convert posts a conversion with the given headers.
func (h *harness) convert(t *testing.T, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/conversions")
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	ctx.Request.SetBodyString(body)
	h.api.Handle(&ctx)
	var out map[string]any
	if err := json.Unmarshal(ctx.Response.Body(), &out); err != nil {
		t.Fatalf("non-JSON answer %q", ctx.Response.Body())
	}
	return ctx.Response.StatusCode(), out
}

func clickID(campaign, creator string, at time.Time) string {
	return string(clickid.NewSigner([]byte(clickKey)).Append(nil, &clickid.Claims{Campaign: campaign, Creator: creator, Link: "AB3KX9QZ", Time: at.Unix()}))
}

func conversionBody(id, user string, at time.Time) string {
	b, _ := json.Marshal(map[string]any{"click_id": id, "user_id": user, "occurred_at": at})
	return string(b)
}

func sign(key, body string, t int64) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(strconv.FormatInt(t, 10) + "." + body))
	return "t=" + strconv.FormatInt(t, 10) + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

func TestConversions(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC()
	start := now.Add(-10 * 24 * time.Hour).Format(time.RFC3339)
	h.call(t, "PUT", "/v1/campaigns/spring", `{"starts_at":"`+start+`","ends_at":"`+now.Add(24*time.Hour).Format(time.RFC3339)+`","attribution_window":"72h"}`, 201)
	h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"spring","country":"US"}`, 201)
	h.call(t, "PUT", "/v1/creators/bob", `{"campaign":"spring","country":"US"}`, 201)
	h.call(t, "PUT", "/v1/creators/sam", `{"campaign":"spring","country":"US","status":"suspended"}`, 201)
	bearer := []string{"Authorization", "Bearer " + appKey}
	clicked := now.Add(-time.Hour)
	alice := clickID("spring", "alice", clicked)

	f := func(body string, headers []string, status int, msg string) {
		t.Helper()
		got, out := h.convert(t, body, headers...)
		if got != status || !strings.Contains(strings.ToLower(toString(out)), strings.ToLower(msg)) {
			t.Fatalf("unexpected answer to %s; got %d %v; want %d containing %q", body, got, out, status, msg)
		}
	}
	// Attributed once; the same user again, through the same or another
	// creator, is a duplicate: one new user, one reward.
	f(conversionBody(alice, "user-1", now), bearer, 201, `"duplicate":false`)
	f(conversionBody(alice, "user-1", now), bearer, 200, `"duplicate":true`)
	f(conversionBody(clickID("spring", "bob", clicked), "user-1", now), bearer, 200, `"creator":"alice"`)

	// Forged: one byte flipped.
	forged := []byte(alice)
	if i := len(forged) - 3; forged[i] == 'A' {
		forged[i] = 'B'
	} else {
		forged[i] = 'A'
	}
	f(conversionBody(string(forged), "user-2", now), bearer, 422, "forged")
	other := clickid.NewSigner([]byte("other key")).Append(nil, &clickid.Claims{Campaign: "spring", Creator: "alice", Link: "AB3KX9QZ", Time: clicked.Unix()})
	f(conversionBody(string(other), "user-2", now), bearer, 422, "forged")
	f(conversionBody("not a click id", "user-2", now), bearer, 422, "malformed")
	// Expired: clicked more than the attribution window before.
	f(conversionBody(clickID("spring", "alice", now.Add(-73*time.Hour)), "user-2", now), bearer, 422, "expired")
	f(conversionBody(alice, "user-2", clicked.Add(-time.Hour)), bearer, 422, "before the click")
	f(conversionBody(clickID("fall", "alice", clicked), "user-2", now), bearer, 422, "campaign \\\"fall")
	f(conversionBody(clickID("spring", "sam", clicked), "user-2", now), bearer, 422, "not active")
	f(conversionBody(clickID("spring", "zed", clicked), "user-2", now), bearer, 422, "does not exist")
	// Outside the campaign: a signup after its end (beyond the grace), a
	// click before its start or after its end, a signup in the future.
	f(conversionBody(clickID("spring", "alice", now.Add(-time.Minute)), "user-2", now.Add(-time.Minute)), bearer, 201, `"duplicate":false`)
	h.call(t, "PUT", "/v1/campaigns/spring", `{"ends_at":"`+now.Add(-30*time.Minute).Format(time.RFC3339)+`","signup_grace":"72h"}`, 200)
	f(conversionBody(clickID("spring", "alice", now.Add(-10*time.Minute)), "user-4", now), bearer, 409, "click at")
	f(conversionBody(clickID("spring", "alice", now.Add(-11*24*time.Hour)), "user-4", now.Add(-11*24*time.Hour+time.Minute)), bearer, 409, "click at")
	f(conversionBody(alice, "user-4", now.Add(time.Hour)), bearer, 422, "in the future")
	h.call(t, "PUT", "/v1/campaigns/spring", `{"ends_at":"`+now.Add(-30*time.Minute).Format(time.RFC3339)+`","signup_grace":"0s"}`, 200)
	f(conversionBody(alice, "user-4", now), bearer, 409, "outside campaign")
	h.call(t, "PUT", "/v1/campaigns/spring", `{"ends_at":"`+now.Add(24*time.Hour).Format(time.RFC3339)+`"}`, 200)
	f(`{"click_id":"x","user_id":"","occurred_at":"2026-01-01T00:00:00Z"}`, bearer, 422, "user_id")
	f(`{"click_id":"x","user_id":"u"}`, bearer, 422, "occurred_at")
	f(`{"click_id":"x","user_id":"u","extra":1}`, bearer, 400, "unknown field")

	// Keys: missing, wrong, the admin token, a signature outside tolerance,
	// a signature over another body.
	body := conversionBody(alice, "user-3", now)
	f(body, nil, 401, "app key")
	f(body, []string{"Authorization", "Bearer wrong"}, 401, "app key")
	f(body, []string{"Authorization", "Bearer " + token}, 401, "app key")
	f(body, []string{"X-Clickgate-Signature", sign(appKey, body, now.Add(-6*time.Minute).Unix())}, 401, "tolerance")
	f(body, []string{"X-Clickgate-Signature", sign(appKey, body+" ", now.Unix())}, 401, "bad signature")
	f(body, []string{"X-Clickgate-Signature", sign("wrong", body, now.Unix())}, 401, "bad signature")
	f(body, []string{"X-Clickgate-Signature", "v1=00"}, 401, "signature header")
	// The app key opens conversions only.
	if status, _ := h.do(t, "GET", "/v1/campaigns/spring", "Bearer "+appKey, ""); status != 401 {
		t.Fatalf("unexpected status for the app key on an admin endpoint; got %d; want 401", status)
	}
	// A good signature attributes.
	f(body, []string{"X-Clickgate-Signature", sign(appKey, body, now.Unix())}, 201, `"duplicate":false`)

	// No double credit: alice has user-1, user-2 and user-3, bob none.
	for creator, want := range map[string]int64{"alice": 3, "bob": 0, "sam": 0} {
		days, err := h.store.Stats(context.Background(), "spring", creator)
		if err != nil {
			t.Fatal(err)
		}
		if got := counter.Total(days); got[counter.Signup] != want || got.Clicks() != 0 {
			t.Fatalf("unexpected signups for %s; got %+v; want %d", creator, got, want)
		}
	}
	if got := h.call(t, "GET", "/v1/creators/alice/stats?campaign=spring", "", 200); got["signups"] != 3.0 || got["clicks"] != 0.0 {
		t.Fatalf("unexpected stats %v; want signups=3 clicks=0", got)
	}
}

func toString(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// FuzzConversion feeds arbitrary bodies and signature headers: never a
// server error, never a credit without a valid click id.
func FuzzConversion(f *testing.F) {
	now := time.Now().UTC()
	f.Add(conversionBody(clickID("spring", "alice", now), "u", now), "")
	f.Add(`{"click_id":"AAAA","user_id":"u","occurred_at":"2026-01-01T00:00:00Z"}`, "t=1,v1=00")
	f.Add(`{`, "t=,v1=")
	h := newHarness(f)
	h.seed(f)
	f.Fuzz(func(t *testing.T, body, sig string) {
		headers := []string{"Authorization", "Bearer " + appKey}
		if sig != "" {
			headers = []string{"X-Clickgate-Signature", sig}
		}
		status, out := h.convert(t, body, headers...)
		if status >= 500 || (status >= 400 && out["error"] == nil) {
			t.Fatalf("unexpected answer to %q / %q; got %d %v", body, sig, status, out)
		}
		if status == 201 && !strings.Contains(body, clickID("spring", "alice", now)[:10]) {
			t.Fatalf("credited a body without a valid click id: %q", body)
		}
	})
}

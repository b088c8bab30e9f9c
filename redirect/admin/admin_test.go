package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/clickid"
)

const (
	token    = "test-token"
	appKey   = "test-app-key"
	clickKey = "test-click-key"
)

type harness struct {
	api   *API
	store counter.Store
	table *redirect.Table
}

// lookup returns the entry table serves for code, or nil.
func lookup(table *redirect.Table, code string) *redirect.Entry {
	var e redirect.Entry
	if table.Lookup([]byte(code), &e) {
		return &e
	}
	return nil
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	params, err := counter.NewDedupeParams(10_000, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstore.Open(t.TempDir(), params)
	if err != nil {
		t.Fatal(err)
	}
	table := redirect.NewTable(redirect.TableOptions{Store: store})
	rec := counter.NewRecorder(counter.RecorderOptions{Store: store, Params: params})
	rec.Start()
	t.Cleanup(func() {
		rec.Stop(context.Background())
		store.Close()
	})
	api, err := New(Options{Store: store, Table: table, Recorder: rec, Token: token, PublicURL: "https://go.example.com",
		AppKey: appKey, Clicks: clickid.NewSigner([]byte(clickKey))})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{api: api, store: store, table: table}
}

// do serves one request in-process and returns the status and JSON body.
func (h *harness) do(t testing.TB, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	if auth != "" {
		ctx.Request.Header.Set("Authorization", auth)
	}
	ctx.Request.SetBodyString(body)
	h.api.Handle(&ctx)
	var out map[string]any
	if err := json.Unmarshal(ctx.Response.Body(), &out); err != nil && path != "/healthz" {
		t.Fatalf("non-JSON answer to %s %s: %q", method, path, ctx.Response.Body())
	}
	return ctx.Response.StatusCode(), out
}

func (h *harness) call(t testing.TB, method, path, body string, want int) map[string]any {
	t.Helper()
	status, out := h.do(t, method, path, "Bearer "+token, body)
	if status != want {
		t.Fatalf("unexpected status for %s %s %s; got %d %v; want %d", method, path, body, status, out, want)
	}
	return out
}

const campaignBody = `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","eligible_countries":["us"]}`

func (h *harness) seed(t testing.TB) {
	h.call(t, "PUT", "/v1/campaigns/spring", campaignBody, 201)
	h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"spring","country":"US","handle":"@alice"}`, 201)
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearertest-token", "Bearer " + token + " ", "Basic " + token, "Bearer wrong"} {
		if status, out := h.do(t, "GET", "/v1/campaigns/spring", auth, ""); status != 401 || out["error"] == nil {
			t.Fatalf("unexpected answer for Authorization %q; got %d %v; want 401", auth, status, out)
		}
	}
	if status, _ := h.do(t, "GET", "/healthz", "", ""); status != 200 {
		t.Fatalf("unexpected /healthz status %d", status)
	}
	h.call(t, "GET", "/v1/campaigns/spring", "", 404)
	// The scheme is case-insensitive.
	if status, _ := h.do(t, "GET", "/v1/campaigns/spring", "bearer "+token, ""); status != 404 {
		t.Fatalf("unexpected status with a lower-case scheme; got %d; want 404 (authorized, not found)", status)
	}
}

func TestCampaigns(t *testing.T) {
	h := newHarness(t)
	// Before campaignBody's start: every term may still change.
	h.api.o.Now = func() time.Time { return time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC) }
	out := h.call(t, "PUT", "/v1/campaigns/spring", campaignBody, 201)
	// The reference program's defaults.
	want := map[string]any{"name": "spring", "signup_reward_cents": 10000.0, "visit_block_size": 1000.0,
		"visit_block_reward_cents": 10000.0, "cap_cents": 2000000.0, "dedupe_window": "24h0m0s"}
	for k, v := range want {
		if out[k] != v {
			t.Fatalf("unexpected %s; got %v; want %v", k, out[k], v)
		}
	}
	if c := out["eligible_countries"].([]any); len(c) != 1 || c[0] != "US" {
		t.Fatalf("unexpected eligible_countries %v; want [US]", c)
	}
	h.call(t, "PUT", "/v1/campaigns/spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","cap_cents":0}`, 200)
	if got := h.call(t, "GET", "/v1/campaigns/spring", "", 200); got["cap_cents"] != 0.0 {
		t.Fatalf("unexpected cap after replace; got %v; want 0", got["cap_cents"])
	}

	f := func(id, body string, status int, msg string) {
		t.Helper()
		out := h.call(t, "PUT", "/v1/campaigns/"+id, body, status)
		if !strings.Contains(out["error"].(string), msg) {
			t.Fatalf("unexpected error for %s; got %q; want it to contain %q", body, out["error"], msg)
		}
	}
	f("spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","bogus":1}`, 400, `unknown field "bogus"`)
	f("spring", `{"starts_at":`, 400, "invalid JSON")
	f("spring", ``, 400, "empty")
	f("spring", `{} {}`, 400, "after the object")
	f("spring", `[]`, 400, "invalid JSON")
	f("spring", `{"starts_at":"yesterday","ends_at":"2026-06-22T00:00:00Z"}`, 400, "invalid JSON")
	f("new", `{"ends_at":"2026-06-22T00:00:00Z"}`, 422, "starts_at and ends_at are required")
	f("spring", `null`, 400, "want an object")
	f("spring", `{"starts_at":"2026-06-22T00:00:00Z","ends_at":"2026-05-11T00:00:00Z"}`, 422, "must be after")
	f("spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","visit_block_size":0}`, 422, "visit_block_size")
	f("spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","cap_cents":-1}`, 422, "cap_cents")
	f("spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","signup_reward_cents":-5}`, 422, "signup_reward_cents")
	f("spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","dedupe_window":"7h"}`, 422, "dedupe_window")
	f("spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","dedupe_window":"10s"}`, 422, "dedupe_window")
	f("spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","dedupe_window":"forever"}`, 400, "invalid JSON")
	f("spring", `{"starts_at":"2026-05-11T00:00:00Z","ends_at":"2026-06-22T00:00:00Z","eligible_countries":["USA"]}`, 422, "ISO 3166-1")
	f("spring", `{"eligible_countries":["ı"]}`, 422, "ISO 3166-1") // ToUpper("ı") is one byte
	f("spring", `{"eligible_countries":["1S"]}`, 422, "ISO 3166-1")
	f("spring", `{"dedupe_window":"1h"}`, 422, "dedupe_window cannot change")
	f("spring", `{"preview":{"image":"http://img.example.com/a.png"}}`, 422, "preview.image")
	f("bad%20id", campaignBody, 400, "campaign id")
	f("a:b", campaignBody, 400, "campaign id")
	h.call(t, "DELETE", "/v1/campaigns/spring", "", 405)
	// Nothing refused above changed the campaign.
	if got := h.call(t, "GET", "/v1/campaigns/spring", "", 200); got["cap_cents"] != 0.0 || got["dedupe_window"] != "24h0m0s" {
		t.Fatalf("a refused PUT changed the campaign: %v", got)
	}
	// Fields left out keep their value.
	got := h.call(t, "PUT", "/v1/campaigns/spring", `{"name":"Spring!","dedupe_window":"24h"}`, 200)
	if got["name"] != "Spring!" || got["cap_cents"] != 0.0 || got["starts_at"] != "2026-05-11T00:00:00Z" || got["eligible_countries"].([]any)[0] != "US" {
		t.Fatalf("a partial PUT changed other fields: %v", got)
	}
	// Once started, the terms that decide what is paid are fixed, but the
	// campaign may be extended and its cap raised before it ends.
	h.api.o.Now = func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }
	f("spring", `{"signup_reward_cents":50000}`, 422, "signup_reward_cents cannot change")
	f("spring", `{"eligible_countries":["US","CA"]}`, 422, "eligible_countries cannot change")
	f("spring", `{"ends_at":"2026-06-10T00:00:00Z"}`, 422, "ends_at cannot change")
	f("spring", `{"cap_cents":0,"visit_block_size":10}`, 422, "visit_block_size cannot change")
	h.call(t, "PUT", "/v1/campaigns/spring", `{"cap_cents":500000,"ends_at":"2026-06-29T00:00:00Z","name":"Spring 2026"}`, 200)
	h.api.o.Now = func() time.Time { return time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC) }
	f("spring", `{"cap_cents":600000}`, 422, "cap_cents cannot change")
	if got := h.call(t, "GET", "/v1/campaigns/spring", "", 200); got["cap_cents"] != 500000.0 || got["signup_reward_cents"] != 10000.0 || got["ends_at"] != "2026-06-29T00:00:00Z" {
		t.Fatalf("unexpected campaign after the refused changes: %v", got)
	}
}

func TestCreators(t *testing.T) {
	h := newHarness(t)
	h.seed(t)
	out := h.call(t, "GET", "/v1/creators/alice?campaign=spring", "", 200)
	if out["status"] != "active" || out["country"] != "US" || out["handle"] != "@alice" {
		t.Fatalf("unexpected creator %v", out)
	}
	h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"spring","country":"us","status":"suspended"}`, 200)
	// A PUT that leaves the status out keeps it.
	if got := h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"spring","handle":"@alice2"}`, 200); got["status"] != "suspended" || got["country"] != "US" {
		t.Fatalf("a partial PUT changed other fields: %v", got)
	}
	f := func(body string, status int, msg string) {
		t.Helper()
		out := h.call(t, "PUT", "/v1/creators/bob", body, status)
		if !strings.Contains(out["error"].(string), msg) {
			t.Fatalf("unexpected error for %s; got %q; want it to contain %q", body, out["error"], msg)
		}
	}
	f(`{"campaign":"spring","country":"FR"}`, 422, `country "FR" is not eligible in campaign "spring"`)
	f(`{"campaign":"nope","country":"US"}`, 422, `campaign "nope" does not exist`)
	f(`{"country":"US"}`, 422, "campaign is required")
	f(`{"campaign":"spring","country":"U"}`, 422, "ISO 3166-1")
	f(`{"campaign":"spring","country":"ſſ"}`, 422, "ISO 3166-1")
	f(`{"campaign":"spring"}`, 422, "country is required")
	f(`{"campaign":"spring","country":"US","status":"vip"}`, 422, "status")
	f(`{"campaign":"spring","country":"US","tier":1}`, 400, "unknown field")
	h.call(t, "GET", "/v1/creators/bob?campaign=spring", "", 404)
	h.call(t, "GET", "/v1/creators/alice", "", 400)
	h.call(t, "GET", "/v1/creators/a%00b?campaign=spring", "", 400)
}

func TestLinks(t *testing.T) {
	h := newHarness(t)
	h.seed(t)
	out := h.call(t, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","destinations":{"default":"https://app.example.com/join"}}`, 201)
	code := out["code"].(string)
	if len(code) != redirect.GeneratedCodeLen || out["url"] != "https://go.example.com/"+code {
		t.Fatalf("unexpected link answer %v", out)
	}
	// Served at once by this node.
	if e := lookup(h.table, code); e == nil || e.Creator.ID != "alice" {
		t.Fatalf("new link %q not in the link table", code)
	}
	got := h.call(t, "GET", "/v1/links/"+code, "", 200)
	if got["creator"] != "alice" || got["destinations"].(map[string]any)["default"] != "https://app.example.com/join" {
		t.Fatalf("unexpected link %v", got)
	}
	h.call(t, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","code":"alice-1","destinations":{"default":"https://app.example.com/"}}`, 201)
	h.call(t, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","code":"alice-1","destinations":{"default":"https://app.example.com/"}}`, 409)

	f := func(body string, status int, msg string) {
		t.Helper()
		out := h.call(t, "POST", "/v1/links", body, status)
		if !strings.Contains(out["error"].(string), msg) {
			t.Fatalf("unexpected error for %s; got %q; want it to contain %q", body, out["error"], msg)
		}
	}
	link := func(dest string) string {
		b, _ := json.Marshal(map[string]any{"campaign": "spring", "creator": "alice", "code": "bad-1",
			"destinations": map[string]string{"default": "https://app.example.com/", "android": dest}})
		return string(b)
	}
	for _, dest := range []string{"javascript:alert(1)", "//evil.example.com", "http://app.example.com/", "https://user@app.example.com/",
		"https://app.example.com/\r\nX: y", "https://go.example.com/alice-1", "https://GO.example.com:443/x", "/relative"} {
		f(link(dest), 422, "destinations.android")
	}
	f(`{"campaign":"spring","creator":"alice","destinations":{}}`, 422, "destinations.default is required")
	f(`{"campaign":"spring","creator":"bob","destinations":{"default":"https://a.example.com/"}}`, 422, `creator "bob" does not exist`)
	f(`{"campaign":"fall","creator":"alice","destinations":{"default":"https://a.example.com/"}}`, 422, `campaign "fall" does not exist`)
	f(`{"campaign":"spring","creator":"alice","code":"no/slash","destinations":{"default":"https://a.example.com/"}}`, 422, "code")
	f(`{"campaign":"spring","creator":"alice","code":"healthz","destinations":{"default":"https://a.example.com/"}}`, 422, "reserved")
	f(`{"campaign":"spring","creator":"alice","destinations":{"default":"https://a.example.com/","web":"x"}}`, 400, "unknown field")
	// Another host of --host is the service too: a redirect loop.
	h.api.ownHosts = append(h.api.ownHosts, "links.example.com")
	f(link("https://links.example.com/alice-1"), 422, "destinations.android")
	h.call(t, "GET", "/v1/links/bad-1", "", 404)
	h.call(t, "GET", "/v1/links/%2e%2e", "", 404)
}

func TestOwnHosts(t *testing.T) {
	api, err := New(Options{Token: token, PublicURL: "https://go.example.com", OwnHosts: []string{"links.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(api.ownHosts, []string{"go.example.com", "links.example.com"}) {
		t.Fatalf("unexpected own hosts; got %q; want the public URL's and --host's", api.ownHosts)
	}
}

func TestStats(t *testing.T) {
	h := newHarness(t)
	h.seed(t)
	now := time.Now()
	v := counter.Visit{Campaign: "spring", Creator: "alice"}
	v.SetWindow(now, 24*time.Hour)
	out := make([]counter.Reason, 2)
	if err := h.store.Commit(context.Background(), []counter.Visit{v, v}, out); err != nil {
		t.Fatal(err)
	}
	got := h.call(t, "GET", "/v1/creators/alice/stats?campaign=spring&by=day", "", 200)
	if got["clicks"] != 2.0 || got["qualified"] != 1.0 || got["duplicates"] != 1.0 || got["uncounted"] != 0.0 {
		t.Fatalf("unexpected stats %v", got)
	}
	days := got["days"].([]any)
	if len(days) != 1 || days[0].(map[string]any)["day"] != counter.DayOf(now).String() || days[0].(map[string]any)["clicks"] != 2.0 {
		t.Fatalf("unexpected days %v", days)
	}
	h.call(t, "GET", "/v1/creators/bob/stats?campaign=spring", "", 404)
	h.call(t, "GET", "/v1/creators/alice/stats", "", 400)
	h.call(t, "GET", "/v1/creators/alice/stats?campaign=spring&by=week", "", 400)
}

// FuzzAdminBodies feeds arbitrary bodies to every write endpoint: the answer
// is always JSON and never a server error.
func FuzzAdminBodies(f *testing.F) {
	for _, s := range []string{campaignBody, `{"campaign":"spring","country":"US"}`,
		`{"campaign":"spring","creator":"alice","destinations":{"default":"https://a.example.com/"}}`, `{`, `null`, `{"a":[1,2,{}]}`} {
		f.Add(s)
	}
	h := newHarness(f)
	h.seed(f)
	f.Fuzz(func(t *testing.T, body string) {
		for _, ep := range [][2]string{{"PUT", "/v1/campaigns/fz"}, {"PUT", "/v1/creators/fz"}, {"POST", "/v1/links"}} {
			status, out := h.do(t, ep[0], ep[1], "Bearer "+token, body)
			if status >= 500 || (status >= 400 && out["error"] == nil) {
				t.Fatalf("unexpected answer to %s %s %q; got %d %v", ep[0], ep[1], body, status, out)
			}
			if status < 300 && !bytes.Contains([]byte(body), []byte("{")) {
				t.Fatalf("accepted a body without an object: %q", body)
			}
		}
	})
}

// TestOperatorEndpoints: /metrics and the profiler answer only with the
// admin token.
func TestOperatorEndpoints(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + appKey} {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(path)
			if auth != "" {
				ctx.Request.Header.Set("Authorization", auth)
			}
			h.api.Handle(&ctx)
			if ctx.Response.StatusCode() != fasthttp.StatusUnauthorized {
				t.Errorf("%s with %q: %d, want 401", path, auth, ctx.Response.StatusCode())
			}
		}
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.Set("Authorization", "Bearer "+token)
		h.api.Handle(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK || len(ctx.Response.Body()) == 0 {
			t.Errorf("%s with the token: %d, %d bytes", path, ctx.Response.StatusCode(), len(ctx.Response.Body()))
		}
	}
}

// TestNotFoundNamesTheObject: a 404 says which object is missing.
func TestNotFoundNamesTheObject(t *testing.T) {
	h := newHarness(t)
	h.seed(t)
	f := func(path, want string) {
		t.Helper()
		out := h.call(t, "GET", path, "", fasthttp.StatusNotFound)
		if out["error"] != want {
			t.Fatalf("unexpected error for %q; got %q; want %q", path, out["error"], want)
		}
	}
	f("/v1/campaigns/nope", `campaign "nope" does not exist`)
	f("/v1/creators/bob?campaign=spring", `creator "bob" does not exist in campaign "spring"`)
	f("/v1/creators/alice?campaign=nope", `campaign "nope" does not exist`)
	f("/v1/creators/bob/stats?campaign=spring", `creator "bob" does not exist in campaign "spring"`)
	f("/v1/creators/alice/stats?campaign=nope", `campaign "nope" does not exist`)
	f("/v1/links/NOPE1234", `link "NOPE1234" does not exist`)
	f("/v1/links/no%20pe", `link "no pe" does not exist`)
}

package admin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect"
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

// clicks signs the click ids of the unit tests, as the edge would.
var clicks = clickid.NewSigner([]byte(clickKey))

// clickID returns a new click id, attributable or not, of a click at at.
func clickID(campaign, creator string, at time.Time, attributable bool) string {
	c := clickid.Claims{Campaign: campaign, Creator: creator, Link: "AB3KX9QZ", Time: at.Unix(), Attributable: attributable}
	return string(clicks.AppendNew(nil, &c))
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

// TestConversions judges conversions by their arrival, on a clock the test
// sets.
func TestConversions(t *testing.T) {
	h := newHarness(t)
	t0 := time.Now().UTC().Truncate(time.Second)
	clock := t0
	h.api.o.Now = func() time.Time { return clock }
	starts, ends := t0.Add(-10*24*time.Hour), t0.Add(24*time.Hour)
	const grace = 48 * time.Hour
	h.call(t, "PUT", "/v1/campaigns/spring", `{"starts_at":"`+starts.Format(time.RFC3339)+`","ends_at":"`+ends.Format(time.RFC3339)+
		`","attribution_window":"72h","signup_grace":"48h"}`, 201)
	h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"spring","country":"US"}`, 201)
	h.call(t, "PUT", "/v1/creators/bob", `{"campaign":"spring","country":"US"}`, 201)
	h.call(t, "PUT", "/v1/creators/sam", `{"campaign":"spring","country":"US","status":"suspended"}`, 201)
	bearer := []string{"Authorization", "Bearer " + appKey}
	clicked := t0.Add(-time.Hour)
	alice := clickID("spring", "alice", clicked, true)

	f := func(body string, headers []string, status int, msg string) {
		t.Helper()
		got, out := h.convert(t, body, headers...)
		if got != status || !strings.Contains(strings.ToLower(toString(out)), strings.ToLower(msg)) {
			t.Fatalf("unexpected answer to %s at %s; got %d %v; want %d containing %q", body, clock.Format(time.RFC3339), got, out, status, msg)
		}
	}
	signups := func(creator string, want int64) {
		t.Helper()
		days, err := h.store.Stats(context.Background(), "spring", creator)
		if err != nil {
			t.Fatal(err)
		}
		if got := counter.Total(days); got[counter.Signup] != want || got.Clicks() != 0 {
			t.Fatalf("unexpected signups for %s; got %+v; want %d", creator, got, want)
		}
		// Every click id is on link AB3KX9QZ: its signups are the creator's.
		days, err = h.store.LinkStats(context.Background(), "spring", creator, "AB3KX9QZ")
		if got := counter.Total(days); err != nil || got[counter.Signup] != want {
			t.Fatalf("unexpected signups of the link of %s; got %+v, %v; want %d", creator, got, err, want)
		}
	}
	// Attributed once; the same user again, through the same or another
	// creator's click, is a duplicate: one new user, one reward.
	f(conversionBody(alice, "user-1", t0), bearer, 201, `"duplicate":false`)
	f(conversionBody(alice, "user-1", t0), bearer, 200, `"duplicate":true`)
	f(conversionBody(clickID("spring", "bob", clicked, true), "user-1", t0), bearer, 200, `"creator":"alice"`)
	// One click, one user: a second user on it credits nothing.
	f(conversionBody(alice, "user-2", t0), bearer, 409, "used by another user")
	f(conversionBody(alice, "user-2", t0.Add(-time.Minute)), bearer, 409, "used by another user")
	signups("alice", 1)
	signups("bob", 0)
	// The refused user comes through a click of its own.
	f(conversionBody(clickID("spring", "alice", clicked, true), "user-2", t0), bearer, 201, `"duplicate":false`)

	// Forged: one byte flipped, or signed with another key; malformed.
	forged := []byte(alice)
	if i := len(forged) - 3; forged[i] == 'A' {
		forged[i] = 'B'
	} else {
		forged[i] = 'A'
	}
	f(conversionBody(string(forged), "user-9", t0), bearer, 422, "forged")
	other := clickid.NewSigner([]byte("other key")).Append(nil, &clickid.Claims{Campaign: "spring", Creator: "alice", Link: "AB3KX9QZ", Time: clicked.Unix(), Attributable: true})
	f(conversionBody(string(other), "user-9", t0), bearer, 422, "forged")
	f(conversionBody("not a click id", "user-9", t0), bearer, 422, "malformed")
	// The id of a click that was no person's eligible navigation.
	f(conversionBody(clickID("spring", "alice", clicked, false), "user-9", t0), bearer, 422, "not an attributable person's click")

	// occurred_at lies between the click and the arrival, both included,
	// with no allowance for skew.
	f(conversionBody(clickID("spring", "alice", clicked, true), "user-9", t0.Add(time.Second)), bearer, 422, "in the future")
	f(conversionBody(clickID("spring", "alice", clicked, true), "user-9", t0.Add(time.Millisecond)), bearer, 422, "in the future")
	f(conversionBody(clickID("spring", "alice", clicked, true), "user-9", clicked.Add(-time.Second)), bearer, 422, "before the click")
	f(conversionBody(clickID("spring", "alice", clicked, true), "user-3", t0), bearer, 201, `"duplicate":false`)
	f(conversionBody(clickID("spring", "alice", clicked, true), "user-4", clicked), bearer, 201, `"duplicate":false`)
	// The attribution window runs from the click to the arrival, whatever
	// occurred_at says.
	f(conversionBody(clickID("spring", "alice", t0.Add(-72*time.Hour-time.Second), true), "user-9", t0.Add(-71*time.Hour)), bearer, 422, "expired")
	f(conversionBody(clickID("spring", "alice", t0.Add(-73*time.Hour), true), "user-9", t0), bearer, 422, "expired")
	f(conversionBody(clickID("spring", "alice", t0.Add(-72*time.Hour), true), "user-5", t0), bearer, 201, `"duplicate":false`)

	// Campaigns and creators.
	f(conversionBody(clickID("fall", "alice", clicked, true), "user-9", t0), bearer, 422, "campaign \\\"fall")
	f(conversionBody(clickID("spring", "sam", clicked, true), "user-9", t0), bearer, 422, "not active")
	f(conversionBody(clickID("spring", "zed", clicked, true), "user-9", t0), bearer, 422, "does not exist")
	f(conversionBody(clickID("spring", "alice", starts.Add(-time.Second), true), "user-9", t0), bearer, 409, "outside campaign")
	signups("alice", 5)

	// After ends_at + signup_grace nothing is credited, however early the
	// conversion says it happened; up to it, a click of the campaign is.
	late := clickID("spring", "alice", ends.Add(-time.Hour), true)
	clock = ends.Add(grace)
	f(conversionBody(late, "user-6", ends.Add(-30*time.Minute)), bearer, 201, `"duplicate":false`)
	clock = ends.Add(grace + time.Second)
	f(conversionBody(clickID("spring", "alice", ends.Add(-time.Hour), true), "user-9", ends.Add(-30*time.Minute)), bearer, 409, "closed to signups")
	f(conversionBody(late, "user-6", ends.Add(-30*time.Minute)), bearer, 409, "closed to signups")
	f(conversionBody(alice, "user-9", clicked), bearer, 409, "closed to signups")
	clock = t0

	f(`{"click_id":"x","user_id":"","occurred_at":"2026-01-01T00:00:00Z"}`, bearer, 422, "user_id")
	f(`{"click_id":"x","user_id":"u"}`, bearer, 422, "occurred_at")
	f(`{"click_id":"x","user_id":"u","extra":1}`, bearer, 400, "unknown field")

	// Keys: missing, wrong, the admin token, a signature outside tolerance
	// (of the server's clock), a signature over another body.
	body := conversionBody(clickID("spring", "alice", clicked, true), "user-7", t0)
	f(body, nil, 401, "app key")
	f(body, []string{"Authorization", "Bearer wrong"}, 401, "app key")
	f(body, []string{"Authorization", "Bearer " + token}, 401, "app key")
	f(body, []string{"X-Clickgate-Signature", sign(appKey, body, t0.Add(-6*time.Minute).Unix())}, 401, "tolerance")
	f(body, []string{"X-Clickgate-Signature", sign(appKey, body+" ", t0.Unix())}, 401, "bad signature")
	f(body, []string{"X-Clickgate-Signature", sign("wrong", body, t0.Unix())}, 401, "bad signature")
	f(body, []string{"X-Clickgate-Signature", "v1=00"}, 401, "signature header")
	// The app key opens conversions only.
	if status, _ := h.do(t, "GET", "/v1/campaigns/spring", "Bearer "+appKey, ""); status != 401 {
		t.Fatalf("unexpected status for the app key on an admin endpoint; got %d; want 401", status)
	}
	// A good signature attributes.
	f(body, []string{"X-Clickgate-Signature", sign(appKey, body, t0.Unix())}, 201, `"duplicate":false`)

	// No double credit: alice has user-1 to user-7, bob and sam none.
	signups("alice", 7)
	signups("bob", 0)
	signups("sam", 0)
	if got := h.call(t, "GET", "/v1/creators/alice/stats?campaign=spring", "", 200); got["signups"] != 7.0 || got["clicks"] != 0.0 {
		t.Fatalf("unexpected stats %v; want signups=7 clicks=0", got)
	}
}

// TestConversionsOfClicks reports signups with the click ids of real
// redirects: only a person's eligible click earns one, and once.
func TestConversionsOfClicks(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	now := time.Now().UTC()
	span := func(from, to time.Duration) string {
		return `"starts_at":"` + now.Add(from).Format(time.RFC3339) + `","ends_at":"` + now.Add(to).Format(time.RFC3339) + `"`
	}
	h.call(t, "PUT", "/v1/campaigns/spring", `{`+span(-time.Hour, time.Hour)+`}`, 201)
	h.call(t, "PUT", "/v1/campaigns/over", `{`+span(-3*time.Hour, -2*time.Hour)+`,"signup_grace":"72h"}`, 201)
	h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"spring","country":"US"}`, 201)
	h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"over","country":"US"}`, 201)
	h.call(t, "PUT", "/v1/creators/sam", `{"campaign":"spring","country":"US","status":"suspended"}`, 201)
	for code, owner := range map[string]string{"alicelink": "spring/alice", "overlink": "over/alice", "samlink": "spring/sam"} {
		campaign, creator, _ := strings.Cut(owner, "/")
		h.call(t, "POST", "/v1/links", `{"campaign":"`+campaign+`","creator":"`+creator+`","code":"`+code+`","destinations":{"default":"https://app.example.com/join"}}`, 201)
	}
	if err := h.table.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	params, err := counter.NewDedupeParams(10_000, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	rec := counter.NewRecorder(counter.RecorderOptions{Store: h.store, Params: params})
	rec.Start()
	t.Cleanup(func() { rec.Stop(context.Background()) })
	edge := redirect.New(redirect.Options{Table: h.table, Recorder: rec, Secret: []byte("0123456789abcdef0123456789abcdef"),
		Velocity: redirect.NewVelocity(redirect.VelocityOptions{Max: 2, Window: time.Minute})})
	api, err := New(Options{Store: h.store, Table: h.table, Recorder: rec, Token: token, PublicURL: "https://go.example.com",
		AppKey: appKey, Clicks: edge.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	h.api = api

	const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	// click follows code from ip and returns the click id of the answer:
	// in Location, or in the preview page.
	click := func(method, code, ip string, headers ...string) string {
		t.Helper()
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI("/" + code)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		var rc fasthttp.RequestCtx
		rc.Init(&req, &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}, nil)
		edge.Handle(&rc)
		where := string(rc.Response.Header.Peek("Location"))
		if rc.Response.StatusCode() == 200 {
			where = string(rc.Response.Body())
		}
		_, id, ok := strings.Cut(where, redirect.DefaultClickParam+"=")
		if !ok {
			t.Fatalf("no click id in the answer to %s %s: %d %q", method, code, rc.Response.StatusCode(), where)
		}
		if end := strings.IndexFunc(id, func(r rune) bool { return !strings.ContainsRune(base64URL, r) }); end >= 0 {
			id = id[:end]
		}
		return id
	}
	bearer := []string{"Authorization", "Bearer " + appKey}
	f := func(id, user string, status int, msg string) {
		t.Helper()
		got, out := h.convert(t, conversionBody(id, user, time.Now().UTC()), bearer...)
		if got != status || !strings.Contains(toString(out), msg) {
			t.Fatalf("unexpected answer for user %q and id %q; got %d %v; want %d containing %q", user, id, got, out, status, msg)
		}
	}
	const notAttributable = "not an attributable person's click"

	// A person's click: one signup, for one user.
	browser := click("GET", "alicelink", "127.0.9.1", "User-Agent", chrome)
	f(browser, "user-1", 201, `"duplicate":false`)
	f(browser, "user-1", 200, `"duplicate":true`)
	f(browser, "user-2", 409, "used by another user")
	// The same person again is a duplicate visit, but may still sign up.
	again := click("GET", "alicelink", "127.0.9.1", "User-Agent", chrome)
	if again == browser {
		t.Fatalf("unexpected equal click ids %q of two clicks", again)
	}
	f(again, "user-2", 201, `"duplicate":false`)

	// Every other answer carries an id that earns nothing.
	f(click("HEAD", "alicelink", "127.0.9.2", "User-Agent", chrome), "user-3", 422, notAttributable)
	f(click("GET", "alicelink", "127.0.9.3", "User-Agent", chrome, "Sec-Purpose", "prefetch"), "user-3", 422, notAttributable)
	f(click("GET", "alicelink", "127.0.9.4", "User-Agent", "curl/8.5.0"), "user-3", 422, notAttributable)
	f(click("GET", "alicelink", "127.0.9.5", "User-Agent", "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"), "user-3", 422, notAttributable)
	f(click("GET", "overlink", "127.0.9.6", "User-Agent", chrome), "user-3", 422, notAttributable)
	// Over the network's rate: the third click of 127.0.9.7 in a minute.
	click("GET", "alicelink", "127.0.9.7", "User-Agent", chrome)
	click("GET", "alicelink", "127.0.9.7", "User-Agent", chrome)
	f(click("GET", "alicelink", "127.0.9.7", "User-Agent", chrome), "user-3", 422, notAttributable)
	// A suspended creator's click stays unattributable when the creator is
	// reactivated; a new click is attributable then.
	suspended := click("GET", "samlink", "127.0.9.8", "User-Agent", chrome)
	f(suspended, "user-3", 422, notAttributable)
	h.call(t, "PUT", "/v1/creators/sam", `{"campaign":"spring","status":"active"}`, 200)
	if err := h.table.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f(suspended, "user-3", 422, notAttributable)
	f(click("GET", "samlink", "127.0.9.9", "User-Agent", chrome), "user-3", 201, `"creator":"sam"`)

	for creator, want := range map[string]int64{"alice": 2, "sam": 1} {
		days, err := h.store.Stats(ctx, "spring", creator)
		if err != nil {
			t.Fatal(err)
		}
		if got := counter.Total(days)[counter.Signup]; got != want {
			t.Fatalf("unexpected signups for %s; got %d; want %d", creator, got, want)
		}
	}
}

const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func toString(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// FuzzConversion feeds arbitrary bodies and signature headers: never a
// server error, never a credit without a valid, attributable click id.
func FuzzConversion(f *testing.F) {
	// Inside the seeded campaign, 2026-05-11 to 2026-06-22.
	arrival := time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)
	f.Add(conversionBody(clickID("spring", "alice", arrival.Add(-time.Hour), true), "u", arrival.Add(-30*time.Minute)), "")
	f.Add(conversionBody(clickID("spring", "alice", arrival.Add(-time.Hour), false), "u", arrival), "")
	f.Add(`{"click_id":"AAAA","user_id":"u","occurred_at":"2026-01-01T00:00:00Z"}`, "t=1,v1=00")
	f.Add(`{`, "t=,v1=")
	h := newHarness(f)
	h.seed(f)
	h.api.o.Now = func() time.Time { return arrival }
	f.Fuzz(func(t *testing.T, body, sig string) {
		headers := []string{"Authorization", "Bearer " + appKey}
		if sig != "" {
			headers = []string{"X-Clickgate-Signature", sig}
		}
		status, out := h.convert(t, body, headers...)
		if status >= 500 || (status >= 400 && out["error"] == nil) {
			t.Fatalf("unexpected answer to %q / %q; got %d %v", body, sig, status, out)
		}
		if status == 201 {
			var req conversionRequest
			if err := json.Unmarshal([]byte(body), &req); err != nil {
				t.Fatalf("credited a body that does not decode: %q: %v", body, err)
			}
			if c, err := clicks.Parse([]byte(req.ClickID)); err != nil || !c.Attributable {
				t.Fatalf("credited a body without a valid, attributable click id: %q (%+v, %v)", body, c, err)
			}
		}
	})
}

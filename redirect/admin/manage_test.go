package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
)

// list reads every page of a list at path with limit, and returns the
// ids of its entries (by idKey) in order.
func (h *harness) list(t *testing.T, path, field, idKey string, limit int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("list %s does not end", path)
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		p := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		out := h.call(t, "GET", p, "", 200)
		items, _ := out[field].([]any)
		if len(items) > limit {
			t.Fatalf("page of %s has %d entries; limit %d", path, len(items), limit)
		}
		for _, it := range items {
			m := it.(map[string]any)
			id := fmt.Sprint(m[idKey])
			if idKey == "creator" {
				id = fmt.Sprint(m["campaign"], "/", m["id"])
			}
			ids = append(ids, id)
		}
		next, _ := out["next_cursor"].(string)
		if next == "" {
			return ids
		}
		cursor = next
	}
}

func TestLists(t *testing.T) {
	h := newHarness(t)
	for _, c := range []string{"spring", "autumn", "winter"} {
		h.call(t, "PUT", "/v1/campaigns/"+c, campaignBody, 201)
	}
	for _, cr := range []string{"carol", "alice", "bob"} {
		h.call(t, "PUT", "/v1/creators/"+cr, `{"campaign":"spring","country":"US"}`, 201)
	}
	h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"autumn","country":"US","status":"invited"}`, 201)
	var codes []string
	for i := range 7 {
		creator := []string{"alice", "bob"}[i%2]
		code := fmt.Sprintf("code%04d", 7-i)
		h.call(t, "POST", "/v1/links", fmt.Sprintf(`{"campaign":"spring","creator":%q,"code":%q,"destinations":{"default":"https://app.example.com/"}}`, creator, code), 201)
		codes = append(codes, code)
	}
	h.call(t, "POST", "/v1/links", `{"campaign":"autumn","creator":"alice","code":"autumn01","destinations":{"default":"https://app.example.com/"}}`, 201)

	f := func(path, field, idKey string, want ...string) {
		t.Helper()
		for _, limit := range []int{1, 2, 3, 1000} {
			got := h.list(t, path, field, idKey, limit)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("unexpected %s with limit %d; got %v; want %v", path, limit, got, want)
			}
		}
	}
	f("/v1/campaigns", "campaigns", "id", "autumn", "spring", "winter")
	f("/v1/creators", "creators", "creator", "autumn/alice", "spring/alice", "spring/bob", "spring/carol")
	f("/v1/creators?campaign=spring", "creators", "creator", "spring/alice", "spring/bob", "spring/carol")
	f("/v1/creators?status=invited", "creators", "creator", "autumn/alice")
	f("/v1/creators?campaign=winter", "creators", "creator")
	f("/v1/links?campaign=spring&creator=bob", "links", "code", "code0002", "code0004", "code0006")
	f("/v1/links?creator=alice", "links", "code", "autumn01", "code0001", "code0003", "code0005", "code0007")
	f("/v1/links?campaign=autumn", "links", "code", "autumn01")
	// The links are listed from this node's link table: one another node
	// created a moment ago is in them.
	if err := h.store.CreateLink(context.Background(), counter.Link{Code: "code0000", Campaign: "spring", Creator: "bob",
		Destinations: counter.Destinations{Default: "https://app.example.com/"}, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	f("/v1/links?campaign=spring&creator=bob", "links", "code", "code0000", "code0002", "code0004", "code0006")

	// A link's URL is in the list; a disabled link is listed, and can
	// be filtered.
	out := h.call(t, "GET", "/v1/links?limit=1", "", 200)
	if l := out["links"].([]any)[0].(map[string]any); l["url"] != "https://go.example.com/autumn01" || l["disabled"] != false {
		t.Fatalf("unexpected first link; got %v", l)
	}
	h.call(t, "PATCH", "/v1/links/code0003", `{"disabled":true}`, 200)
	f("/v1/links?disabled=true", "links", "code", "code0003")
	f("/v1/links?campaign=spring&creator=alice&disabled=false", "links", "code", "code0001", "code0005", "code0007")

	// A page goes on after its cursor whatever was added before it.
	out = h.call(t, "GET", "/v1/campaigns?limit=2", "", 200)
	h.call(t, "PUT", "/v1/campaigns/aaa", campaignBody, 201)
	out = h.call(t, "GET", "/v1/campaigns?limit=2&cursor="+out["next_cursor"].(string), "", 200)
	if cs := out["campaigns"].([]any); len(cs) != 1 || cs[0].(map[string]any)["id"] != "winter" || out["next_cursor"] != nil {
		t.Fatalf("unexpected page after the cursor; got %v", out)
	}

	// Bad input is a clear 400, an unknown filter object a 404 naming it.
	bad := func(path string, status int, msg string) {
		t.Helper()
		out := h.call(t, "GET", path, "", status)
		if e, _ := out["error"].(string); !strings.Contains(e, msg) {
			t.Fatalf("unexpected error for %s; got %q; want it to say %q", path, e, msg)
		}
	}
	bad("/v1/campaigns?limit=0", 400, "limit \"0\" must be a whole number from 1 to 1000")
	bad("/v1/campaigns?limit=1001", 400, "limit")
	bad("/v1/campaigns?limit=%2B5", 400, "limit")
	bad("/v1/campaigns?limit=", 400, "limit")
	bad("/v1/campaigns?cursor=!!", 400, "is not a cursor of this list")
	bad("/v1/creators?cursor="+h.call(t, "GET", "/v1/campaigns?limit=1", "", 200)["next_cursor"].(string), 400, "is not a cursor of this list")
	bad("/v1/links?cursor=bGlua3M6Li4v", 400, "malformed key") // "links:../"
	bad("/v1/creators?campaign=nope", 404, `campaign "nope" does not exist`)
	bad("/v1/creators?campaign=a/b", 400, "campaign")
	bad("/v1/creators?status=gone", 400, "status")
	bad("/v1/links?campaign=spring&creator=zed", 404, `creator "zed" does not exist in campaign "spring"`)
	bad("/v1/links?creator=zed", 404, `creator "zed" does not exist in any campaign`)
	bad("/v1/links?disabled=maybe", 400, "disabled")
	if status, _ := h.do(t, "DELETE", "/v1/links", "Bearer "+token, ""); status != 405 {
		t.Fatalf("unexpected status of DELETE /v1/links; got %d; want 405", status)
	}
}

func TestPatchLink(t *testing.T) {
	h := newHarness(t)
	h.seed(t)
	h.call(t, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","code":"patch001","destinations":{"default":"https://app.example.com/a","ios":"https://apps.apple.com/app/id1"},"preview":{"title":"T"}}`, 201)
	out := h.call(t, "PATCH", "/v1/links/patch001", `{"destinations":{"android":"https://play.google.com/x"},"preview":{"description":"D"}}`, 200)
	d := out["destinations"].(map[string]any)
	p := out["preview"].(map[string]any)
	if d["default"] != "https://app.example.com/a" || d["ios"] != "https://apps.apple.com/app/id1" || d["android"] != "https://play.google.com/x" ||
		p["title"] != "T" || p["description"] != "D" || out["disabled"] != false || out["url"] != "https://go.example.com/patch001" {
		t.Fatalf("unexpected link after a partial change; got %v", out)
	}
	out = h.call(t, "PATCH", "/v1/links/patch001", `{"destinations":{"ios":""},"disabled":true}`, 200)
	if d := out["destinations"].(map[string]any); d["ios"] != nil || out["disabled"] != true {
		t.Fatalf("unexpected link after clearing ios and disabling; got %v", out)
	}
	if lookup(h.table, "patch001") != nil {
		t.Fatalf("a disabled link is served by this node's table")
	}
	h.call(t, "PATCH", "/v1/links/patch001", `{"disabled":false}`, 200)
	if e := lookup(h.table, "patch001"); e == nil || e.Link.Destinations.Android != "https://play.google.com/x" {
		t.Fatalf("unexpected entry once enabled; got %+v", e)
	}

	// Bad input changes nothing.
	before, _ := h.store.Link(context.Background(), "patch001")
	v0, _ := h.store.Version(context.Background())
	for _, c := range []struct {
		body   string
		status int
		msg    string
	}{
		{`{}`, 400, "nothing to change"},
		{``, 400, "empty"},
		{`{"code":"other"}`, 400, "unknown field"},
		{`{"campaign":"autumn"}`, 400, "unknown field"},
		{`{"destinations":{"default":""}}`, 422, "destinations.default cannot be empty"},
		{`{"destinations":{"default":"http://app.example.com/"}}`, 422, "destinations.default"},
		{`{"destinations":{"ios":"https://go.example.com/loop"}}`, 422, "destinations.ios"},
		{`{"destinations":{"default":"https://ok.example.com/"},"preview":{"image":"javascript:x"}}`, 422, "preview.image"},
		{`{"disabled":"yes"}`, 400, "invalid JSON body"},
		{`{"disabled":true} {}`, 400, "data after"},
	} {
		status, out := h.do(t, "PATCH", "/v1/links/patch001", "Bearer "+token, c.body)
		if e, _ := out["error"].(string); status != c.status || !strings.Contains(e, c.msg) {
			t.Fatalf("unexpected answer to %s; got %d %q; want %d saying %q", c.body, status, e, c.status, c.msg)
		}
	}
	after, _ := h.store.Link(context.Background(), "patch001")
	if v, _ := h.store.Version(context.Background()); after != before || v != v0 {
		t.Fatalf("refused changes changed the link: %+v; was %+v (version %d, was %d)", after, before, v, v0)
	}
	for _, code := range []string{"nope0001", "x"} {
		out := h.call(t, "PATCH", "/v1/links/"+code, `{"disabled":true}`, 404)
		if e, _ := out["error"].(string); !strings.Contains(e, "does not exist") {
			t.Fatalf("unexpected 404 for %q: %v", code, out)
		}
	}
}

func TestLinkStatsAndTotals(t *testing.T) {
	h := newHarness(t)
	h.seed(t)
	h.call(t, "PUT", "/v1/creators/bob", `{"campaign":"spring","country":"US"}`, 201)
	h.call(t, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","code":"stats001","destinations":{"default":"https://app.example.com/"}}`, 201)
	ctx := context.Background()
	day := counter.DayOf(mustTime(t, "2026-05-12T10:00:00Z"))
	next := counter.DayOf(mustTime(t, "2026-05-13T10:00:00Z"))
	must(t, h.store.AddCounts(ctx, []counter.Count{
		{Campaign: "spring", Creator: "alice", Day: day, Reason: counter.Bot, N: 3},
		{Campaign: "spring", Creator: "alice", Link: "stats001", Day: next, Reason: counter.Bot, N: 1},
		{Campaign: "spring", Creator: "bob", Day: day, Reason: counter.Bot, N: 5},
		{Campaign: "spring", Creator: "bob", Day: day, Reason: counter.Preview, N: 2},
	}))
	// Visits of two links of alice's: each link has its own, the bots
	// added with a link are the link's too, and the others alice's alone.
	h.call(t, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","code":"stats002","destinations":{"default":"https://app.example.com/"}}`, 201)
	visits := make([]counter.Visit, 0, 4)
	for i, link := range []string{"stats001", "stats001", "stats002", "stats001"} {
		v := counter.Visit{Campaign: "spring", Creator: "alice", Link: link}
		v.Key[0] = byte(i % 3) // the fourth is the first visitor again
		v.SetWindow(mustTime(t, "2026-05-12T10:00:00Z"), 24*time.Hour)
		visits = append(visits, v)
	}
	must(t, h.store.Commit(ctx, visits, make([]counter.Reason, len(visits))))
	out := h.call(t, "GET", "/v1/links/stats001/stats?by=day", "", 200)
	days := out["days"].([]any)
	if out["qualified"] != 2.0 || out["duplicates"] != 1.0 || out["bots"] != 1.0 || out["clicks"] != 4.0 || out["creator"] != "alice" ||
		out["counted_per"] != "link" || len(days) != 2 || days[0].(map[string]any)["day"] != day.String() || days[0].(map[string]any)["qualified"] != 2.0 ||
		days[1].(map[string]any)["day"] != next.String() || days[1].(map[string]any)["bots"] != 1.0 {
		t.Fatalf("unexpected link stats; got %v", out)
	}
	if out = h.call(t, "GET", "/v1/links/stats002/stats", "", 200); out["qualified"] != 1.0 || out["duplicates"] != 0.0 || out["bots"] != 0.0 || out["days"] != nil {
		t.Fatalf("unexpected stats of the second link; got %v", out)
	}
	if out = h.call(t, "GET", "/v1/creators/alice/stats?campaign=spring", "", 200); out["qualified"] != 3.0 || out["duplicates"] != 1.0 || out["bots"] != 4.0 {
		t.Fatalf("unexpected stats of alice, the sum of her links and her bots; got %v", out)
	}
	out = h.call(t, "GET", "/v1/campaigns/spring/totals", "", 200)
	if out["bots"] != 9.0 || out["previews"] != 2.0 || out["clicks"] != 15.0 || out["creators"] != 2.0 {
		t.Fatalf("unexpected campaign totals; got %v", out)
	}
	out = h.call(t, "GET", "/v1/campaigns/spring/totals?by=creator", "", 200)
	if rows := out["by_creator"].([]any); len(rows) != 2 || rows[1].(map[string]any)["creator"] != "bob" || rows[1].(map[string]any)["clicks"] != 7.0 {
		t.Fatalf("unexpected totals by creator; got %v", out)
	}
	out = h.call(t, "GET", "/v1/campaigns/spring/totals?by=day", "", 200)
	if days := out["days"].([]any); len(days) != 2 || days[0].(map[string]any)["clicks"] != 14.0 || days[1].(map[string]any)["day"] != next.String() {
		t.Fatalf("unexpected totals by day; got %v", out)
	}
	h.call(t, "GET", "/v1/campaigns/nope/totals", "", 404)
	h.call(t, "GET", "/v1/campaigns/spring/totals?by=week", "", 400)
	h.call(t, "GET", "/v1/links/nope0001/stats", "", 404)
	h.call(t, "GET", "/v1/links/stats001/stats?by=hour", "", 400)
}

// raw serves one request and returns status, content type and body.
func (h *harness) raw(method, path string) (int, string, []byte) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	ctx.Request.Header.Set("Authorization", "Bearer "+token)
	h.api.Handle(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Header.ContentType()), append([]byte(nil), ctx.Response.Body()...)
}

// TestLinkQR: the PNG decodes, with ZXing's decoder, to exactly the link's
// public URL; the SVG is well-formed XML of the size asked for.
func TestLinkQR(t *testing.T) {
	h := newHarness(t)
	h.seed(t)
	h.call(t, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","code":"qrcode01","destinations":{"default":"https://app.example.com/"}}`, 201)
	for _, size := range []string{"", "?size=100", "?size=512"} {
		status, ct, b := h.raw("GET", "/v1/links/qrcode01/qr.png"+size)
		if status != 200 || ct != "image/png" {
			t.Fatalf("unexpected answer for qr.png%s; got %d %q %.100q", size, status, ct, b)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("unexpected PNG: %s", err)
		}
		want := map[string]int{"": 256, "?size=100": 100, "?size=512": 512}[size]
		if r := img.Bounds(); r.Dx() != want || r.Dy() != want {
			t.Fatalf("unexpected PNG size for %q; got %v; want %d", size, r, want)
		}
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		must(t, err)
		// A generated image: see qrcode's test for why PURE_BARCODE.
		res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
		if err != nil || res.GetText() != "https://go.example.com/qrcode01" {
			t.Fatalf("unexpected QR text; got %v, %v; want https://go.example.com/qrcode01", res, err)
		}
	}
	status, ct, b := h.raw("GET", "/v1/links/qrcode01/qr.svg?size=300")
	if status != 200 || ct != "image/svg+xml" {
		t.Fatalf("unexpected answer for qr.svg; got %d %q", status, ct)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var root xml.StartElement
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %s", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root.Name.Local == "" {
			root = se.Copy()
		}
	}
	attrs := map[string]string{}
	for _, a := range root.Attr {
		attrs[a.Name.Local] = a.Value
	}
	if root.Name.Local != "svg" || attrs["width"] != "300" || attrs["height"] != "300" {
		t.Fatalf("unexpected SVG root %v %v", root.Name, attrs)
	}

	for _, c := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/v1/links/qrcode01/qr.png?size=abc", 400, `size "abc" must be a whole number of pixels from 64 to 2048`},
		{"/v1/links/qrcode01/qr.png?size=-5", 400, "size"},
		{"/v1/links/qrcode01/qr.svg?size=63", 400, "out of range"},
		{"/v1/links/qrcode01/qr.svg?size=99999999999999999999", 400, "size"},
		{"/v1/links/qrcode01/qr.png?size=4096", 400, "out of range"},
		{"/v1/links/nope0001/qr.png", 404, `link "nope0001" does not exist`},
		{"/v1/links/qrcode01/qr.gif", 404, "no such endpoint"},
	} {
		status, _, b := h.raw("GET", c.path)
		var out struct{ Error string }
		json.Unmarshal(b, &out)
		if status != c.status || !strings.Contains(out.Error, c.msg) {
			t.Fatalf("unexpected answer for %s; got %d %s; want %d saying %q", c.path, status, b, c.status, c.msg)
		}
	}
}

// FuzzListQuery sends arbitrary query strings to the lists: a list answers
// 200 or a 400/404 with a JSON error, never anything else.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{"limit=2", "cursor=Y2FtcGFpZ25zOnNwcmluZw", "campaign=spring&creator=alice&disabled=true",
		"limit=0&cursor=%00", "status=active", "cursor=bGlua3M6Li4v", "limit=99999999999999999999"} {
		f.Add(s)
	}
	h := newHarness(f)
	h.seed(f)
	h.call(f, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","code":"fuzz0001","destinations":{"default":"https://app.example.com/"}}`, 201)
	f.Fuzz(func(t *testing.T, query string) {
		for _, list := range []string{"/v1/campaigns", "/v1/creators", "/v1/links", "/v1/links/fuzz0001/qr.svg", "/v1/campaigns/spring/totals"} {
			status, _, b := h.raw("GET", list+"?"+query)
			var out struct{ Error string }
			switch {
			case status == 200:
			case status == 400 || status == 404:
				if err := json.Unmarshal(b, &out); err != nil || out.Error == "" {
					t.Fatalf("%d without a JSON error for %s?%s: %q", status, list, query, b)
				}
			default:
				t.Fatalf("unexpected status %d for %s?%s: %.200q", status, list, query, b)
			}
		}
	})
}

// FuzzPatchLink sends arbitrary PATCH bodies: the answer is 200 with a
// link that the table serves or not as it says, or a 4xx that changed
// nothing.
func FuzzPatchLink(f *testing.F) {
	for _, s := range []string{`{"disabled":true}`, `{"destinations":{"default":"https://a.example/"}}`, `{"preview":{"title":"x"}}`,
		`{"destinations":{"ios":""},"disabled":false}`, `{"destinations":null}`, `[]`, `{"preview":{"image":"https://i.example/x.png"}}`} {
		f.Add(s)
	}
	h := newHarness(f)
	h.seed(f)
	h.call(f, "POST", "/v1/links", `{"campaign":"spring","creator":"alice","code":"fuzz0001","destinations":{"default":"https://app.example.com/"}}`, 201)
	f.Fuzz(func(t *testing.T, body string) {
		before, _ := h.store.Link(context.Background(), "fuzz0001")
		status, out := h.do(t, "PATCH", "/v1/links/fuzz0001", "Bearer "+token, body)
		after, _ := h.store.Link(context.Background(), "fuzz0001")
		switch {
		case status == 200:
			if served := lookup(h.table, "fuzz0001") != nil; served == after.Disabled || out["disabled"] != after.Disabled {
				t.Fatalf("link disabled %v, answer %v, served %v", after.Disabled, out["disabled"], served)
			}
		case status == 400 || status == 422:
			if after != before {
				t.Fatalf("refused body %q changed the link: %+v; was %+v", body, after, before)
			}
		default:
			t.Fatalf("unexpected status %d for %q: %v", status, body, out)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	must(t, err)
	return v
}

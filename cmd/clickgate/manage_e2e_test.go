package main

import (
	"bytes"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// TestLinkManagement runs two nodes of the real binary on one real Redis
// and manages a link with the CLI on the first: the short link's query
// reaches the destination with only the real click id; a disabled link
// answers on both nodes, within their poll interval, with the very bytes
// of an unknown code and counts nothing, and is served again once
// enabled; a new destination reaches the other node; the campaign's
// passthrough switch turns the query off; the QR code decodes to the
// link's URL; lists page; a 404 names the missing object.
func TestLinkManagement(t *testing.T) {
	srv := redistest.Start(t)
	a := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret)
	b := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "0")
	code := a.setup(t)
	link := a.mustCall(t, "GET", "/v1/links/"+code, nil, 200)
	linkURL, _ := link["url"].(string)

	cli := cliRun{t, a}
	run, ok, refused := cli.run, cli.ok, cli.refused

	person := newClicker("127.0.9.1")
	get := func(p *proc, target string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+p.public+"/"+target, nil)
		req.Header.Set("User-Agent", e2eChrome)
		resp, err := person.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}
	// within waits up to a second and a half (the poll interval is
	// 250ms) for node p to answer target with status.
	within := func(p *proc, target string, status int) *http.Response {
		t.Helper()
		deadline := time.Now().Add(1500 * time.Millisecond)
		for {
			resp, _ := get(p, target)
			if resp.StatusCode == status {
				return resp
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s still answers %s with %d after 1.5s; want %d", p.public, target, resp.StatusCode, status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	within(b, code, 302)

	// Passthrough: utm_source kept, the forged click id gone, the real
	// one there, once.
	resp := within(a, code+"?utm_source=tiktok&cg_click=forged&cg%5Fclick=forged2", 302)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if q.Get("utm_source") != "tiktok" || len(q[redirect.DefaultClickParam]) != 1 || loc.Host != "app.example.com" || loc.Path != "/join" {
		t.Fatalf("unexpected redirect with a query; got %s", loc)
	}
	_, key := redirect.DeriveKeys([]byte(e2eSecret))
	if claims, err := clickid.NewSigner(key).Parse([]byte(q.Get(redirect.DefaultClickParam))); err != nil || claims.Link != code {
		t.Fatalf("the click id is not the real one: %v, %+v", err, claims)
	}
	before := a.stats(t)

	// Disabled: both nodes answer as for an unknown code, byte for byte.
	unknownResp, unknownBody := get(a, "ZZZZZZZZ")
	out := ok("links", "disable", code)
	if out["disabled"] != true || out["code"] != code {
		t.Fatalf("unexpected answer of links disable: %v", out)
	}
	for _, p := range []*proc{a, b} {
		within(p, code, 404)
		for range 3 {
			resp, body := get(p, code+"?utm_source=x")
			if resp.StatusCode != unknownResp.StatusCode || !bytes.Equal(body, unknownBody) ||
				resp.Header.Get("Content-Type") != unknownResp.Header.Get("Content-Type") || resp.Header.Get("Location") != "" {
				t.Fatalf("a disabled link answers %d %q; an unknown code %d %q", resp.StatusCode, body, unknownResp.StatusCode, unknownBody)
			}
		}
	}
	if after := a.stats(t); after["clicks"] != before["clicks"] {
		t.Fatalf("clicks on a disabled link were counted; got %v; had %v", after["clicks"], before["clicks"])
	}
	out = ok("links", "list", "--campaign", "spring", "--disabled", "true")
	if links := out["links"].([]any); len(links) != 1 || links[0].(map[string]any)["code"] != code {
		t.Fatalf("unexpected disabled links; got %v", out)
	}

	// Enabled, with a new destination, on both nodes.
	ok("links", "enable", code)
	out = ok("links", "patch", code, "--default", "https://app.example.com/new?src=cg", "--preview-title", "Join")
	if d := out["destinations"].(map[string]any); d["default"] != "https://app.example.com/new?src=cg" || out["disabled"] != false ||
		out["preview"].(map[string]any)["title"] != "Join" {
		t.Fatalf("unexpected answer of links patch: %v", out)
	}
	for _, p := range []*proc{a, b} {
		deadline := time.Now().Add(1500 * time.Millisecond)
		for {
			resp, _ := get(p, code+"?src=evil&utm_medium=bio")
			loc := resp.Header.Get("Location")
			if resp.StatusCode == 302 && strings.HasPrefix(loc, "https://app.example.com/new?src=cg&utm_medium=bio&cg_click=") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s answers %d %q after 1.5s; want the new destination, its own src and utm_medium", p.public, resp.StatusCode, loc)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The campaign's switch: the destination as it is.
	out = ok("campaigns", "put", "spring", "--query-passthrough", "false")
	if out["query_passthrough"] != false {
		t.Fatalf("unexpected campaign after --query-passthrough false: %v", out)
	}
	resp, _ = get(a, code+"?utm_source=tiktok")
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "https://app.example.com/new?src=cg&cg_click=") {
		t.Fatalf("unexpected redirect with passthrough off; got %q", loc)
	}
	refused(2, `--query-passthrough "maybe": want true or false`, "campaigns", "put", "spring", "--query-passthrough", "maybe")

	// The QR code of the link's URL, from the CLI.
	file := filepath.Join(t.TempDir(), "qr.png")
	if _, stderr, code := run("links", "qr", code, "--format", "png", "--size", "300", "--out", file); code != 0 {
		t.Fatalf("links qr exited %d: %s", code, stderr)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() != 300 {
		t.Fatalf("unexpected PNG: %v", err)
	}
	bmp, _ := gozxing.NewBinaryBitmapFromImage(img)
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil || res.GetText() != linkURL || !strings.HasSuffix(linkURL, "/"+code) {
		t.Fatalf("unexpected QR code; got %v, %v; want %q", res, err, linkURL)
	}
	svg, stderr, exit := run("links", "qr", code)
	if exit != 0 || !strings.Contains(svg, `width="256" height="256"`) {
		t.Fatalf("unexpected links qr (SVG): exit %d %s %.200q", exit, stderr, svg)
	}
	refused(1, "size 10 is out of range", "links", "qr", code, "--size", "10")

	// Lists page, and --all reads every page.
	for i := range 4 {
		a.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": "alice", "code": fmt.Sprintf("list%04d", i),
			"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	}
	page := ok("links", "list", "--creator", "alice", "--limit", "2")
	if len(page["links"].([]any)) != 2 || page["next_cursor"] == nil {
		t.Fatalf("unexpected first page: %v", page)
	}
	all := ok("links", "list", "--campaign", "spring", "--creator", "alice", "--limit", "2", "--all")
	if n := len(all["links"].([]any)); n != 5 {
		t.Fatalf("unexpected links listed with --all; got %d; want 5", n)
	}
	if cs := ok("campaigns", "list")["campaigns"].([]any); len(cs) != 1 || cs[0].(map[string]any)["id"] != "spring" {
		t.Fatalf("unexpected campaigns list: %v", cs)
	}
	if crs := ok("creators", "list", "--campaign", "spring")["creators"].([]any); len(crs) != 1 {
		t.Fatalf("unexpected creators list: %v", crs)
	}
	totals := ok("campaigns", "totals", "spring", "--by", "creator")
	stats := ok("links", "stats", code)
	// alice's clicks are all on code: the link's counts, those decided
	// by the judge and those by the node (the duplicates its filter
	// knew), are hers.
	if totals["qualified"] != stats["qualified"] || totals["duplicates"] != stats["duplicates"] || totals["clicks"] != stats["clicks"] ||
		stats["clicks"] == 0.0 || stats["counted_per"] != "link" || totals["creators"] != 1.0 {
		t.Fatalf("unexpected totals %v and link stats %v", totals, stats)
	}

	// A catalog exported and imported keeps a disabled link disabled.
	ok("links", "disable", "list0001")
	catalog := filepath.Join(t.TempDir(), "catalog.json")
	if _, stderr, code := run("catalog", "export", "--file", catalog); code != 0 {
		t.Fatalf("catalog export exited %d: %s", code, stderr)
	}
	if out := ok("catalog", "import", "--file", catalog); out["links"] != 5.0 {
		t.Fatalf("unexpected catalog import: %v", out)
	}
	if l := a.mustCall(t, "GET", "/v1/links/list0001", nil, 200); l["disabled"] != true {
		t.Fatalf("a disabled link was enabled by a catalog import: %v", l)
	}

	// 404s name what is missing; bad input changes nothing.
	refused(1, `link "NOPE0001" does not exist`, "links", "patch", "NOPE0001", "--disabled", "true")
	refused(1, `link "NOPE0001" does not exist`, "links", "stats", "NOPE0001")
	refused(1, `campaign "nope" does not exist`, "creators", "list", "--campaign", "nope")
	refused(1, `campaign "nope" does not exist`, "campaigns", "totals", "nope")
	refused(1, `creator "zed" does not exist in campaign "spring"`, "links", "list", "--campaign", "spring", "--creator", "zed")
	refused(2, "nothing to change", "links", "patch", code)
	refused(2, `--disabled "maybe"`, "links", "patch", code, "--disabled", "maybe")
	refused(1, "destinations.default", "links", "patch", code, "--default", "http://insecure.example.com/")
	refused(1, "cursor", "links", "list", "--cursor", "bogus")
	if l := a.mustCall(t, "GET", "/v1/links/"+code, nil, 200); l["destinations"].(map[string]any)["default"] != "https://app.example.com/new?src=cg" {
		t.Fatalf("a refused patch changed the link: %v", l)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
)

// The dashboard in a real headless Chromium (Debian's chromium), against
// the real binary: an operator logs in, creates a campaign, creators and
// links through the forms, people click, and the leaderboard, the chart
// and a creator's own page show the clicks. The test fails, never skips,
// when Chromium is missing or does not start (.ci/run installs it).

var dashboardRE = regexp.MustCompile(`dashboard=(\S+)`)

// chromium returns a browser context of a new headless Chromium.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("chromium is required for the dashboard's browser tests (apt-get install chromium; .ci/run installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser, which lives as long as the
	// context of that action: ctx itself, bounded by a timer instead.
	timer := time.AfterFunc(60*time.Second, cancel)
	err := chromedp.Do(ctx, chromedp.Navigate("about:blank"))
	if !timer.Stop() || err != nil {
		t.Fatalf("cannot start chromium %s (within 60s): %v", path, err)
	}
	return ctx
}

// browse runs browser actions with a bound.
func browse(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("cannot %s: %v", what, err)
	}
}

// read runs one browser action that returns a value.
func read[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("cannot %s: %v", what, err)
	}
	return v
}

// text returns the text of the element sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return read(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func html(t *testing.T, ctx context.Context) string {
	t.Helper()
	return read(t, ctx, "read the page", chromedp.OuterHTML(chromedp.CSS("html")))
}

// screenshot saves the whole page as NAME.png under the artifacts
// directory ($CLICKGATE_ARTIFACTS, or the test's temporary directory) and
// checks that it is not blank: a PNG of more than one colour.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	buf := read(t, ctx, "take a screenshot of "+name, chromedp.FullScreenshot(100))
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	colors := 1
	r0, g0, b0, _ := first.RGBA()
	for y := b.Min.Y; y < b.Max.Y && colors < 2; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			if r, g, bl, _ := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 {
				colors++
				break
			}
		}
	}
	if colors < 2 {
		t.Fatalf("screenshot %s is blank (one colour)", name)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%dx%d)", path, b.Dx(), b.Dy())
}

func artifactsDir(t *testing.T) string {
	if dir := os.Getenv("CLICKGATE_ARTIFACTS"); dir != "" {
		dir = filepath.Join(dir, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// personClick is one person's click on code from the loopback address ip.
func personClick(t *testing.T, p *proc, ip, code string) {
	t.Helper()
	c := newClicker(ip)
	req, _ := http.NewRequest("GET", "http://"+p.public+"/"+code, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 {
		t.Fatalf("unexpected status of a click on %s; got %d; want 302", code, resp.StatusCode)
	}
}

func TestDashboardInBrowser(t *testing.T) {
	artifacts := artifactsDir(t)
	// A low velocity limit, so that one network's clicks show in the
	// fraud panel.
	p := startServe(t, t.TempDir(), "--dashboard-listen", "127.0.0.1:0", "--velocity-max", "3")
	m := dashboardRE.FindStringSubmatch(p.logs())
	if m == nil {
		t.Fatalf("no dashboard address in the log:\n%s", p.logs())
	}
	dash := "http://" + m[1]
	op := chromium(t)

	// Log in: the session cookie is Secure, which Chromium keeps on
	// http://127.0.0.1 (a secure context); without it the next page
	// would be the login form again.
	browse(t, op, "log in",
		chromedp.Navigate(dash+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	)
	screenshot(t, op, artifacts, "login")
	browse(t, op, "log in",
		chromedp.SendKeys(chromedp.CSS("#token"), p.token),
		chromedp.Submit(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#new-campaign")),
	)

	// A campaign, two creators and a link each, through the forms.
	today := time.Now().UTC()
	browse(t, op, "create a campaign",
		chromedp.SetValue(chromedp.CSS(`#new-campaign input[name=id]`), "spring"),
		chromedp.SetValue(chromedp.CSS(`#new-campaign input[name=name]`), "Spring launch"),
		chromedp.SetValue(chromedp.CSS(`#new-campaign input[name=starts_at]`), today.Add(-24*time.Hour).Format(time.DateOnly)),
		chromedp.SetValue(chromedp.CSS(`#new-campaign input[name=ends_at]`), today.Add(30*24*time.Hour).Format(time.DateOnly)),
		chromedp.SetValue(chromedp.CSS(`#new-campaign input[name=eligible_countries]`), "US"),
		chromedp.Submit(chromedp.CSS("#new-campaign")),
		chromedp.WaitVisible(chromedp.CSS("#new-creator")),
	)
	for _, c := range []string{"alice", "bob"} {
		browse(t, op, "add creator "+c,
			chromedp.SetValue(chromedp.CSS(`#new-creator input[name=id]`), c),
			chromedp.SetValue(chromedp.CSS(`#new-creator input[name=handle]`), "@"+c+"_handle"),
			chromedp.SetValue(chromedp.CSS(`#new-creator input[name=country]`), "US"),
			chromedp.SetValue(chromedp.CSS(`#new-creator select[name=status]`), "active"),
			chromedp.Submit(chromedp.CSS("#new-creator")),
			chromedp.WaitVisible(chromedp.CSS(`#leaderboard tr[data-creator=`+c+`]`)),
		)
		browse(t, op, "create a link for "+c,
			chromedp.SetValue(chromedp.CSS(`#new-link input[name=creator]`), c),
			chromedp.SetValue(chromedp.CSS(`#new-link input[name=default]`), "https://app.example.com/join"),
			chromedp.Submit(chromedp.CSS("#new-link")),
			chromedp.WaitVisible(chromedp.CSS(`#done`)),
		)
	}
	codes := read(t, op, "read the links", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#links tr[data-code]')].map(r => r.dataset.code + ' ' + r.children[2].textContent)`))
	byCreator := map[string]string{}
	for _, s := range codes {
		code, creator, _ := strings.Cut(s, " ")
		byCreator[creator] = code
	}
	if byCreator["alice"] == "" || byCreator["bob"] == "" {
		t.Fatalf("unexpected links on the page: %q", codes)
	}

	// A few people click: 3 on alice's link (one twice), 2 on bob's.
	for i, ip := range []string{"127.0.9.1", "127.0.9.2", "127.0.9.3", "127.0.9.1"} {
		_ = i
		personClick(t, p, ip, byCreator["alice"])
	}
	for _, ip := range []string{"127.0.9.4", "127.0.9.5"} {
		personClick(t, p, ip, byCreator["bob"])
	}
	waitQualified(t, p, "alice", 3)
	waitQualified(t, p, "bob", 2)

	browse(t, op, "open the campaign", chromedp.Navigate(dash+"/campaigns/spring"), chromedp.WaitVisible(chromedp.CSS("#leaderboard")))
	if got := text(t, op, `#leaderboard tr[data-creator=alice] td.qualified`); got != "3" {
		t.Fatalf("unexpected qualified visits of alice on the leaderboard; got %q; want 3", got)
	}
	if got := text(t, op, `#leaderboard tr[data-creator=bob] td.qualified`); got != "2" {
		t.Fatalf("unexpected qualified visits of bob on the leaderboard; got %q; want 2", got)
	}
	day := today.Format(time.DateOnly)
	page := html(t, op)
	for _, want := range []string{day + " qualified: 5", day + " duplicates: 1"} {
		if !strings.Contains(page, "<title>"+want+"</title>") {
			t.Fatalf("the chart does not show %q:\n%s", want, page)
		}
	}
	bars := read(t, op, "count the chart's bars", chromedp.Evaluate[int](`document.querySelectorAll('svg.chart rect.bar').length`))
	if bars != 2 {
		t.Fatalf("unexpected bar segments in the chart; got %d; want 2 (qualified, duplicates)", bars)
	}
	screenshot(t, op, artifacts, "campaign")
	browse(t, op, "open the campaigns", chromedp.Navigate(dash+"/"), chromedp.WaitVisible(chromedp.CSS("#campaigns")))
	if got := text(t, op, `#campaigns tr[data-campaign=spring]`); !strings.Contains(got, "running until") {
		t.Fatalf("unexpected campaign row %q", got)
	}
	screenshot(t, op, artifacts, "campaigns")

	// CSRF: the same form without its token is refused, and creates
	// nothing.
	browse(t, op, "post a form without its CSRF token",
		chromedp.SetValue(chromedp.CSS(`#new-campaign input[name=id]`), "forged"),
		chromedp.SetValue(chromedp.CSS(`#new-campaign input[name=starts_at]`), "2026-05-11"),
		chromedp.SetValue(chromedp.CSS(`#new-campaign input[name=ends_at]`), "2026-06-22"),
	)
	read(t, op, "remove the form's CSRF token", chromedp.Evaluate[any](`document.querySelector('#new-campaign input[name=csrf]').remove()`))
	browse(t, op, "post a form without its CSRF token",
		chromedp.Submit(chromedp.CSS("#new-campaign")),
		chromedp.WaitVisible(chromedp.CSS("#error")),
	)
	if got := text(t, op, "h1"); !strings.HasPrefix(got, "403") {
		t.Fatalf("unexpected answer to a form without its CSRF token; got %q; want 403", got)
	}
	if status, _ := p.call(t, "GET", "/v1/campaigns/forged", p.token, nil); status != 404 {
		t.Fatalf("a form without its CSRF token created its campaign (GET: %d)", status)
	}

	// alice's page, by the link the operator mints for her, opened in
	// another browser that has no session.
	browse(t, op, "mint alice's page link",
		chromedp.Navigate(dash+"/campaigns/spring"),
		chromedp.Submit(chromedp.CSS(`#leaderboard tr[data-creator=alice] form`)),
		chromedp.WaitVisible(chromedp.CSS("#page-url-value")),
	)
	pageURL := read(t, op, "read alice's page link", chromedp.Value(chromedp.CSS("#page-url-value")))
	if !strings.HasPrefix(pageURL, dash+"/c/") {
		t.Fatalf("unexpected page link %q", pageURL)
	}
	creator := chromium(t)
	browse(t, creator, "open alice's page", chromedp.Navigate(pageURL), chromedp.WaitVisible(chromedp.CSS("#figures")))
	if got := text(t, creator, "#qualified"); got != "3" {
		t.Fatalf("unexpected qualified visits on alice's page; got %q; want 3", got)
	}
	if got := text(t, creator, "#earned"); got != "$0.00" {
		t.Fatalf("unexpected earnings on alice's page; got %q; want $0.00", got)
	}
	if got := text(t, creator, "#next-block"); got != "997" {
		t.Fatalf("unexpected visits to the next block on alice's page; got %q; want 997", got)
	}
	if got := text(t, creator, `#not-paid tr[data-reason=duplicates] td.num`); got != "1" {
		t.Fatalf("unexpected duplicates on alice's page; got %q; want 1", got)
	}
	page = html(t, creator)
	if !strings.Contains(page, byCreator["alice"]) || !strings.Contains(page, "<title>"+day+" qualified: 3</title>") {
		t.Fatalf("alice's page does not show her link and chart:\n%s", page)
	}
	for _, other := range []string{"bob", byCreator["bob"]} {
		if strings.Contains(page, other) {
			t.Fatalf("alice's page shows %q of another creator:\n%s", other, page)
		}
	}
	// Her link's QR code, as her browser drew it, reads back as exactly
	// the link's URL.
	linkURL := read(t, creator, "read her link's URL", chromedp.Evaluate[string](`document.querySelector('#links li[data-code="`+byCreator["alice"]+`"] span a').href`))
	if !strings.HasSuffix(linkURL, "/"+byCreator["alice"]) {
		t.Fatalf("unexpected link URL on alice's page %q", linkURL)
	}
	if got := qrOnPage(t, creator, `#links li[data-code="`+byCreator["alice"]+`"] img.qr`); got != linkURL {
		t.Fatalf("unexpected text of the QR code on alice's page; got %q; want %q", got, linkURL)
	}
	screenshot(t, creator, artifacts, "creator")
	// Her browser holds no operator session.
	browse(t, creator, "open an operator page", chromedp.Navigate(dash+"/campaigns/spring"), chromedp.WaitVisible(chromedp.CSS("#login")))

	// An edit form's round trip: bob's link gets an iOS destination on
	// its page, which the page and the API then show.
	bobLink := byCreator["bob"]
	browse(t, op, "edit bob's link",
		chromedp.Navigate(dash+"/links/"+bobLink),
		chromedp.WaitVisible(chromedp.CSS("#edit-link")),
		chromedp.SetValue(chromedp.CSS(`#edit-link input[name=ios]`), "https://apps.apple.com/app/id123"),
		chromedp.Submit(chromedp.CSS("#edit-link")),
		chromedp.WaitVisible(chromedp.CSS("#done")),
	)
	if got := text(t, op, "#dest-ios"); got != "https://apps.apple.com/app/id123" {
		t.Fatalf("unexpected iOS destination on the link's page after the edit; got %q", got)
	}
	link := p.mustCall(t, "GET", "/v1/links/"+bobLink, nil, 200)
	if d, _ := link["destinations"].(map[string]any); d["ios"] != "https://apps.apple.com/app/id123" || d["default"] != "https://app.example.com/join" {
		t.Fatalf("unexpected destinations after the edit: %v", link["destinations"])
	}
	screenshot(t, op, artifacts, "link")

	// Fraud: one network clicks bob's link more often than the edge's
	// velocity guard (4 × --velocity-max, 12) allows; the campaign's fraud
	// panel shows the refusals of the day.
	for range 14 {
		personClick(t, p, "127.0.9.9", bobLink)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := p.mustCall(t, "GET", "/v1/creators/bob/stats?campaign=spring", nil, 200)
		if v, _ := out["velocity"].(float64); v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no velocity refusal in bob's stats: %v", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	browse(t, op, "open the campaign's fraud panel", chromedp.Navigate(dash+"/campaigns/spring"), chromedp.WaitVisible(chromedp.CSS("#fraud-days")))
	if got := text(t, op, `#fraud-days tr[data-day="`+day+`"] td.velocity`); got == "" || got == "0" {
		t.Fatalf("unexpected velocity refusals of %s in the fraud panel; got %q; want at least 1", day, got)
	}
	if got := text(t, op, "#ledger"); !strings.Contains(got, "Last flush") || !strings.Contains(got, "Final statement") {
		t.Fatalf("unexpected ledger panel %q", got)
	}
	screenshot(t, op, artifacts, "fraud")
	fmt.Fprintln(os.Stderr, "dashboard screenshots in", artifacts)
}

// qrOnPage returns the text of the QR code in the image sel, as the
// browser drew it: copied from the page into a canvas at its own size and
// read back by ZXing's decoder (as redirect/qrcode's tests read them).
func qrOnPage(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !read(t, ctx, "wait for the QR image", chromedp.Evaluate[bool](`(i => i !== null && i.complete && i.naturalWidth > 0)(document.querySelector('`+sel+`'))`)) {
		if time.Now().After(deadline) {
			t.Fatalf("the QR image %s did not load", sel)
		}
		time.Sleep(50 * time.Millisecond)
	}
	data := read(t, ctx, "copy the QR image", chromedp.Evaluate[string](`(i => { const c = document.createElement('canvas');
		c.width = i.naturalWidth; c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0);
		return c.toDataURL('image/png'); })(document.querySelector('`+sel+`'))`))
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(data, "data:image/png;base64,"))
	if err != nil {
		t.Fatalf("cannot read the QR image's data URL: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the QR image is not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("cannot decode the QR code of %s: %v", sel, err)
	}
	return res.GetText()
}

// waitQualified waits until the creator's stats have n qualified visits.
func waitQualified(t *testing.T, p *proc, creator string, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := p.mustCall(t, "GET", "/v1/creators/"+creator+"/stats?campaign=spring", nil, 200)
		if out["qualified"] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("unexpected stats of %s; got %v; want %v qualified", creator, out, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

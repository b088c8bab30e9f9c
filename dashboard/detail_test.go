package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// decodeQR reads a PNG QR code back with ZXing's decoder, as
// redirect/qrcode's tests do (PURE_BARCODE: a generated image).
func decodeQR(t *testing.T, b []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the QR code is not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("cannot decode the QR code: %v", err)
	}
	return res.GetText()
}

func TestQRCodes(t *testing.T) {
	h := newHarness(t)
	op := h.browser(t)
	seed(t, h, op)
	// The operator's: on the campaign page, each link's.
	op.get("/campaigns/spring").want(t, 200, `src="/links/aliceLink1/qr.svg"`, `src="/links/bobLink1/qr.svg"`)
	p := op.get("/links/aliceLink1/qr.png")
	p.want(t, 200)
	if ct := p.header.Get("Content-Type"); ct != "image/png" {
		t.Fatalf("unexpected content type of a QR PNG; got %q", ct)
	}
	if got := decodeQR(t, []byte(p.body)); got != "https://go.example.com/aliceLink1" {
		t.Fatalf("unexpected text of alice's QR code; got %q; want https://go.example.com/aliceLink1", got)
	}
	svg := op.get("/links/bobLink1/qr.svg")
	svg.want(t, 200, "<svg", `shape-rendering="crispEdges"`)
	if ct := svg.header.Get("Content-Type"); ct != "image/svg+xml" {
		t.Fatalf("unexpected content type of a QR SVG; got %q", ct)
	}
	if cd := op.get("/links/bobLink1/qr.png?download=1").header.Get("Content-Disposition"); !strings.Contains(cd, `filename="bobLink1-qr.png"`) {
		t.Fatalf("unexpected Content-Disposition of a download; got %q", cd)
	}
	op.get("/links/nolink99/qr.svg").want(t, 404, "does not exist")
	op.get("/links/aliceLink1/qr.gif").want(t, 404, "qr.svg and qr.png")
	op.get("/links/a%2Fb/qr.svg").want(t, 404)
	// Without a session, none.
	if p := h.browser(t).get("/links/aliceLink1/qr.png"); p.status != 303 {
		t.Fatalf("unexpected status of an operator QR without a session; got %d; want 303", p.status)
	}

	// A creator's: their own links only, by their page's token.
	alice := h.rotate(t, "spring", "alice")
	b := h.browser(t)
	b.get(alice).want(t, 200, `src="`+alice+`/links/aliceLink1/qr.png"`)
	p = b.get(alice + "/links/aliceLink1/qr.png")
	p.want(t, 200)
	if got := decodeQR(t, []byte(p.body)); got != "https://go.example.com/aliceLink1" {
		t.Fatalf("unexpected text of alice's QR code on her page; got %q", got)
	}
	b.get(alice+"/links/aliceLink1/qr.svg").want(t, 200, "<svg")
	// bob's link is unknown to alice, as a code that does not exist.
	b.get(alice+"/links/bobLink1/qr.png").want(t, 404, `Link &#34;bobLink1&#34; does not exist`)
	b.get(alice+"/links/nolink99/qr.png").want(t, 404, `Link &#34;nolink99&#34; does not exist`)
	// A revoked or forged token opens no QR code.
	h.rotate(t, "spring", "alice")
	b.get(alice+"/links/aliceLink1/qr.png").want(t, 404, "no page at this address")
	b.get("/c/x/links/aliceLink1/qr.png").want(t, 404)
}

func TestEditForms(t *testing.T) {
	h := newHarness(t)
	b := h.browser(t)
	csrf := seed(t, h, b)
	ctx := context.Background()
	before, err := h.store.Campaign(ctx, "spring")
	if err != nil {
		t.Fatal(err)
	}
	// The campaign: the form as shown, with the cap and name changed,
	// changes those two and nothing else (the days shown keep their times).
	p := b.get("/campaigns/spring")
	p.want(t, 200, `id="edit-campaign"`)
	form := formValues(t, p.body, "edit-campaign")
	if form.Get("cap") != "$20,000.00" || form.Get("starts_at") != before.StartsAt.Format(time.DateOnly) {
		t.Fatalf("unexpected edit form as shown: %v", form)
	}
	b.do("POST", "/campaigns/spring", form).want(t, 303)
	if p := b.get("/campaigns/spring?done=unchanged"); !strings.Contains(p.body, "Nothing to save") {
		t.Fatal("no message for an edit that changes nothing")
	}
	form.Set("cap", "25,000")
	form.Set("name", "Spring relaunch")
	p = b.do("POST", "/campaigns/spring", form)
	p.want(t, 303)
	b.get(p.header.Get("Location")).want(t, 200, "Campaign saved.", "Spring relaunch", "$25,000.00")
	after, _ := h.store.Campaign(ctx, "spring")
	if after.CapCents != 2_500_000 || after.Name != "Spring relaunch" || !after.StartsAt.Equal(before.StartsAt) ||
		!after.EndsAt.Equal(before.EndsAt) || after.SignupRewardCents != before.SignupRewardCents {
		t.Fatalf("unexpected campaign after the edit: %+v (before %+v)", after, before)
	}
	// The API's rules refuse, with its message, the form filled in again.
	form.Set("ends_at", "2020-01-01")
	b.do("POST", "/campaigns/spring", form).want(t, 422, "must be after starts_at", `value="2020-01-01"`)
	form.Set("ends_at", "soon")
	b.do("POST", "/campaigns/spring", form).want(t, 422, "ends_at: &#34;soon&#34; is not a day")
	delete(form, "csrf")
	b.do("POST", "/campaigns/spring", form).want(t, 403)
	b.do("POST", "/campaigns/nope", url.Values{"csrf": {csrf}}).want(t, 404)

	// A creator: the handle changes, the rest stays; a country the
	// campaign does not take is refused.
	p = b.get("/campaigns/spring/creators/alice")
	p.want(t, 200, `id="edit-creator"`, "aliceLink1", `src="/links/aliceLink1/qr.svg"`)
	form = formValues(t, p.body, "edit-creator")
	form.Set("handle", "@alice_new")
	b.do("POST", "/campaigns/spring/creators/alice", form).want(t, 303)
	if c, _ := h.store.Creator(ctx, "spring", "alice"); c.Handle != "@alice_new" || c.Country != "US" || c.Status != counter.StatusActive {
		t.Fatalf("unexpected creator after the edit: %+v", c)
	}
	form.Set("country", "FR")
	b.do("POST", "/campaigns/spring/creators/alice", form).want(t, 422, `country &#34;FR&#34; is not eligible`, `value="FR"`)
	form.Set("country", "US")
	form.Set("status", "suspended")
	b.do("POST", "/campaigns/spring/creators/alice", form).want(t, 303)
	b.get("/campaigns/spring/creators/alice").want(t, 200, "suspended", "not paid: suspended")
	b.get("/campaigns/spring/creators/carol").want(t, 404, "does not exist in campaign")

	// A link: its destinations, set and cleared.
	p = b.get("/links/aliceLink1")
	p.want(t, 200, `id="edit-link"`, "https://go.example.com/aliceLink1", "counted for the creator only")
	form = formValues(t, p.body, "edit-link")
	form.Set("ios", "https://apps.apple.com/app/id1")
	b.do("POST", "/links/aliceLink1", form).want(t, 303)
	if l, _ := h.store.Link(ctx, "aliceLink1"); l.Destinations.IOS != "https://apps.apple.com/app/id1" || l.Destinations.Default != "https://app.example.com/join" {
		t.Fatalf("unexpected link after the edit: %+v", l.Destinations)
	}
	form.Set("ios", "")
	form.Set("default", "https://app.example.com/v2")
	b.do("POST", "/links/aliceLink1", form).want(t, 303)
	if l, _ := h.store.Link(ctx, "aliceLink1"); l.Destinations.IOS != "" || l.Destinations.Default != "https://app.example.com/v2" {
		t.Fatalf("unexpected link after the second edit: %+v", l.Destinations)
	}
	form.Set("default", "http://app.example.com/")
	b.do("POST", "/links/aliceLink1", form).want(t, 422, "absolute https URL", `value="http://app.example.com/"`)
	b.do("POST", "/links/nolink99", form).want(t, 404)
	// Disabled from its page, and back to it.
	p = b.do("POST", "/links/aliceLink1/disable", url.Values{"csrf": {csrf}, "from": {"link"}})
	if loc := p.header.Get("Location"); !strings.HasPrefix(loc, "/links/aliceLink1?") {
		t.Fatalf("unexpected page after disabling from the link's page; got %q", loc)
	}
	b.get("/links/aliceLink1").want(t, 200, "disabled: answers like an unknown code")
}

var (
	inputRE = regexp.MustCompile(`<(input|select)[^>]*name="([^"]+)"[^>]*>`)
	valueRE = regexp.MustCompile(`value="([^"]*)"`)
)

// formValues returns the values form id shows: its inputs' values and
// its selects' selected options.
func formValues(t *testing.T, body, id string) url.Values {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no form %q", id)
	}
	form := body[i:]
	form = form[:strings.Index(form, "</form>")]
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(form, -1) {
		val := ""
		if v := valueRE.FindStringSubmatch(m[0]); v != nil {
			val = v[1]
		}
		if m[1] == "select" {
			sel := regexp.MustCompile(`<option value="([^"]*)" selected>`).FindStringSubmatch(form[strings.Index(form, m[0]):])
			if sel != nil {
				val = sel[1]
			}
		}
		v.Set(m[2], unescape(val))
	}
	return v
}

func unescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#34;", `"`, "&lt;", "<", "&gt;", ">", "&#39;", "'").Replace(s)
}

func TestFraudPanel(t *testing.T) {
	h := newHarness(t)
	b := h.browser(t)
	seed(t, h, b)
	b.get("/campaigns/spring").want(t, 200, `id="no-fraud"`)
	day := counter.DayOf(time.Now())
	if err := h.store.AddCounts(context.Background(), []counter.Count{
		{Campaign: "spring", Creator: "alice", Day: day - 2, Reason: counter.Velocity, N: 30},
		{Campaign: "spring", Creator: "alice", Day: day - 2, Reason: counter.Qualified, N: 70},
		{Campaign: "spring", Creator: "bob", Day: day, Reason: counter.Budget, N: 4},
		{Campaign: "spring", Creator: "alice", Day: day, Reason: counter.Velocity, N: 1},
		{Campaign: "spring", Creator: "alice", Day: day - 1, Reason: counter.Qualified, N: 5},
	}); err != nil {
		t.Fatal(err)
	}
	p := b.get("/campaigns/spring")
	// Two days with refusals, latest first; 30 of 100 clicks is 300 per
	// 1,000; the day without any is left out of the table.
	p.want(t, 200, `<tr data-day="`+day.String()+`"><td>`+day.String()+`</td><td class="num velocity">1</td><td class="num budget">4</td><td class="num">1,000</td>`,
		`<tr data-day="`+(day-2).String()+`"><td>`+(day-2).String()+`</td><td class="num velocity">30</td><td class="num budget">0</td><td class="num">300</td>`,
		`id="fraud-velocity">31</th>`, `id="fraud-budget">4</th>`, "<title>"+(day-2).String()+" velocity: 30</title>")
	if strings.Contains(p.body, `<tr data-day="`+(day-1).String()+`">`) {
		t.Fatal("a day without refusals is in the fraud table")
	}
	if strings.Index(p.body, `data-day="`+day.String()+`"><td>`) > strings.Index(p.body, `data-day="`+(day-2).String()+`"><td>`) {
		t.Fatal("the fraud table is not latest first")
	}
	b.get("/").want(t, 200, `<td class="num">31</td>`)
}

// flushes is this node's ledger as cmd/clickgate's flusher gives it: a
// real ledger, and when it was last flushed.
type flushes struct {
	*ledger.Ledger
	last atomic.Int64
}

func (f *flushes) LastFlush() time.Time {
	if ns := f.last.Load(); ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return time.Time{}
}

func (f *flushes) NextFlush() time.Time { return time.Time{} }

func TestLedgerPanel(t *testing.T) {
	var fl flushes
	h := newHarnessWith(t, func(store counter.Store) Ledger {
		l, err := ledger.Open(t.TempDir(), []byte("test ledger key"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if err := l.Init("store-1", time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		fl.Ledger = l
		return &fl
	})
	b := h.browser(t)
	csrf := seed(t, h, b)
	b.get("/campaigns/spring").want(t, 200, `id="last-flush">none yet`, "not in the ledger yet", "not payable yet: sealed at the first flush after")
	ctx := context.Background()
	flush := func(now time.Time) {
		t.Helper()
		if _, err := ledger.Flush(ctx, h.store, fl.Ledger, now); err != nil {
			t.Fatal(err)
		}
		fl.last.Store(now.UnixNano())
	}
	now := time.Now().UTC()
	flush(now)
	b.get("/campaigns/spring").want(t, 200, `id="last-flush">`+now.Format("2006-01-02 15:04:05 UTC"), "#2 written", "in the ledger")
	// A campaign that ended: sealed at the next flush, then sealed.
	b.do("POST", "/campaigns", url.Values{"csrf": {csrf}, "id": {"winter"}, "starts_at": {"2025-01-01"}, "ends_at": {"2025-02-01"}}).want(t, 303)
	b.get("/campaigns/winter").want(t, 200, `id="statement">payable: sealed at the next flush`)
	flush(time.Now().UTC())
	rep := fl.Snapshot()
	st, ok := rep.Statements["winter"]
	if !ok {
		t.Fatal("the flush did not seal the campaign that ended")
	}
	b.get("/campaigns/winter").want(t, 200, `id="statement">sealed: the final statement`, fmt.Sprintf("%.16s", st.LedgerHead), "statement.csv")
}

func TestPagedLists(t *testing.T) {
	h := newHarness(t)
	b := h.browser(t)
	csrf := seed(t, h, b)
	a := NewAdmin(h.api.Handle, token)
	ctx := context.Background()
	// 60 creators in all, 55 links of carol's: more than a page of each.
	for i := range 58 {
		id := fmt.Sprintf("c%02d", i)
		country, status := "US", counter.StatusActive
		if err := a.call(ctx, "PUT", "/v1/creators/"+id, adminclient.CreatorPut{Campaign: "spring", Country: &country, Status: &status}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 55 {
		if err := a.call(ctx, "POST", "/v1/links", adminclient.NewLink{Campaign: "spring", Creator: "c00", Code: fmt.Sprintf("c00Link%02d", i),
			Destinations: counter.Destinations{Default: "https://app.example.com/"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := b.get("/campaigns/spring")
	p.want(t, 200, `id="creator-count">60<`, `id="next-creators"`, `id="next-links"`, "the creators on this page")
	if n := strings.Count(p.body, `<tr data-creator=`); n != creatorsPerPage {
		t.Fatalf("unexpected creators on the first page; got %d; want %d", n, creatorsPerPage)
	}
	next := regexp.MustCompile(`href="\?creators=([^"]+)" id="next-creators"`).FindStringSubmatch(p.body)
	p = b.get("/campaigns/spring?creators=" + next[1])
	if n := strings.Count(p.body, `<tr data-creator=`); n != 60-creatorsPerPage {
		t.Fatalf("unexpected creators on the second page; got %d; want %d", n, 60-creatorsPerPage)
	}
	if strings.Contains(p.body, `id="next-creators"`) {
		t.Fatal("the last page of creators links to another")
	}
	// The creator's own page and the operator's page of them list
	// their links a page at a time too.
	b.get("/campaigns/spring/creators/c00").want(t, 200, `id="next-links"`)
	c00 := h.rotate(t, "spring", "c00")
	cp := h.browser(t).get(c00)
	cp.want(t, 200, `id="next-links"`)
	if n := strings.Count(cp.body, `class="with-qr"`); n != linksPerPage {
		t.Fatalf("unexpected links on c00's page; got %d; want %d", n, linksPerPage)
	}
	// A cursor that is not one is the API's 400, with its message.
	b.get("/campaigns/spring?creators=bogus").want(t, 400, "is not a cursor of this list")
	b.get("/?cursor="+next[1]).want(t, 400, "is not a cursor of this list")
	_ = csrf
}

// TestAcceptanceRecorded: the accept button records the acceptance time
// with the creator, shown on the operator's page and kept in the ledger
// with the creator's details by the next flush; a later acceptance keeps
// the first time.
func TestAcceptanceRecorded(t *testing.T) {
	var l *ledger.Ledger
	h := newHarnessWith(t, func(counter.Store) Ledger {
		var err error
		if l, err = ledger.Open(t.TempDir(), []byte("test ledger key")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if err := l.Init("store-1", time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		return l
	})
	op := h.browser(t)
	seed(t, h, op)
	ctx := context.Background()
	op.get("/campaigns/spring/creators/bob").want(t, 200, `id="accepted-at">not on their page`)
	bob := h.rotate(t, "spring", "bob")
	b := h.browser(t)
	p := b.get(bob)
	before := time.Now().UTC().Truncate(time.Second)
	b.do("POST", bob+"/accept", url.Values{"csrf": {csrfOf(t, p)}, "accept": {"yes"}}).want(t, 303)
	c, err := h.store.Creator(ctx, "spring", "bob")
	if err != nil || c.Status != counter.StatusActive || c.AcceptedAt.Before(before) || c.AcceptedAt.After(time.Now()) {
		t.Fatalf("unexpected creator after acceptance: %+v, %v; want active, accepted from %s on", c, err, before)
	}
	when := c.AcceptedAt
	op.get("/campaigns/spring/creators/bob").want(t, 200, `id="accepted-at">`+when.Format("2006-01-02 15:04:05 UTC")+", on their page")

	if _, err := ledger.Flush(ctx, h.store, l, time.Now()); err != nil {
		t.Fatal(err)
	}
	if e := l.Totals()[ledger.Key{Campaign: "spring", Creator: "bob"}]; !e.AcceptedAt.Equal(when) || e.Status != counter.StatusActive {
		t.Fatalf("unexpected ledger entry of bob after a flush: %+v; want active, accepted at %s", e, when)
	}

	// A second acceptance (an operator's PUT, or bob made invited and
	// accepting again) keeps the first time.
	invited, later, zero := counter.StatusInvited, when.Add(time.Hour), time.Time{}
	h.call(t, "PUT", "/v1/creators/bob", adminclient.CreatorPut{Campaign: "spring", Status: &invited}, 200)
	b.do("POST", bob+"/accept", url.Values{"csrf": {csrfOf(t, b.get(bob))}, "accept": {"yes"}}).want(t, 303)
	h.call(t, "PUT", "/v1/creators/bob", adminclient.CreatorPut{Campaign: "spring", AcceptedAt: &later}, 200)
	if c, _ := h.store.Creator(ctx, "spring", "bob"); !c.AcceptedAt.Equal(when) || c.Status != counter.StatusActive {
		t.Fatalf("a second acceptance replaced the first: %+v; want active, accepted at %s", c, when)
	}
	h.call(t, "PUT", "/v1/creators/bob", adminclient.CreatorPut{Campaign: "spring", AcceptedAt: &zero}, 422)
}

// call calls the admin API and checks the status of its answer.
func (h *harness) call(t *testing.T, method, path string, body any, want int) {
	t.Helper()
	status, resp, err := NewAdmin(h.api.Handle, token).Do(context.Background(), method, path, body)
	if err != nil || status != want {
		t.Fatalf("unexpected answer to %s %s; got %d %s, %v; want %d", method, path, status, resp, err, want)
	}
}

// TestLinkFigures: a link's page shows the link's own counts, the judge's
// and those added with the link (bots), and the pages of its creator each
// link's figures, apart from the creator's other links.
func TestLinkFigures(t *testing.T) {
	h := newHarness(t)
	op := h.browser(t)
	seed(t, h, op)
	ctx := context.Background()
	if err := h.store.CreateLink(ctx, counter.Link{Code: "aliceLink2", Campaign: "spring", Creator: "alice",
		Destinations: counter.Destinations{Default: "https://app.example.com/"}}); err != nil {
		t.Fatal(err)
	}
	var visits []counter.Visit
	for i, link := range []string{"aliceLink1", "aliceLink1", "aliceLink1", "aliceLink2", "aliceLink1"} {
		v := counter.Visit{Campaign: "spring", Creator: "alice", Link: link}
		v.Key[0] = byte(i % 4) // the last is the first visitor again
		v.SetWindow(time.Now(), 24*time.Hour)
		visits = append(visits, v)
	}
	if err := h.store.Commit(ctx, visits, make([]counter.Reason, len(visits))); err != nil {
		t.Fatal(err)
	}
	if err := h.store.AddCounts(ctx, []counter.Count{{Campaign: "spring", Creator: "alice", Link: "aliceLink2",
		Day: counter.DayOf(time.Now()), Reason: counter.Bot, N: 2}}); err != nil {
		t.Fatal(err)
	}
	op.get("/links/aliceLink1").want(t, 200, `<td>4</td><td class="qualified">3</td><td>1</td><td>0</td><td>0</td>`, "Visits by reason per day, link aliceLink1")
	op.get("/links/aliceLink2").want(t, 200, `<td>3</td><td class="qualified">1</td><td>0</td><td>0</td><td>2</td>`)
	op.get("/campaigns/spring/creators/alice").want(t, 200,
		`<td>4</td><td class="qualified">3</td><td>1</td><td>0</td><td>0</td>`, `<td>3</td><td class="qualified">1</td><td>0</td><td>2</td><td>0</td>`)
	op.get(h.rotate(t, "spring", "alice")).want(t, 200,
		`<span class="qualified">3</span> qualified visits`, `<span class="qualified">1</span> qualified visits`)
}

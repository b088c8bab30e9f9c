package dashboard

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/admin"
)

const token = "test-admin-token-0123456789abcdef0123456789"

// harness is a dashboard in front of a real admin API on the embedded
// store, served over loopback HTTP.
type harness struct {
	srv   *httptest.Server
	store counter.Store
	caps  *Capabilities
	api   *admin.API
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with the ledger given by ledgerOf (called
// with the store), when not nil.
func newHarnessWith(t testing.TB, ledgerOf func(counter.Store) Ledger) *harness {
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
	h := &harness{store: store}
	var ledger Ledger
	if ledgerOf != nil {
		ledger = ledgerOf(store)
	}
	h.srv = httptest.NewUnstartedServer(nil)
	h.caps = NewCapabilities(store, "http://"+h.srv.Listener.Addr().String())
	h.api, err = admin.New(admin.Options{Store: store, Table: table, Recorder: rec, Token: token,
		PublicURL: "https://go.example.com", CreatorPages: h.caps})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Admin: NewAdmin(h.api.Handle, token), Token: token, Catalog: store, Stats: rec,
		Capabilities: h.caps, PublicURL: "https://go.example.com", Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Config.Handler = d
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

// browser keeps cookies as a browser on the loopback does: Secure cookies
// included (Go's cookiejar sends them on https only).
type browser struct {
	t       testing.TB
	base    string
	cookies map[string]*http.Cookie
	client  *http.Client
}

func (h *harness) browser(t testing.TB) *browser {
	return &browser{t: t, base: h.srv.URL, cookies: map[string]*http.Cookie{},
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	body   string
	header http.Header
}

func (b *browser) do(method, path string, form url.Values) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return page{resp.StatusCode, string(raw), resp.Header}
}

func (b *browser) get(path string) page { return b.do("GET", path, nil) }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, p page) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", p.body)
	}
	return m[1]
}

func (p page) want(t testing.TB, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("unexpected status; got %d; want %d\n%s", p.status, status, p.body)
	}
	for _, s := range contains {
		if !strings.Contains(p.body, s) {
			t.Fatalf("page does not contain %q:\n%s", s, p.body)
		}
	}
}

// login logs b in and returns the session's CSRF token.
func (b *browser) login() string {
	b.t.Helper()
	p := b.get("/login")
	p.want(b.t, 200, `id="login"`)
	b.do("POST", "/login", url.Values{"csrf": {csrfOf(b.t, p)}, "token": {token}}).want(b.t, 303)
	return csrfOf(b.t, b.get("/"))
}

func TestLogin(t *testing.T) {
	h := newHarness(t)
	b := h.browser(t)
	if p := b.get("/"); p.status != 303 || p.header.Get("Location") != "/login" {
		t.Fatalf("unexpected answer to / without a session; got %d %q; want 303 to /login", p.status, p.header.Get("Location"))
	}
	p := b.get("/login")
	csrf := csrfOf(t, p)
	b.do("POST", "/login", url.Values{"token": {token}}).want(t, 403, "CSRF")
	b.do("POST", "/login", url.Values{"csrf": {csrf}, "token": {"wrong"}}).want(t, 401, "Wrong admin token")
	p = b.get("/login")
	p = b.do("POST", "/login", url.Values{"csrf": {csrfOf(t, p)}, "token": {token}})
	p.want(t, 303)
	c := b.cookies[sessionCookie]
	if c == nil {
		t.Fatal("no session cookie after login")
	}
	set := strings.Join(p.header.Values("Set-Cookie"), "\n")
	for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(set, sessionCookie+"=") || !strings.Contains(set, attr) {
			t.Fatalf("session cookie without %s: %s", attr, set)
		}
	}
	b.get("/").want(t, 200, `id="new-campaign"`)
	// A forged or altered cookie is no session. The MAC's first character
	// carries six whole bits, so changing it always changes the MAC (its
	// last two characters may already read "AA").
	i := strings.IndexByte(c.Value, '.') + 1
	alt := byte('A')
	if c.Value[i] == alt {
		alt = 'B'
	}
	c.Value = c.Value[:i] + string(alt) + c.Value[i+1:]
	if p := b.get("/"); p.status != 303 {
		t.Fatalf("unexpected status with an altered session cookie; got %d; want 303", p.status)
	}
}

func TestCSRF(t *testing.T) {
	h := newHarness(t)
	b := h.browser(t)
	csrf := b.login()
	other := h.browser(t)
	otherCSRF := other.login()
	if csrf == otherCSRF {
		t.Fatal("two sessions have the same CSRF token")
	}
	form := url.Values{"id": {"spring"}, "starts_at": {"2026-05-11"}, "ends_at": {"2026-06-22"}}
	for name, tok := range map[string]string{"none": "", "another session's": otherCSRF, "garbage": "%%%"} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if tok != "" {
			f.Set("csrf", tok)
		}
		if p := b.do("POST", "/campaigns", f); p.status != 403 {
			t.Fatalf("unexpected status of a form with %s CSRF token; got %d; want 403", name, p.status)
		}
	}
	if _, err := h.store.Campaign(context.Background(), "spring"); err == nil {
		t.Fatal("a form refused for its CSRF token created its campaign")
	}
	// Without a session, a POST is refused whatever it carries.
	anon := h.browser(t)
	form.Set("csrf", csrf)
	anon.do("POST", "/campaigns", form).want(t, 403)
	// A cross-site post is refused before its token is looked at.
	req, _ := http.NewRequest("POST", h.srv.URL+"/campaigns", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.AddCookie(b.cookies[sessionCookie])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("unexpected status of a cross-site post; got %d; want 403", resp.StatusCode)
	}
	b.do("POST", "/campaigns", form).want(t, 303)
}

// seed creates a campaign with two creators and a link each through the
// forms, and returns the session's CSRF token.
func seed(t *testing.T, h *harness, b *browser) string {
	t.Helper()
	csrf := b.login()
	now := time.Now().UTC()
	b.do("POST", "/campaigns", url.Values{"csrf": {csrf}, "id": {"spring"}, "name": {"Spring <launch>"},
		"starts_at": {now.Add(-48 * time.Hour).Format(time.DateOnly)}, "ends_at": {now.Add(30 * 24 * time.Hour).Format(time.DateOnly)},
		"signup_reward": {"$100"}, "cap": {"20,000"}, "eligible_countries": {"US, ca"}}).want(t, 303)
	for _, c := range []struct{ id, status string }{{"alice", "active"}, {"bob", "invited"}} {
		b.do("POST", "/campaigns/spring/creators", url.Values{"csrf": {csrf}, "id": {c.id}, "handle": {"@" + c.id}, "country": {"US"}, "status": {c.status}}).want(t, 303)
		b.do("POST", "/campaigns/spring/links", url.Values{"csrf": {csrf}, "creator": {c.id}, "code": {c.id + "Link1"},
			"default": {"https://app.example.com/join"}}).want(t, 303)
	}
	return csrf
}

func TestOperatorForms(t *testing.T) {
	h := newHarness(t)
	b := h.browser(t)
	csrf := seed(t, h, b)
	ctx := context.Background()
	c, err := h.store.Campaign(ctx, "spring")
	if err != nil {
		t.Fatal(err)
	}
	if c.SignupRewardCents != 10000 || c.CapCents != 2_000_000 || strings.Join(c.EligibleCountries, ",") != "US,CA" || c.Name != "Spring <launch>" {
		t.Fatalf("unexpected campaign from the form: %+v", c)
	}
	if l, err := h.store.Link(ctx, "aliceLink1"); err != nil || l.Creator != "alice" {
		t.Fatalf("unexpected link from the form: %+v, %v", l, err)
	}
	// The admin API's rules refuse what they refuse through the forms,
	// with its message, the form filled in again.
	f := func(path string, form url.Values, status int, msg string) {
		t.Helper()
		form.Set("csrf", csrf)
		b.do("POST", path, form).want(t, status, msg)
	}
	f("/campaigns", url.Values{"id": {"spring"}, "starts_at": {"2026-05-11"}, "ends_at": {"2026-06-22"}}, 409, `campaign &#34;spring&#34; exists already`)
	f("/campaigns", url.Values{"id": {"autumn"}, "starts_at": {"2026-06-22"}, "ends_at": {"2026-05-11"}}, 422, "must be after starts_at")
	f("/campaigns", url.Values{"id": {"autumn"}, "starts_at": {"tomorrow"}, "ends_at": {"2026-05-11"}}, 422, "is not a day such as")
	f("/campaigns", url.Values{"id": {"autumn"}, "starts_at": {"2026-05-11"}, "ends_at": {"2026-06-22"}, "cap": {"-5"}}, 422, "is not an amount in dollars")
	f("/campaigns", url.Values{"id": {"a/b"}, "starts_at": {"2026-05-11"}, "ends_at": {"2026-06-22"}}, 422, "must be 1 to 64 letters")
	f("/campaigns/spring/creators", url.Values{"id": {"carol"}, "country": {"FR"}}, 422, `country &#34;FR&#34; is not eligible`)
	f("/campaigns/spring/links", url.Values{"creator": {"alice"}, "default": {"http://app.example.com/"}}, 422, "absolute https URL")
	f("/campaigns/spring/links", url.Values{"creator": {"alice"}, "default": {"https://app.example.com/"}, "code": {"aliceLink1"}}, 409, "is taken")

	// The page shows the campaign, escaped.
	p := b.get("/campaigns/spring")
	p.want(t, 200, "Spring &lt;launch&gt;", `data-creator="alice"`, `data-creator="bob"`, "https://go.example.com/aliceLink1", "$20,000.00", "running until")
	if strings.Contains(p.body, "<launch>") {
		t.Fatal("the campaign's name is not escaped")
	}
	b.get("/campaigns/nope").want(t, 404)
	b.get("/").want(t, 200, `data-campaign="spring"`)
}

func TestLeaderboardAndChart(t *testing.T) {
	h := newHarness(t)
	b := h.browser(t)
	seed(t, h, b)
	ctx := context.Background()
	day := counter.DayOf(time.Now())
	counts := []counter.Count{
		{Campaign: "spring", Creator: "alice", Day: day - 1, Reason: counter.Qualified, N: 1500},
		{Campaign: "spring", Creator: "alice", Day: day, Reason: counter.Qualified, N: 700},
		{Campaign: "spring", Creator: "alice", Day: day, Reason: counter.Bot, N: 9},
		{Campaign: "spring", Creator: "alice", Day: day, Reason: counter.Signup, N: 3},
		{Campaign: "spring", Creator: "bob", Day: day, Reason: counter.Qualified, N: 40},
	}
	if err := h.store.AddCounts(ctx, counts); err != nil {
		t.Fatal(err)
	}
	p := b.get("/campaigns/spring")
	// alice: 2 blocks of 1,000 ($200) and 3 signups ($300); bob earns
	// nothing yet and is not paid while invited.
	p.want(t, 200, `<td class="num qualified">2,200</td>`, `<td class="num signups">3</td>`, `<td class="num earned">$500.00</td>`,
		"not paid: invited",
		"<title>"+(day-1).String()+" qualified: 1500</title>", "<title>"+day.String()+" qualified: 740</title>", "<title>"+day.String()+" bots: 9</title>")
	if strings.Index(p.body, `data-creator="alice"`) > strings.Index(p.body, `data-creator="bob"`) {
		t.Fatal("the leaderboard is not ordered by earnings")
	}
	if strings.Contains(p.body, "signups: 3</title>") {
		t.Fatal("signups are drawn as clicks in the reasons chart")
	}
	// The campaigns list has each campaign's counts (2,200 + 40
	// qualified, 2,249 clicks with the bots).
	b.get("/").want(t, 200, `<td class="num">2,240</td>`, `<td class="num">2,249</td>`)
}

// rotate mints a creator's page URL through the admin API.
func (h *harness) rotate(t *testing.T, campaign, creator string) string {
	t.Helper()
	b := h.browser(t)
	_ = b
	out := struct {
		URL string `json:"url"`
	}{}
	err := NewAdmin(h.api.Handle, token).call(context.Background(), "POST", "/v1/creators/"+creator+"/dashboard?campaign="+campaign, nil, &out)
	if err != nil {
		t.Fatalf("cannot mint the page of %q: %v", creator, err)
	}
	if !strings.HasPrefix(out.URL, h.srv.URL+"/c/") {
		t.Fatalf("unexpected page URL %q", out.URL)
	}
	return strings.TrimPrefix(out.URL, h.srv.URL)
}

func TestCreatorPage(t *testing.T) {
	h := newHarness(t)
	op := h.browser(t)
	seed(t, h, op)
	ctx := context.Background()
	day := counter.DayOf(time.Now())
	if err := h.store.AddCounts(ctx, []counter.Count{
		{Campaign: "spring", Creator: "alice", Day: day, Reason: counter.Qualified, N: 1234},
		{Campaign: "spring", Creator: "alice", Day: day, Reason: counter.Duplicate, N: 17},
		{Campaign: "spring", Creator: "alice", Day: day, Reason: counter.Signup, N: 2},
		{Campaign: "spring", Creator: "bob", Day: day, Reason: counter.Qualified, N: 999},
	}); err != nil {
		t.Fatal(err)
	}
	alice := h.rotate(t, "spring", "alice")
	b := h.browser(t)
	p := b.get(alice)
	// 1 block ($100) and 2 signups ($200); 766 more visits to the next block.
	p.want(t, 200, `id="earned">$300.00`, `id="qualified">1,234`, `id="next-block">766`, `data-reason="duplicates"><td>duplicates</td><td class="num">17`,
		"https://go.example.com/aliceLink1", "<title>"+day.String()+" qualified: 1234</title>")
	for _, other := range []string{"bob", "bobLink1", "999"} {
		if strings.Contains(p.body, other) {
			t.Fatalf("alice's page shows %q of another creator", other)
		}
	}
	if p.header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("a creator's page may leak its address in Referer")
	}
	// A new URL revokes the old one at once on this node.
	again := h.rotate(t, "spring", "alice")
	b.get(alice).want(t, 404, "no page at this address")
	b.get(again).want(t, 200, `id="earned">$300.00`)
	// A token of the right shape for alice with bob's key, or altered,
	// opens nothing.
	bob := h.rotate(t, "spring", "bob")
	_, bobKey, _ := strings.Cut(bob, ".")
	aliceIDs, _, _ := strings.Cut(again, ".")
	// The last character altered: another one than it is.
	last := "A"
	if strings.HasSuffix(again, last) {
		last = "B"
	}
	for _, bad := range []string{aliceIDs + "." + bobKey, again[:len(again)-1] + last, "/c/x", "/c/" + strings.Repeat("A", 200)} {
		b.get(bad).want(t, 404)
	}
	// The operator pages stay closed to a creator.
	if p := b.get("/campaigns/spring"); p.status != 303 {
		t.Fatalf("unexpected status of an operator page for a creator; got %d; want 303", p.status)
	}
}

func TestAcceptTerms(t *testing.T) {
	h := newHarness(t)
	seed(t, h, h.browser(t))
	bob := h.rotate(t, "spring", "bob")
	b := h.browser(t)
	p := b.get(bob)
	p.want(t, 200, `id="terms"`, "$100.00", "$20,000.00", "US, CA", `id="accept"`)
	csrf := csrfOf(t, p)
	b.do("POST", bob+"/accept", url.Values{"accept": {"yes"}}).want(t, 403)
	b.do("POST", bob+"/accept", url.Values{"csrf": {csrf}}).want(t, 422)
	ctx := context.Background()
	if c, _ := h.store.Creator(ctx, "spring", "bob"); c.Status != counter.StatusInvited {
		t.Fatalf("unexpected status before acceptance; got %q", c.Status)
	}
	// alice's page's token does not accept for bob.
	alice := h.rotate(t, "spring", "alice")
	b.do("POST", alice+"/accept", url.Values{"csrf": {csrf}, "accept": {"yes"}}).want(t, 403)
	if c, _ := h.store.Creator(ctx, "spring", "bob"); c.Status != counter.StatusInvited {
		t.Fatal("alice's page accepted bob's terms")
	}
	before := time.Now().UTC().Truncate(time.Second)
	b.do("POST", bob+"/accept", url.Values{"csrf": {csrf}, "accept": {"yes"}}).want(t, 303)
	if c, _ := h.store.Creator(ctx, "spring", "bob"); c.Status != counter.StatusActive || c.AcceptedAt.Before(before) {
		t.Fatalf("unexpected creator after acceptance; got status %q, accepted_at %s; want active, from %s on", c.Status, c.AcceptedAt, before)
	}
	b.get(bob+"?done=accepted").want(t, 200, "Welcome aboard", `id="earned"`, "You accepted the terms on")
}

func TestCreatorPageEndpoint(t *testing.T) {
	h := newHarness(t)
	seed(t, h, h.browser(t))
	a := NewAdmin(h.api.Handle, token)
	f := func(path string, status int, msg string) {
		t.Helper()
		got, body, err := a.Do(context.Background(), "POST", path, nil)
		if err != nil || got != status || !strings.Contains(string(body), msg) {
			t.Fatalf("unexpected answer to POST %s; got %d %s (%v); want %d %q", path, got, body, err, status, msg)
		}
	}
	f("/v1/creators/alice/dashboard", 400, "campaign is required")
	f("/v1/creators/carol/dashboard?campaign=spring", 404, `creator \"carol\" does not exist in campaign \"spring\"`)
	f("/v1/creators/alice/dashboard?campaign=autumn", 404, `campaign \"autumn\" does not exist`)
	f("/v1/creators/alice/dashboard?campaign=spring", 200, `"url": "http://`)
}

func TestDisableLink(t *testing.T) {
	h := newHarness(t)
	b := h.browser(t)
	csrf := seed(t, h, b)
	ctx := context.Background()
	b.do("POST", "/links/aliceLink1/disable", url.Values{}).want(t, 403)
	p := b.do("POST", "/links/aliceLink1/disable", url.Values{"csrf": {csrf}})
	p.want(t, 303)
	if l, err := h.store.Link(ctx, "aliceLink1"); err != nil || !l.Disabled {
		t.Fatalf("the link is not disabled: %+v, %v", l, err)
	}
	b.get(p.header.Get("Location")).want(t, 200, "Link disabled", `action="/links/aliceLink1/enable"`)
	b.do("POST", "/links/aliceLink1/enable", url.Values{"csrf": {csrf}}).want(t, 303)
	if l, _ := h.store.Link(ctx, "aliceLink1"); l.Disabled {
		t.Fatal("the link is still disabled")
	}
	b.do("POST", "/links/nolink99/disable", url.Values{"csrf": {csrf}}).want(t, 404)
	b.do("POST", "/links/aliceLink1/delete", url.Values{"csrf": {csrf}}).want(t, 404)
}

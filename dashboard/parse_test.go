package dashboard

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

func TestParseCents(t *testing.T) {
	f := func(in string, want int64, ok bool) {
		t.Helper()
		got, err := parseCents(in)
		if (err == nil) != ok || got != want {
			t.Fatalf("unexpected cents for %q; got %d, %v; want %d, ok=%v", in, got, err, want, ok)
		}
	}
	f("100", 10000, true)
	f("$1,250.50", 125050, true)
	f("12.5", 1250, true)
	f(".5", 50, true)
	f("5.", 500, true)
	f(" 0 ", 0, true)
	f("", 0, false)
	f(".", 0, false)
	f("-5", 0, false)
	f("1.234", 0, false)
	f("1e3", 0, false)
	f("1.2.3", 0, false)
	f("99999999999", 0, false)
	f("1000000001", 0, false)
	f("1000000000", 100000000000, true)
}

func FuzzParseCents(f *testing.F) {
	for _, s := range []string{"100", "$1,250.50", ".5", "5.", "-1", "1e3", "١٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCents(s)
		if err != nil {
			return
		}
		if c < 0 || c > maxDollars*100+99 {
			t.Fatalf("parseCents(%q) = %d out of range", s, c)
		}
		// What it read is what money writes back.
		back, err := parseCents(money(c))
		if err != nil || back != c {
			t.Fatalf("parseCents(money(%d)) = %d, %v", c, back, err)
		}
	})
}

func TestMoney(t *testing.T) {
	f := func(c int64, want string) {
		t.Helper()
		if got := money(c); got != want {
			t.Fatalf("unexpected money for %d; got %q; want %q", c, got, want)
		}
	}
	f(0, "$0.00")
	f(5, "$0.05")
	f(2_000_000, "$20,000.00")
	f(123456789, "$1,234,567.89")
	f(-150, "-$1.50")
}

func TestCampaignForm(t *testing.T) {
	id, req, err := campaignForm(url.Values{"id": {"spring"}, "starts_at": {"2026-05-11"}, "ends_at": {"2026-06-22T12:00:00+02:00"},
		"cap": {"20,000"}, "visit_block_size": {"1,000"}, "eligible_countries": {"US, ca\tMX"}})
	if err != nil || id != "spring" {
		t.Fatal(id, err)
	}
	if req.StartsAt == nil || *req.StartsAt != time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC) ||
		req.EndsAt == nil || *req.EndsAt != time.Date(2026, 6, 22, 10, 0, 0, 0, time.UTC) ||
		req.CapCents == nil || *req.CapCents != 2_000_000 || req.VisitBlockSize == nil || *req.VisitBlockSize != 1000 ||
		req.EligibleCountries == nil || strings.Join(*req.EligibleCountries, ",") != "US,ca,MX" {
		t.Fatalf("unexpected request %+v", req)
	}
	if req.SignupRewardCents != nil {
		t.Fatal("a field left empty is sent: it would not take the API's default")
	}
	for _, bad := range []url.Values{
		{"starts_at": {"2026-05-11"}, "ends_at": {"2026-06-22"}},
		{"id": {"a b"}, "starts_at": {"2026-05-11"}, "ends_at": {"2026-06-22"}},
		{"id": {"x"}, "starts_at": {"11/05/2026"}, "ends_at": {"2026-06-22"}},
		{"id": {"x"}, "starts_at": {"2026-05-11"}, "ends_at": {"2026-06-22"}, "visit_block_size": {"-1"}},
	} {
		if _, _, err := campaignForm(bad); err == nil {
			t.Fatalf("campaignForm(%v) took it", bad)
		}
	}
}

func FuzzForms(f *testing.F) {
	f.Add("id=spring&starts_at=2026-05-11&ends_at=2026-06-22&cap=20%2C000&eligible_countries=US")
	f.Add("id=alice&country=US&status=invited&handle=%40a")
	f.Add("creator=alice&default=https%3A%2F%2Fa.example&code=x")
	f.Add("name=Spring&starts_at=2026-05-11&ends_at=2026-06-23&cap=%2420%2C000.00&eligible_countries=us")
	f.Add("handle=%40b&country=us&status=suspended&default=https%3A%2F%2Fa.example%2F&ios=&android=https%3A%2F%2Fb")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		if id, _, err := campaignForm(form); err == nil && !validID(id) {
			t.Fatalf("campaignForm took id %q", id)
		}
		if id, _, err := creatorForm("spring", form); err == nil && !validID(id) {
			t.Fatalf("creatorForm took id %q", id)
		}
		linkForm("spring", form)
		// The edit forms send only what differs from the object: what
		// they send is never what it already is.
		c := counter.Campaign{ID: "spring", Name: "Spring", StartsAt: time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC),
			EndsAt: time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC), SignupRewardCents: 10000, VisitBlockSize: 1000, CapCents: 2_000_000, EligibleCountries: []string{"US"}}
		if req, err := campaignEditForm(form, c); err == nil {
			if v := req.CapCents; v != nil && *v == c.CapCents {
				t.Fatalf("campaignEditForm sent the cap as it is: %+v", req)
			}
			if v := req.StartsAt; v != nil && v.Equal(c.StartsAt) {
				t.Fatalf("campaignEditForm sent the start as it is: %+v", req)
			}
		}
		cr := counter.Creator{ID: "alice", Campaign: "spring", Handle: "@a", Country: "US", Status: "active"}
		if req := creatorEditForm(form, cr); req.Campaign != "spring" || req.Status != nil && *req.Status == cr.Status || req.Handle != nil && *req.Handle == cr.Handle {
			t.Fatalf("unexpected creator edit %+v", req)
		}
		l := counter.Link{Code: "aliceLink1", Destinations: counter.Destinations{Default: "https://a.example/"}}
		if req := linkEditForm(form, l); req.Destinations != nil {
			if d := *req.Destinations; d.Default != nil && *d.Default == l.Destinations.Default || d == (adminclient.DestinationsPatch{}) {
				t.Fatalf("unexpected link edit %+v", d)
			}
		}
	})
}

func TestParseToken(t *testing.T) {
	key := strings.Repeat("A", b64.EncodedLen(capKeyLen))
	ids := b64.EncodeToString([]byte("spring/alice"))
	if c, cr, k, err := parseToken(ids + "." + key); err != nil || c != "spring" || cr != "alice" || len(k) != capKeyLen {
		t.Fatalf("unexpected parse; got %q %q %d %v", c, cr, len(k), err)
	}
	for _, bad := range []string{"", ".", ids, ids + ".", ids + "." + key + "A", ids + "." + key[1:],
		b64.EncodeToString([]byte("spring")) + "." + key, b64.EncodeToString([]byte("spring/al ice")) + "." + key,
		b64.EncodeToString([]byte("/alice")) + "." + key, "!!!!." + key} {
		if _, _, _, err := parseToken(bad); err == nil {
			t.Fatalf("parseToken(%q) took it", bad)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	key := strings.Repeat("A", b64.EncodedLen(capKeyLen))
	f.Add(b64.EncodeToString([]byte("spring/alice")) + "." + key)
	f.Add("x." + key)
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, cr, k, err := parseToken(token)
		if err != nil {
			return
		}
		if !validID(c) || !validID(cr) || len(k) != capKeyLen {
			t.Fatalf("parseToken(%q) took %q %q %d", token, c, cr, len(k))
		}
	})
}

func TestSessionCookie(t *testing.T) {
	now := time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC)
	s := newSessions("token-a", time.Hour, func() time.Time { return now })
	v := s.newSession()
	id, err := s.parseSession(v)
	if err != nil || id == "" {
		t.Fatalf("cannot parse a new session: %v", err)
	}
	if other := newSessions("token-b", time.Hour, s.now); other.csrf("session", id) == s.csrf("session", id) {
		t.Fatal("another admin token gives the same CSRF token")
	}
	if _, err := newSessions("token-b", time.Hour, s.now).parseSession(v); err == nil {
		t.Fatal("a session survives a change of the admin token")
	}
	now = now.Add(time.Hour)
	if _, err := s.parseSession(v); err != errExpired {
		t.Fatalf("unexpected error of an expired session; got %v; want %v", err, errExpired)
	}
}

func FuzzParseSession(f *testing.F) {
	s := newSessions("token", time.Hour, time.Now)
	f.Add(s.newSession())
	f.Add("a.b")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		if _, err := s.parseSession(v); err == nil {
			// Only a cookie this key signed opens a session.
			payload, _, _ := strings.Cut(v, ".")
			if !strings.HasSuffix(v, "."+b64.EncodeToString(s.mac("session", payload))) {
				t.Fatalf("parseSession took %q", v)
			}
		}
	})
}

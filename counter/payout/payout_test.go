package payout

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/counter"
)

// reference is the reference program: $100 per signup, $100 per 1,000
// qualified visits, capped at $20,000, US only.
func reference() counter.Campaign {
	return counter.Campaign{
		ID:                    "spring",
		SignupRewardCents:     10000,
		VisitBlockSize:        1000,
		VisitBlockRewardCents: 10000,
		CapCents:              2000000,
		EligibleCountries:     []string{"US"},
	}
}

func TestComputeRow(t *testing.T) {
	f := func(name string, c counter.Campaign, status, country string, tot Totals, wantEarned, wantCapped int64, wantStatus string) {
		t.Helper()
		cr := counter.Creator{ID: "alice", Campaign: c.ID, Handle: "@alice", Country: country, Status: status}
		s, err := Compute(c, "2026-06", []counter.Creator{cr}, map[string]Totals{"alice": tot})
		if err != nil {
			t.Fatalf("unexpected error for %q: %v", name, err)
		}
		if len(s.Rows) != 1 {
			t.Fatalf("unexpected number of rows for %q; got %d; want 1", name, len(s.Rows))
		}
		got := s.Rows[0]
		want := Row{
			CreatorID: "alice", Handle: "@alice", Country: country,
			QualifiedVisits: tot.Qualified, Signups: tot.Signups,
			EarnedCents: wantEarned, CappedCents: wantCapped,
			Currency: "USD", Status: wantStatus,
			Reference: Reference(c.ID, "alice", "2026-06"),
		}
		if got != want {
			t.Fatalf("unexpected row for %q;\ngot  %+v\nwant %+v", name, got, want)
		}
		if s.TotalCents != wantCapped {
			t.Fatalf("unexpected total for %q; got %d; want %d", name, s.TotalCents, wantCapped)
		}
	}
	ref := reference()
	active, suspended, invited := counter.StatusActive, counter.StatusSuspended, counter.StatusInvited

	f("zero", ref, active, "US", Totals{}, 0, 0, "payable")
	f("remainder below one block", ref, active, "US", Totals{Qualified: 999}, 0, 0, "payable")
	f("exact blocks", ref, active, "US", Totals{Qualified: 3000}, 30000, 30000, "payable")
	f("blocks and remainder", ref, active, "US", Totals{Qualified: 3999}, 30000, 30000, "payable")
	f("signups only", ref, active, "US", Totals{Signups: 7}, 70000, 70000, "payable")
	f("signups and blocks", ref, active, "US", Totals{Qualified: 12345, Signups: 17}, 290000, 290000, "payable")
	// 200 signups are exactly the cap; one more is over it.
	f("cap reached exactly", ref, active, "US", Totals{Signups: 200}, 2000000, 2000000, "payable")
	f("cap reached by signups alone", ref, active, "US", Totals{Signups: 201}, 2010000, 2000000, "payable")
	// A $250 cap falls half-way through the third $100 block.
	midBlock := ref
	midBlock.CapCents = 25000
	f("cap reached in the middle of a block", midBlock, active, "US", Totals{Qualified: 3000}, 30000, 25000, "payable")
	// $19,900 of signups, then the cap ($20,050) falls half-way through the
	// second $100 block of visits.
	midBlock.CapCents = 2005000
	f("cap reached in a block after signups", midBlock, active, "US", Totals{Qualified: 2500, Signups: 199}, 2010000, 2005000, "payable")
	f("cap reached by visits alone", ref, active, "US", Totals{Qualified: 250_500}, 2500000, 2000000, "payable")
	zeroCap := ref
	zeroCap.CapCents = 0
	f("zero cap pays nothing", zeroCap, active, "US", Totals{Signups: 3}, 30000, 0, "payable")

	f("suspended", ref, suspended, "US", Totals{Qualified: 5000, Signups: 3}, 80000, 0, "suspended")
	f("invited", ref, invited, "US", Totals{Qualified: 2000}, 20000, 0, "invited")
	f("ineligible country", ref, active, "CA", Totals{Qualified: 2000, Signups: 1}, 30000, 0, "ineligible_country")
	// Precedence: suspended, then invited, then country.
	f("suspended and ineligible", ref, suspended, "CA", Totals{Signups: 1}, 10000, 0, "suspended")
	f("invited and ineligible", ref, invited, "CA", Totals{Signups: 1}, 10000, 0, "invited")
	f("lower-case country is not US", ref, active, "us", Totals{Signups: 1}, 10000, 0, "ineligible_country")
	anywhere := ref
	anywhere.EligibleCountries = nil
	f("no country list: all eligible", anywhere, active, "CA", Totals{Signups: 1}, 10000, 10000, "payable")
	f("max int64 fits", anywhere, active, "US", Totals{Signups: math.MaxInt64 / 10000, Qualified: 999}, 9223372036854770000, 2000000, "payable")
}

func TestComputeStatement(t *testing.T) {
	c := reference()
	creators := []counter.Creator{
		{ID: "zoe", Campaign: "spring", Country: "US", Status: counter.StatusActive},
		{ID: "amy", Campaign: "spring", Country: "US", Status: counter.StatusActive},
		{ID: "amy", Campaign: "autumn", Country: "US", Status: counter.StatusActive}, // another campaign: skipped
		{ID: "Bob", Campaign: "spring", Country: "US", Status: counter.StatusActive},
	}
	s, err := Compute(c, "s1", creators, map[string]Totals{"zoe": {Signups: 2}, "amy": {Signups: 1}})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	var ids []string
	for _, r := range s.Rows {
		ids = append(ids, r.CreatorID)
	}
	if got, want := strings.Join(ids, ","), "Bob,amy,zoe"; got != want {
		t.Fatalf("unexpected row order; got %s; want %s", got, want)
	}
	if s.Campaign != "spring" || s.Statement != "s1" || s.Currency != "USD" || s.TotalCents != 30000 {
		t.Fatalf("unexpected statement %+v", s)
	}
	if s.Rows[0].EarnedCents != 0 || s.Rows[0].Status != StatusPayable {
		t.Fatalf("unexpected row of a creator without totals: %+v", s.Rows[0])
	}

	s, err = Compute(c, "s1", nil, nil)
	if err != nil || s.Rows == nil || len(s.Rows) != 0 || s.TotalCents != 0 {
		t.Fatalf("unexpected statement of an empty campaign: %+v, %v", s, err)
	}
}

func TestComputeErrors(t *testing.T) {
	f := func(name string, c counter.Campaign, statement string, creators []counter.Creator, totals map[string]Totals, want string) {
		t.Helper()
		s, err := Compute(c, statement, creators, totals)
		if err == nil {
			t.Fatalf("unexpected success for %q: %+v", name, s)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("unexpected error for %q; got %q; want it to contain %q", name, err, want)
		}
	}
	ok := reference()
	alice := counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}
	one := []counter.Creator{alice}

	f("unknown creator in totals", ok, "s1", one, map[string]Totals{"alice": {}, "mallory": {Signups: 1}}, `creator "mallory"`)
	other := alice
	other.Campaign = "autumn"
	f("totals of a creator of another campaign", ok, "s1", []counter.Creator{other}, map[string]Totals{"alice": {}}, `creator "alice", who is not a creator of campaign "spring"`)
	f("creator listed twice", ok, "s1", []counter.Creator{alice, alice}, nil, "listed twice")
	f("empty creator id", ok, "s1", []counter.Creator{{Campaign: "spring", Status: counter.StatusActive}}, nil, "empty id")
	weird := alice
	weird.Status = "paused"
	f("unknown status", ok, "s1", []counter.Creator{weird}, nil, `unknown status "paused"`)
	f("negative visits", ok, "s1", one, map[string]Totals{"alice": {Qualified: -1}}, "negative totals")
	f("negative signups", ok, "s1", one, map[string]Totals{"alice": {Signups: -1}}, "negative totals")
	f("empty statement", ok, "", one, nil, "statement must not be empty")
	noID := ok
	noID.ID = ""
	f("empty campaign id", noID, "s1", one, nil, "campaign id must not be empty")

	for _, size := range []int64{0, -1000} {
		c := ok
		c.VisitBlockSize = size
		f("block size", c, "s1", one, nil, "visit_block_size")
	}
	for _, mut := range []func(*counter.Campaign){
		func(c *counter.Campaign) { c.SignupRewardCents = -1 },
		func(c *counter.Campaign) { c.VisitBlockRewardCents = -1 },
		func(c *counter.Campaign) { c.CapCents = -1 },
	} {
		c := ok
		mut(&c)
		f("negative amount", c, "s1", one, nil, "must not be negative")
	}
}

func TestComputeOverflow(t *testing.T) {
	f := func(name string, c counter.Campaign, status string, totals ...Totals) {
		t.Helper()
		var creators []counter.Creator
		m := map[string]Totals{}
		for i, tot := range totals {
			id := string(rune('a' + i))
			creators = append(creators, counter.Creator{ID: id, Campaign: c.ID, Country: "US", Status: status})
			m[id] = tot
		}
		s, err := Compute(c, "s1", creators, m)
		if !errors.Is(err, ErrOverflow) {
			t.Fatalf("unexpected result for %q; got %+v, %v; want ErrOverflow", name, s, err)
		}
	}
	ref := reference()
	f("signups × reward", ref, counter.StatusActive, Totals{Signups: math.MaxInt64/10000 + 1})
	f("signups × reward far over", ref, counter.StatusActive, Totals{Signups: math.MaxInt64})
	f("blocks × reward", ref, counter.StatusActive, Totals{Qualified: math.MaxInt64})
	// Each part fits; their sum does not.
	f("signups + blocks", ref, counter.StatusActive, Totals{Signups: math.MaxInt64 / 10000, Qualified: 8_000_000})
	// Not being paid does not hide an overflow: finance sees EarnedCents.
	f("suspended creator", ref, counter.StatusSuspended, Totals{Signups: math.MaxInt64})
	// Every row fits; the statement total does not.
	uncapped := ref
	uncapped.CapCents = math.MaxInt64
	uncapped.EligibleCountries = nil
	f("total", uncapped, counter.StatusActive, Totals{Signups: math.MaxInt64 / 10000}, Totals{Signups: math.MaxInt64 / 10000})
}

func TestReference(t *testing.T) {
	format := regexp.MustCompile(`^cg_[a-z2-7]{32}$`)
	f := func(campaign, creator, statement string) string {
		t.Helper()
		ref := Reference(campaign, creator, statement)
		if !format.MatchString(ref) {
			t.Fatalf("unexpected reference format for %q/%q/%q; got %q", campaign, creator, statement, ref)
		}
		if again := Reference(campaign, creator, statement); again != ref {
			t.Fatalf("unstable reference for %q/%q/%q; got %q then %q", campaign, creator, statement, ref, again)
		}
		return ref
	}

	// Pinned: a partner has already seen these; a change would let a
	// statement be paid twice.
	if got, want := f("spring", "alice", "2026-06"), "cg_wjxaawrjkow5tu6tdfxgindq43bj3foi"; got != want {
		t.Fatalf("unexpected reference for spring/alice/2026-06; got %q; want %q", got, want)
	}
	// The documented recipe, written out independently.
	var in []byte
	in = append(in, "clickgate/payout-reference/v1"...)
	for _, p := range []string{"spring", "alice", "2026-06"} {
		in = append(in, 0, 0, 0, 0, 0, 0, 0, byte(len(p)))
		in = append(in, p...)
	}
	sum := sha256.Sum256(in)
	recipe := "cg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
	if got := f("spring", "alice", "2026-06"); got != recipe {
		t.Fatalf("reference does not follow its documented recipe; got %q; want %q", got, recipe)
	}

	// Injective: moving bytes between parts, swapping parts or changing
	// any one part gives another reference.
	seen := map[string][3]string{}
	for _, in := range [][3]string{
		{"spring", "alice", "2026-06"},
		{"ab", "c", "s"}, {"a", "bc", "s"}, {"abc", "", "s"}, {"", "abc", "s"},
		{"a", "b", "cs"}, {"a", "bcs", ""}, {"ab", "cs", ""},
		{"spring", "alice", "2026-07"}, {"spring", "bob", "2026-06"}, {"autumn", "alice", "2026-06"},
		{"alice", "spring", "2026-06"}, {"spring", "2026-06", "alice"},
		{"spring", "alice\x00", "2026-06"}, {"spring\x00", "alice", "2026-06"},
		{"", "", ""},
	} {
		ref := f(in[0], in[1], in[2])
		if prev, dup := seen[ref]; dup {
			t.Fatalf("unexpected equal references for %q and %q: %s", prev, in, ref)
		}
		seen[ref] = in
	}
}

func TestWriteCSV(t *testing.T) {
	f := func(handle, want string) {
		t.Helper()
		var b bytes.Buffer
		if err := WriteCSV(&b, []Row{{CreatorID: "a", Handle: handle}}); err != nil {
			t.Fatalf("unexpected error for %q: %v", handle, err)
		}
		recs, err := csv.NewReader(&b).ReadAll()
		if err != nil {
			t.Fatalf("unexpected error reading back %q: %v", handle, err)
		}
		if len(recs) != 2 || recs[1][1] != want {
			t.Fatalf("unexpected handle cell for %q; got %q; want %q", handle, recs, want)
		}
	}
	f("", "")
	f("alice", "alice")
	f("=1+2", "'=1+2")
	f(`=HYPERLINK("https://evil.example","x")`, `'=HYPERLINK("https://evil.example","x")`)
	f("+1", "'+1")
	f("-1", "'-1")
	f("@alice", "'@alice")
	f("\t=1", "'\t=1")
	f("\r=1", "'\r=1")
	f("a=1", "a=1")
	f("'=1", "'=1")
	f("comma, \"quoted\"\nand a newline", "comma, \"quoted\"\nand a newline")

	// Every text cell is defused, numbers never need it.
	var b bytes.Buffer
	row := Row{CreatorID: "-id", Handle: "h", Country: "=C", QualifiedVisits: 1, Signups: 2, EarnedCents: 3, CappedCents: 4,
		Currency: "USD", Status: "payable", Reference: "cg_x"}
	if err := WriteCSV(&b, []Row{row}); err != nil {
		t.Fatal(err)
	}
	want := "creator_id,handle,country,qualified_visits,signups,earned_cents,capped_cents,currency,status,reference\n" +
		"'-id,h,'=C,1,2,3,4,USD,payable,cg_x\n"
	if b.String() != want {
		t.Fatalf("unexpected CSV;\ngot  %q\nwant %q", b.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, Statement{Campaign: "c", Statement: "s", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if rows, ok := got["rows"].([]any); !ok || len(rows) != 0 {
		t.Fatalf("unexpected rows of an empty statement; got %#v; want []", got["rows"])
	}

	f := func(name string, s Statement, want string) {
		t.Helper()
		err := WriteJSON(&bytes.Buffer{}, s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("unexpected error for %q; got %v; want it to contain %q", name, err, want)
		}
	}
	f("total is not the sum", Statement{TotalCents: 5, Rows: []Row{{CappedCents: 4}}}, "not the sum")
	f("row above 2^53-1", Statement{TotalCents: 0, Rows: []Row{{QualifiedVisits: 1 << 53}}}, "above 2^53-1")
	f("total above 2^53-1", Statement{TotalCents: 1 << 53, Rows: []Row{{CappedCents: 1 << 52}, {CappedCents: 1 << 52}}}, "above 2^53-1")
}

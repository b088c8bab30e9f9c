package payout

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

var update = flag.Bool("update", false, "rewrite testdata/payouts.golden.* from the code's output")

// seeded is the reference program with one creator per case. Its rows,
// checked by hand ($100 = 10000 cents per signup and per 1,000 qualified
// visits, cap 2000000, US only):
//
//	alice  active    US  12345 visits, 17 signups: 17×10000 + 12×10000 =   290000, paid   290000
//	bob    active    US 150500 visits, 60 signups: 60×10000 + 150×10000 = 2100000, paid 2000000 (cap)
//	carol  suspended US   5000 visits,  3 signups:  3×10000 +  5×10000 =    80000, paid        0
//	dave   invited   US    999 visits,  0 signups:              0 blocks =        0, paid        0
//	erin   active    CA   2000 visits,  1 signup:   1×10000 +  2×10000 =    30000, paid        0 (ineligible_country)
//	frank  suspended GB   no totals:                                             0, paid        0 (suspended wins)
//	grace  active    US   no totals:                                             0, paid        0 (payable)
//	henry  active    US   4999 visits, 200 signups: 200×10000 + 4×10000 = 2040000, paid 2000000 (cap by signups alone)
//	total paid: 290000 + 2000000 + 2000000 = 4290000
//
// zed belongs to another campaign and has no row. bob's and erin's handles
// would run as formulas in a spreadsheet, carol's needs RFC 4180 quoting.
func seeded() (counter.Campaign, []counter.Creator, map[string]Totals) {
	c := counter.Campaign{
		ID:                    "spring-2026",
		Name:                  "Spring 2026",
		StartsAt:              time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC),
		EndsAt:                time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC),
		SignupRewardCents:     10000,
		VisitBlockSize:        1000,
		VisitBlockRewardCents: 10000,
		CapCents:              2000000,
		EligibleCountries:     []string{"US"},
	}
	cr := func(id, campaign, handle, country, status string) counter.Creator {
		return counter.Creator{ID: id, Campaign: campaign, Handle: handle, Country: country, Status: status}
	}
	// Not in id order: Compute sorts.
	creators := []counter.Creator{
		cr("henry", c.ID, "henry", "US", counter.StatusActive),
		cr("carol", c.ID, `Carol, "CJ" Jones`, "US", counter.StatusSuspended),
		cr("alice", c.ID, "@alice", "US", counter.StatusActive),
		cr("zed", "autumn-2026", "zed", "US", counter.StatusActive),
		cr("bob", c.ID, `=HYPERLINK("https://evil.example","Bob")`, "US", counter.StatusActive),
		cr("dave", c.ID, "dave", "US", counter.StatusInvited),
		cr("erin", c.ID, "+erin", "CA", counter.StatusActive),
		cr("frank", c.ID, "frank", "GB", counter.StatusSuspended),
		cr("grace", c.ID, "grace", "US", counter.StatusActive),
	}
	totals := map[string]Totals{
		"alice": {Qualified: 12345, Signups: 17},
		"bob":   {Qualified: 150500, Signups: 60},
		"carol": {Qualified: 5000, Signups: 3},
		"dave":  {Qualified: 999},
		"erin":  {Qualified: 2000, Signups: 1},
		"henry": {Qualified: 4999, Signups: 200},
	}
	return c, creators, totals
}

func TestGolden(t *testing.T) {
	c, creators, totals := seeded()
	s, err := Compute(c, "2026-06-22", creators, totals)
	if err != nil {
		t.Fatal(err)
	}

	// The hand-checked numbers above, before any file is compared.
	type want struct {
		id             string
		earned, capped int64
		status         string
	}
	wants := []want{
		{"alice", 290000, 290000, "payable"},
		{"bob", 2100000, 2000000, "payable"},
		{"carol", 80000, 0, "suspended"},
		{"dave", 0, 0, "invited"},
		{"erin", 30000, 0, "ineligible_country"},
		{"frank", 0, 0, "suspended"},
		{"grace", 0, 0, "payable"},
		{"henry", 2040000, 2000000, "payable"},
	}
	if len(s.Rows) != len(wants) {
		t.Fatalf("unexpected number of rows; got %d; want %d", len(s.Rows), len(wants))
	}
	for i, w := range wants {
		r := s.Rows[i]
		if r.CreatorID != w.id || r.EarnedCents != w.earned || r.CappedCents != w.capped || r.Status != w.status {
			t.Fatalf("unexpected row %d; got %s %d %d %s; want %s %d %d %s",
				i, r.CreatorID, r.EarnedCents, r.CappedCents, r.Status, w.id, w.earned, w.capped, w.status)
		}
	}
	if s.TotalCents != 4290000 {
		t.Fatalf("unexpected total; got %d; want 4290000", s.TotalCents)
	}

	var csvOut, jsonOut bytes.Buffer
	if err := WriteCSV(&csvOut, s.Rows); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&jsonOut, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "payouts.golden.csv", csvOut.Bytes())
	golden(t, "payouts.golden.json", jsonOut.Bytes())
}

// golden compares got byte for byte with testdata/name, or rewrites the
// file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("unexpected %s (go test -update rewrites it);\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

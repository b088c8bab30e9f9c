package bench

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAuditCatchesFraudPaidPastBudgets(t *testing.T) {
	m := DefaultModel()
	m.AddressBase, m.AddressesPerBlock, m.FraudShare = 600, 64, 0.4
	_, a := newFakeGate(m, false).run(t, 8000)
	if a.OK() || !strings.Contains(strings.Join(a.Problems, "\n"), "budgets (20 per network, 300 per /24) allow") {
		t.Fatalf("audit passed against a server that pays fraud past the budgets: %v", a.Problems)
	}
	// Honest people are still counted exactly: only fraud is flagged.
	for _, r := range a.Rows {
		if len(r.Problems) > 0 {
			t.Errorf("%s/%s: %v", r.Campaign, r.Creator, r.Problems)
		}
	}
}

func TestAudit(t *testing.T) {
	m := DefaultModel()
	m.Campaigns, m.CreatorsPerCampaign = 1, 2
	// Creators 0 and 1 are honest, 2 the one that RotateAgents clicks.
	res := &Result{Kinds: map[string]KindResult{"person": {Sent: 1500, OK: 1500}, "fraud": {Sent: 40, OK: 40}},
		Creator: []Expected{{Qualified: 1000, Duplicates: 500, Bots: 7}, {Qualified: 3, Duplicates: 1}, {Fraud: 40}, {}, {}, {}},
		Fraud:   []FraudBlock{{Block: netip.MustParsePrefix("127.128.0.0/24"), Campaign: 0, Pattern: RotateAgents, Sent: map[byte]int64{1: 40}}},
	}
	before := []Counts{{Qualified: 10}, {}, {}, {}, {}, {}}
	with := func(honest, fraud Counts) []Counts {
		return []Counts{honest, {Qualified: 3, Duplicates: 1}, fraud, {}, {}, {}}
	}
	fraud := Counts{Qualified: 20, Budget: 10, Velocity: 10}
	good := with(Counts{Qualified: 1010 - 2, Duplicates: 502, Bots: 7}, fraud)
	a := NewAudit(m, 0.001, res, before, good)
	if !a.OK() {
		t.Fatalf("2 of 1000 missing is within the bound: %v", a.Problems)
	}
	if paid, bound, clicks := a.PaidFraud(); paid != 20 || bound != 20 || clicks != 40 || a.Got.Qualified != 1003-2 {
		t.Fatalf("unexpected totals: fraud paid %d, bound %d, clicks %d; honest qualified %d", paid, bound, clicks, a.Got.Qualified)
	}
	for name, after := range map[string][]Counts{
		"one extra":         with(Counts{Qualified: 1011, Duplicates: 499, Bots: 7}, fraud),
		"beyond bound":      with(Counts{Qualified: 1010 - 13, Duplicates: 513, Bots: 7}, fraud),
		"lost duplicate":    with(Counts{Qualified: 1010, Duplicates: 499, Bots: 7}, fraud),
		"bots":              with(Counts{Qualified: 1010, Duplicates: 500, Bots: 6}, fraud),
		"velocity":          with(Counts{Qualified: 1010, Duplicates: 500, Bots: 7, Velocity: 1}, fraud),
		"budget":            with(Counts{Qualified: 1010 - 2, Duplicates: 500, Bots: 7, Budget: 2}, fraud),
		"fraud past budget": with(Counts{Qualified: 1010, Duplicates: 500, Bots: 7}, Counts{Qualified: 21, Budget: 9, Velocity: 10}),
		"fraud lost":        with(Counts{Qualified: 1010, Duplicates: 500, Bots: 7}, Counts{Qualified: 20, Budget: 9, Velocity: 10}),
		"fraud as bots":     with(Counts{Qualified: 1010, Duplicates: 500, Bots: 7}, Counts{Qualified: 20, Budget: 10, Velocity: 10, Bots: 1}),
	} {
		if a := NewAudit(m, 0.001, res, before, after); a.OK() {
			t.Errorf("%s: audit passed", name)
		}
	}
	// One missing of 3 is past the bound.
	after := with(Counts{Qualified: 1010, Duplicates: 500, Bots: 7}, fraud)
	after[1].Qualified = 2
	if a := NewAudit(m, 0.001, res, before, after); a.OK() {
		t.Errorf("one missing of 3: audit passed")
	}
	// Without budgets, all 40 may be paid.
	all := with(Counts{Qualified: 1010, Duplicates: 500, Bots: 7}, Counts{Qualified: 40})
	if a := (Limits{FP: 0.001}).Audit(m, res, before, all); !a.OK() {
		t.Errorf("no budgets: %v", a.Problems)
	}
	res.Kinds["person"] = KindResult{Sent: 1500, OK: 1499, Errors: 1}
	if a := NewAudit(m, 0.001, res, before, good); a.OK() || a.NotRedirected != 1 {
		t.Errorf("a person not redirected passed the audit")
	}
	res.Kinds["person"] = KindResult{Sent: 1500, OK: 1500}
	res.Kinds["fraud"] = KindResult{Sent: 40, OK: 39, Unexpected: 1}
	if a := NewAudit(m, 0.001, res, before, good); a.OK() {
		t.Errorf("a fraudster not redirected passed the audit")
	}
}

func TestFraudBlockBound(t *testing.T) {
	f := func(sent map[byte]int64, network, block int, want int64) {
		t.Helper()
		b := FraudBlock{Sent: sent}
		if got := b.Bound(network, block); got != want {
			t.Errorf("unexpected bound for %v at budgets %d/%d; got %d; want %d", sent, network, block, got, want)
		}
	}
	f(map[byte]int64{1: 40}, 20, 300, 20)
	f(map[byte]int64{1: 40}, 0, 300, 40)
	f(map[byte]int64{1: 30, 2: 30, 3: 30}, 20, 300, 60)
	f(map[byte]int64{1: 30, 2: 30, 3: 30}, 20, 50, 50)
	f(map[byte]int64{1: 30, 2: 30, 3: 30}, 0, 0, 90)
	sweep := map[byte]int64{}
	for h := range SweepAddresses {
		sweep[byte(h+1)] = SweepAgents
	}
	f(sweep, 20, 300, 300)
}

func TestMergeFraud(t *testing.T) {
	a, b := netip.MustParsePrefix("127.128.0.0/24"), netip.MustParsePrefix("127.128.1.0/24")
	got := MergeFraud([]FraudBlock{
		{Block: a, Pattern: SweepBlock, Sent: map[byte]int64{1: 8, 2: 8}},
		{Block: b, Pattern: RotateAgents, Sent: map[byte]int64{1: 40}},
		{Block: a, Pattern: SweepBlock, Sent: map[byte]int64{2: 1, 3: 8}},
	})
	if len(got) != 2 || got[0].Block != a || len(got[0].Sent) != 3 || got[0].Sent[2] != 9 || got[1].Sent[1] != 40 {
		t.Fatalf("unexpected merge: %+v", got)
	}
}

package payout

import (
	"errors"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/ledger"
)

func TestFromLedger(t *testing.T) {
	dir := t.TempDir()
	l, err := ledger.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	end := time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC)
	terms := ledger.Terms{ID: "spring", SignupRewardCents: 10000, VisitBlockSize: 1000, VisitBlockRewardCents: 10000,
		CapCents: 2000000, EligibleCountries: []string{"US"}, PayableAfter: end.Add(72 * time.Hour)}
	alice := ledger.Entry{Campaign: "spring", Creator: "alice", Qualified: 2500, Signups: 3, Handle: "@alice", Country: "US", Status: "active"}
	if _, err := l.Append(ledger.Batch{At: end, Entries: []ledger.Entry{alice}, Campaigns: []ledger.Terms{terms}}); err != nil {
		t.Fatal(err)
	}
	// Flushed at the end but before the signup grace is over: not payable.
	if _, err := FromLedger(l.Snapshot(), "spring"); !errors.Is(err, ErrNotPayable) {
		t.Fatalf("unexpected error before the grace ended; got %v; want ErrNotPayable", err)
	}
	if _, err := FromLedger(l.Snapshot(), "fall"); err == nil {
		t.Fatalf("unexpected success for a campaign not in the ledger")
	}
	alice.Signups = 4
	if _, err := l.Append(ledger.Batch{At: terms.PayableAfter.Add(time.Minute), Entries: []ledger.Entry{alice}}); err != nil {
		t.Fatal(err)
	}
	st, err := FromLedger(l.Snapshot(), "spring")
	if err != nil {
		t.Fatal(err)
	}
	// 4 × 10000 + 2 blocks × 10000 = 60000.
	if len(st.Rows) != 1 || st.Statement != Final || st.Rows[0].CappedCents != 60000 || st.Rows[0].Handle != "@alice" || st.Rows[0].Reference != Reference("spring", "alice", Final) {
		t.Fatalf("unexpected statement %+v", st)
	}
	// Verify reads the same from the file.
	rep, err := ledger.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st2, err := FromLedger(rep, "spring"); err != nil || st2.TotalCents != st.TotalCents {
		t.Fatalf("unexpected statement from Verify: %+v, %v", st2, err)
	}
}

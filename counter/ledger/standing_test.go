package ledger

import (
	"testing"

	"github.com/clickgate/clickgate/counter/payout"
)

// TestStanding: a sealed campaign stands at its sealed statement, whatever
// was flushed after it; another at the statement of the ledger as it
// stands, named standing; an unknown campaign is an error.
func TestStanding(t *testing.T) {
	dir := t.TempDir()
	writeSealedLedger(t, dir, nil)
	l := newLedger(t, dir)
	defer mustClose(t, l)
	rep := l.Snapshot()
	f := func(campaign, wantStatement string, wantCents int64, wantPayable int) {
		t.Helper()
		s, err := rep.Standing(campaign)
		if err != nil {
			t.Fatalf("unexpected error for %q: %s", campaign, err)
		}
		payable := 0
		for _, r := range s.Rows {
			if r.Status == payout.StatusPayable {
				payable++
			}
		}
		if s.Statement != wantStatement || s.TotalCents != wantCents || payable != wantPayable {
			t.Fatalf("unexpected standing of %q; got %s %d cents, %d payable; want %s %d cents, %d payable",
				campaign, s.Statement, s.TotalCents, payable, wantStatement, wantCents, wantPayable)
		}
	}
	f("spring26", payout.Final, wantSealedCents, 1)
	f("fall", Standing, 2*500, 1) // 2 signups; 6 visits are no block of 100
	if _, err := rep.Standing("nope"); err == nil {
		t.Fatal("unexpected standing of an unknown campaign")
	}
}

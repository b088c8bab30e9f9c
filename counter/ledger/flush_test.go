package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
)

// store opens an embedded store with a campaign and a creator, and commits
// n new visitors.
func storeWith(t *testing.T, n int) counter.Store {
	t.Helper()
	p, _ := counter.NewDedupeParams(1000, 0.001)
	s, err := boltstore.Open(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	now := time.Now().UTC()
	if err := s.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}); err != nil {
		t.Fatal(err)
	}
	commit(t, s, 0, n)
	return s
}

func commit(t *testing.T, s counter.Store, from, n int) {
	t.Helper()
	vs := make([]counter.Visit, n)
	for i := range vs {
		vs[i] = counter.Visit{Campaign: "spring", Creator: "alice"}
		vs[i].Key[0], vs[i].Key[1] = byte(from+i), byte((from+i)>>8)
		vs[i].SetWindow(time.Now(), 24*time.Hour)
	}
	if err := s.Commit(context.Background(), vs, make([]counter.Reason, n)); err != nil {
		t.Fatal(err)
	}
}

func TestFlush(t *testing.T) {
	ctx := context.Background()
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := storeWith(t, 3)
	res, err := Flush(ctx, s, l, time.Now())
	if err != nil || res.Batch.Seq != 1 || len(res.Batch.Campaigns) != 1 || l.Totals()[Key{"spring", "alice"}].Qualified != 3 {
		t.Fatalf("unexpected first flush: %+v, %v", res, err)
	}
	// Nothing changed: nothing is written.
	if res, err := Flush(ctx, s, l, time.Now()); err != nil || res.Batch.Seq != 0 || l.LastSeq() != 1 {
		t.Fatalf("unexpected flush of an unchanged store: %+v, %v", res, err)
	}
	// A store that lost writes (1 visit where the ledger has 3): the ledger
	// keeps its totals and names the creator.
	lost := storeWith(t, 1)
	res, err = Flush(ctx, lost, l, time.Now())
	if err != nil || len(res.Behind) != 1 || res.Behind[0] != (Key{"spring", "alice"}) || l.Totals()[Key{"spring", "alice"}].Qualified != 3 {
		t.Fatalf("unexpected flush of a store behind the ledger: %+v, %v; totals %v", res, err, l.Totals())
	}
	// Counting resumes from the ledger's total once the store passes it:
	// the lost visits are not counted again (an underpayment, never a
	// double payment).
	commit(t, lost, 1, 3)
	if _, err := Flush(ctx, lost, l, time.Now()); err != nil || l.Totals()[Key{"spring", "alice"}].Qualified != 4 {
		t.Fatalf("unexpected totals after the store caught up: %v, %v", l.Totals(), err)
	}
}

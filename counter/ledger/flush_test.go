package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/payout"
)

// storeWith opens an embedded store with a campaign that ends in an hour
// and a creator, and commits n new visitors.
func storeWith(t *testing.T, n int) counter.Store {
	t.Helper()
	now := time.Now().UTC()
	return storeOf(t, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1000}, n)
}

// storeOf opens an embedded store with campaign c and its creator alice,
// and commits n new visitors.
func storeOf(t *testing.T, c counter.Campaign, n int) counter.Store {
	t.Helper()
	p, _ := counter.NewDedupeParams(10000, 0.001)
	s, err := boltstore.Open(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if err := s.PutCampaign(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: c.ID, Handle: "@alice", Country: "US", Status: counter.StatusActive}); err != nil {
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
	dir := t.TempDir()
	l := mustOpen(t, dir)
	defer l.Close()
	s := storeWith(t, 3)
	// Not bound to a store yet: nothing is written.
	if _, err := Flush(ctx, s, l, time.Now()); !errors.Is(err, ErrInvalid) || l.LastSeq() != 0 || len(readLedger(t, dir)) != 0 {
		t.Fatalf("unexpected flush before Init; got %v, seq %d; want ErrInvalid, seq 0", err, l.LastSeq())
	}
	mustInit(t, l)
	res, err := Flush(ctx, s, l, time.Now())
	if err != nil || res.Batch.Seq != 2 || len(res.Batch.Campaigns) != 1 || l.Totals()[Key{"spring", "alice"}].Qualified != 3 || res.Sealed.Seq != 0 {
		t.Fatalf("unexpected first flush: %+v, %v", res, err)
	}
	// Nothing changed: nothing is written.
	if res, err := Flush(ctx, s, l, time.Now()); err != nil || res.Batch.Seq != 0 || res.Sealed.Seq != 0 || l.LastSeq() != 2 {
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
	mustVerify(t, dir)
}

// TestFlushAccepted: a creator's acceptance time goes into the ledger with
// their details, once; a store that later lost it does not take it back.
func TestFlushAccepted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := newLedger(t, dir)
	defer l.Close()
	s := storeWith(t, 2)
	if _, err := Flush(ctx, s, l, time.Now()); err != nil || !l.Totals()[Key{"spring", "alice"}].AcceptedAt.IsZero() {
		t.Fatalf("unexpected flush before the acceptance: %v, %+v", err, l.Totals())
	}
	alice, err := s.Creator(ctx, "spring", "alice")
	if err != nil {
		t.Fatal(err)
	}
	accepted := time.Date(2026, 5, 12, 8, 0, 1, 0, time.UTC)
	alice.AcceptedAt = accepted
	if err := s.PutCreator(ctx, alice); err != nil {
		t.Fatal(err)
	}
	res, err := Flush(ctx, s, l, time.Now())
	if err != nil || len(res.Batch.Entries) != 1 || !res.Batch.Entries[0].AcceptedAt.Equal(accepted) {
		t.Fatalf("unexpected flush of the acceptance: %+v, %v", res, err)
	}
	// Unchanged: nothing written. Lost by the store: the ledger keeps it.
	for _, at := range []time.Time{accepted, {}} {
		alice.AcceptedAt = at
		if err := s.PutCreator(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if res, err := Flush(ctx, s, l, time.Now()); err != nil || res.Batch.Seq != 0 {
			t.Fatalf("unexpected flush with accepted_at %v in the store: %+v, %v", at, res, err)
		}
	}
	commit(t, s, 2, 1)
	if _, err := Flush(ctx, s, l, time.Now()); err != nil || !l.Totals()[Key{"spring", "alice"}].AcceptedAt.Equal(accepted) {
		t.Fatalf("unexpected accepted_at after the store lost it: %v, %+v", err, l.Totals())
	}
	if r := mustVerify(t, dir); r.Format != 2 {
		t.Fatalf("unexpected format %d", r.Format)
	}
}

// TestFlushSeals checks that the flush after a campaign's end plus grace
// seals its statement, even when no total changed since the last flush
// (a quiet end), and that no flush before it does.
func TestFlushSeals(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	c := counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), SignupGrace: counter.Duration(time.Hour),
		SignupRewardCents: 100, VisitBlockSize: 1000, VisitBlockRewardCents: 500, CapCents: 1000000}
	payable := c.EndsAt.Add(time.Hour)
	s := storeOf(t, c, 2500)
	// 2 blocks of 1000 visits × 500 cents.
	const wantCents = 1000

	t.Run("quiet end", func(t *testing.T) {
		dir := t.TempDir()
		l := newLedger(t, dir)
		defer l.Close()
		res, err := Flush(ctx, s, l, now)
		if err != nil || res.Batch.Seq != 2 || res.Sealed.Seq != 0 {
			t.Fatalf("unexpected flush during the campaign: %+v, %v", res, err)
		}
		checkSummary(t, res.Summary(l.Snapshot()), FlushSummary{Seq: 2, Creators: 1, Terms: 1, Sealed: []string{}, Behind: []Key{}, Unsettled: []string{}, LastSeq: 2, Head: l.Snapshot().Head})
		if got := l.Snapshot().Campaigns["spring"].PayableAfter; !got.Equal(payable) {
			t.Fatalf("unexpected PayableAfter; got %s; want %s", got, payable)
		}
		// At the end, and at PayableAfter itself: not payable yet.
		for _, at := range []time.Time{c.EndsAt, payable} {
			res, err := Flush(ctx, s, l, at)
			if err != nil || res.Batch.Seq != 0 || res.Sealed.Seq != 0 || l.LastSeq() != 2 {
				t.Fatalf("unexpected flush at %s, before the campaign is payable: %+v, %v", at, res, err)
			}
			if _, err := l.Snapshot().Statement("spring"); !errors.Is(err, ErrNotPayable) {
				t.Fatalf("unexpected Statement error at %s; got %v; want ErrNotPayable", at, err)
			}
		}
		head := l.Snapshot().Head
		res, err = Flush(ctx, s, l, payable.Add(time.Second))
		if err != nil || res.Batch.Seq != 0 || res.Sealed.Seq != 3 || len(res.Sealed.Statements) != 1 {
			t.Fatalf("unexpected flush after a quiet end: %+v, %v; want only a sealing record", res, err)
		}
		st := res.Sealed.Statements[0]
		if st.Campaign != "spring" || st.Statement != payout.Final || st.LedgerHead != head || st.TotalCents != wantCents ||
			len(st.Rows) != 1 || st.Rows[0].CreatorID != "alice" || st.Rows[0].Handle != "@alice" || st.Rows[0].QualifiedVisits != 2500 {
			t.Fatalf("unexpected statement sealed by the flush: %+v; want %d cents for alice, ledger head %s", st, wantCents, head)
		}
		checkSummary(t, res.Summary(l.Snapshot()), FlushSummary{Sealed: []string{"spring"}, Behind: []Key{}, Unsettled: []string{}, LastSeq: 3, Head: l.Snapshot().Head})
		// Sealed once.
		if res, err := Flush(ctx, s, l, payable.Add(time.Hour)); err != nil || res.Batch.Seq != 0 || res.Sealed.Seq != 0 || l.LastSeq() != 3 {
			t.Fatalf("unexpected flush after the statement was sealed: %+v, %v", res, err)
		}
		rep := mustVerify(t, dir)
		if got, err := rep.Statement("spring"); err != nil || !reflect.DeepEqual(got, st) {
			t.Fatalf("unexpected statement in the file; got %+v, %v; want %+v", got, err, st)
		}
	})
	t.Run("late flush", func(t *testing.T) {
		// The first flush after the campaign is payable writes the totals,
		// then seals a statement that holds them.
		dir := t.TempDir()
		l := newLedger(t, dir)
		defer l.Close()
		res, err := Flush(ctx, s, l, payable.Add(time.Second))
		if err != nil || res.Batch.Seq != 2 || res.Sealed.Seq != 3 || len(res.Sealed.Statements) != 1 {
			t.Fatalf("unexpected late flush: %+v, %v; want a batch and a sealing record", res, err)
		}
		ls := lines(readLedger(t, dir))
		if st := res.Sealed.Statements[0]; st.TotalCents != wantCents || st.LedgerHead != sha(ls[1]) {
			t.Fatalf("unexpected statement of a late flush: %+v; want %d cents, ledger head %s", st, wantCents, sha(ls[1]))
		}
		mustVerify(t, dir)
	})
}

// checkSummary checks a flush's summary, and that it encodes lists as
// arrays, never null, for the operators' tools that read it.
func checkSummary(t *testing.T, got, want FlushSummary) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unexpected flush summary; got %+v; want %+v", got, want)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("null")) {
		t.Fatalf("unexpected null in the flush summary %s", b)
	}
}

// unsettledStore is a store whose judges have not decided everything
// appended: Settle fails while err is set.
type unsettledStore struct {
	counter.Store
	err     error
	settled []string
}

func (s *unsettledStore) Settle(ctx context.Context, campaign string) error {
	s.settled = append(s.settled, campaign)
	return s.err
}

// TestFlushSealsSettled: a flush after the end plus grace seals only a
// campaign that settled; one that did not gets its totals written, is
// listed as unsettled, and is sealed by the first flush after it settles.
// A campaign that is not payable is never asked to settle.
func TestFlushSealsSettled(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	c := counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour),
		SignupRewardCents: 100, VisitBlockSize: 1000, VisitBlockRewardCents: 500, CapCents: 1000000}
	s := &unsettledStore{Store: storeOf(t, c, 1000), err: errors.New("partition 0 is behind")}
	dir := t.TempDir()
	l := newLedger(t, dir)
	defer l.Close()

	if res, err := Flush(ctx, s, l, now); err != nil || res.Batch.Seq != 2 || len(res.Unsettled) != 0 || len(s.settled) != 0 {
		t.Fatalf("unexpected flush during the campaign: %+v, %v, settled %q; want totals, no settling", res, err, s.settled)
	}
	commit(t, s, 1000, 1000)
	after := c.EndsAt.Add(time.Second)
	res, err := Flush(ctx, s, l, after)
	if err != nil || res.Batch.Seq != 3 || res.Sealed.Seq != 0 || len(res.Unsettled) != 1 || res.Unsettled[0].Campaign != "spring" {
		t.Fatalf("unexpected flush of an unsettled campaign: %+v, %v; want its totals and no seal", res, err)
	}
	checkSummary(t, res.Summary(l.Snapshot()), FlushSummary{Seq: 3, Creators: 1, Sealed: []string{}, Behind: []Key{},
		Unsettled: []string{"spring"}, LastSeq: 3, Head: l.Snapshot().Head})
	if _, err := l.Snapshot().Statement("spring"); !errors.Is(err, ErrNotPayable) {
		t.Fatalf("unexpected Statement error of an unsettled campaign; got %v; want ErrNotPayable", err)
	}

	s.err = nil
	commit(t, s, 2000, 1000) // decided before it settles: in the statement
	res, err = Flush(ctx, s, l, after.Add(time.Second))
	if err != nil || res.Batch.Seq != 4 || res.Sealed.Seq != 5 || len(res.Unsettled) != 0 {
		t.Fatalf("unexpected flush once settled: %+v, %v; want the totals, then the seal", res, err)
	}
	if st := res.Sealed.Statements[0]; st.Rows[0].QualifiedVisits != 3000 || st.TotalCents != 1500 {
		t.Fatalf("unexpected statement; got %d qualified, %d cents; want 3000 and 1500", st.Rows[0].QualifiedVisits, st.TotalCents)
	}
	if len(s.settled) != 2 {
		t.Fatalf("unexpected Settle calls: %q; want one per flush after the end, none once sealed", s.settled)
	}
	if res, err := Flush(ctx, s, l, after.Add(time.Hour)); err != nil || res.Sealed.Seq != 0 || len(s.settled) != 2 {
		t.Fatalf("unexpected flush after the seal: %+v, %v, settled %q", res, err, s.settled)
	}
	mustVerify(t, dir)
}

package ledger

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/payout"
)

// sealedBatches are a ledger's life with two campaigns: terms and
// creators, a flush after spring26's end plus grace, the seal of its
// statement, then later changes that must not change it. The ids stress
// the framing as testBatches' do.
// mayaAccepted is when maya accepted spring26's terms, in sealedBatches.
var mayaAccepted = t0.Add(-90*time.Minute - 123456789)

func sealedBatches() []Batch {
	spring := Terms{ID: "spring26", Name: "Spring 2026 <launch> & \"friends\"", SignupRewardCents: 10000, VisitBlockSize: 1000,
		VisitBlockRewardCents: 10000, CapCents: 2000000, EligibleCountries: []string{"CA", "US"}, PayableAfter: t0.Add(24 * time.Hour)}
	fall := Terms{ID: "fall", SignupRewardCents: 500, VisitBlockSize: 100, VisitBlockRewardCents: 50, CapCents: 100000, PayableAfter: t0.Add(1000 * time.Hour)}
	raised := spring
	raised.SignupRewardCents = 20000
	return []Batch{
		{At: t0.Add(time.Minute), Campaigns: []Terms{spring, fall}, Entries: []Entry{
			{Campaign: "spring26", Creator: "maya", Qualified: 1200, Signups: 3, Handle: "@maya", Country: "US", Status: "active", AcceptedAt: mayaAccepted},
			{Campaign: "spring26", Creator: "leo", Qualified: 87, Signups: 0, Handle: "@leo", Country: "FR", Status: "active"},
			{Campaign: "spring26", Creator: "zoe", Qualified: 5000, Signups: 9, Handle: "@zoe", Country: "CA", Status: "suspended"},
			{Campaign: "spring26", Creator: "ünïcødé 🎉", Qualified: 10, Signups: 0, Country: "US", Status: "invited"},
			{Campaign: "fall", Creator: `a"b\c`, Qualified: 5, Signups: 0, Handle: "<b>&", Country: "DE", Status: "active"},
		}},
		{At: t0.Add(25 * time.Hour), Entries: []Entry{
			{Campaign: "spring26", Creator: "leo", Qualified: 90, Signups: 1, Handle: "@leo", Country: "FR", Status: "active"},
			{Campaign: "spring26", Creator: "maya", Qualified: 2300, Signups: 4, Handle: "@maya", Country: "US", Status: "active", AcceptedAt: mayaAccepted},
		}},
		{At: t0.Add(25 * time.Hour), Seal: []string{"spring26"}},
		{At: t0.Add(26 * time.Hour), Campaigns: []Terms{raised}, Entries: []Entry{
			{Campaign: "spring26", Creator: "maya", Qualified: 2500, Signups: 6, Handle: "@maya", Country: "US", Status: "active", AcceptedAt: mayaAccepted},
			{Campaign: "spring26", Creator: "zoe", Qualified: 5000, Signups: 10, Handle: "@zoe", Country: "CA", Status: "active"},
			{Campaign: "fall", Creator: `a"b\c`, Qualified: 6, Signups: 2, Handle: "<b>&", Country: "DE", Status: "active"},
		}},
	}
}

// sealedLine is the index of the sealing record in a sealed ledger's lines.
const sealedLine = 3

// wantSealedCents is spring26's statement in sealedBatches: maya's 4
// signups and 2 blocks; leo is in an ineligible country, zoe suspended,
// the last creator invited.
const wantSealedCents = 4*10000 + 2*10000

// writeSealedLedger writes sealedBatches into a new ledger in dir, after
// first as its first record, or after Init's when first is nil. It
// returns the batches as Append returned them.
func writeSealedLedger(t testing.TB, dir string, first []byte) []Batch {
	t.Helper()
	if first != nil {
		writeLedger(t, dir, first)
	}
	l := newLedger(t, dir)
	defer mustClose(t, l)
	var got []Batch
	for _, b := range sealedBatches() {
		got = append(got, mustAppend(t, l, b))
	}
	return got
}

func TestSeal(t *testing.T) {
	dir := t.TempDir()
	l := newLedger(t, dir)
	defer mustClose(t, l)
	end := time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC)
	terms := Terms{ID: "spring", SignupRewardCents: 10000, VisitBlockSize: 1000, VisitBlockRewardCents: 10000,
		CapCents: 2000000, EligibleCountries: []string{"US"}, PayableAfter: end.Add(72 * time.Hour)}
	alice := Entry{Campaign: "spring", Creator: "alice", Qualified: 2500, Signups: 3, Handle: "@alice", Country: "US", Status: "active"}
	bob := Entry{Campaign: "spring", Creator: "bob", Qualified: 3000, Signups: 1, Handle: "@bob", Country: "US", Status: "suspended"}
	mustAppend(t, l, Batch{At: end, Entries: []Entry{alice, bob}, Campaigns: []Terms{terms}})

	// Flushed at the end but before the signup grace is over: not payable.
	_, err := l.Snapshot().Statement("spring")
	if !errors.Is(err, ErrNotPayable) || !strings.Contains(err.Error(), terms.PayableAfter.Format(time.RFC3339)) {
		t.Fatalf("unexpected error before the grace ended; got %v; want ErrNotPayable naming %s", err, terms.PayableAfter.Format(time.RFC3339))
	}
	if _, err := l.Snapshot().Statement("fall"); err == nil || errors.Is(err, ErrNotPayable) {
		t.Fatalf("unexpected error for a campaign not in the ledger; got %v", err)
	}
	for _, c := range []struct {
		at   time.Time
		want []string
	}{
		{end, nil},
		{terms.PayableAfter, nil},
		{terms.PayableAfter.Add(time.Nanosecond), []string{"spring"}},
	} {
		if got := l.Snapshot().Payable(c.at); !slices.Equal(got, c.want) {
			t.Fatalf("unexpected Payable for %q; got %v; want %v", c.at.Format(time.RFC3339Nano), got, c.want)
		}
	}

	refuse := func(name string, b Batch, reason string) {
		t.Helper()
		before, seq := readLedger(t, dir), l.LastSeq()
		_, err := l.Append(b)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), reason) {
			t.Fatalf("unexpected error for %q; got %v; want ErrInvalid and %q", name, err, reason)
		}
		if !bytes.Equal(readLedger(t, dir), before) || l.LastSeq() != seq {
			t.Fatalf("refused batch %q wrote something", name)
		}
	}
	refuse("seal at the end", Batch{At: end, Seal: []string{"spring"}}, "is payable after")
	refuse("seal at PayableAfter", Batch{At: terms.PayableAfter, Seal: []string{"spring"}}, "is payable after")
	refuse("seal of an unknown campaign", Batch{At: terms.PayableAfter.Add(time.Minute), Seal: []string{"fall"}}, "not in the ledger")
	refuse("seal with entries", Batch{At: terms.PayableAfter.Add(time.Minute), Seal: []string{"spring"}, Entries: []Entry{alice}}, "holds no entries or terms")
	refuse("seal with terms", Batch{At: terms.PayableAfter.Add(time.Minute), Seal: []string{"spring"}, Campaigns: []Terms{terms}}, "holds no entries or terms")

	// The last flush, after the grace, then the seal.
	alice.Signups = 4
	mustAppend(t, l, Batch{At: terms.PayableAfter.Add(time.Minute), Entries: []Entry{alice}})
	head := l.Snapshot().Head
	got := mustAppend(t, l, Batch{At: terms.PayableAfter.Add(2 * time.Minute), Seal: []string{"spring"}})
	if got.Seq != 4 || len(got.Statements) != 1 {
		t.Fatalf("unexpected sealing batch: %+v; want seq 4 and one statement", got)
	}
	st := got.Statements[0]
	// alice: 4 × 10000 + 2 blocks × 10000 = 60000; bob is suspended.
	if st.Campaign != "spring" || st.Statement != payout.Final || st.Currency != payout.Currency || st.TotalCents != 60000 || st.LedgerHead != head || len(st.Rows) != 2 {
		t.Fatalf("unexpected statement %+v; want 60000 cents, 2 rows, ledger head %s", st, head)
	}
	if r := st.Rows[0]; r.CreatorID != "alice" || r.CappedCents != 60000 || r.Signups != 4 || r.Handle != "@alice" || r.Status != payout.StatusPayable ||
		r.Reference != payout.Reference("spring", "alice", payout.Final) {
		t.Fatalf("unexpected row of alice %+v", r)
	}
	if r := st.Rows[1]; r.CreatorID != "bob" || r.CappedCents != 0 || r.EarnedCents != 40000 || r.Status != payout.StatusSuspended {
		t.Fatalf("unexpected row of bob %+v", r)
	}
	// The record holds the statement and nothing else.
	ls := lines(readLedger(t, dir))
	if b := parse(t, ls[3]); len(b.Entries) != 0 || len(b.Campaigns) != 0 || !reflect.DeepEqual(b.Statements, got.Statements) || b.Prev != head {
		t.Fatalf("unexpected sealing record %s", ls[3])
	}
	if got, err := l.Snapshot().Statement("spring"); err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("unexpected sealed statement; got %+v, %v; want %+v", got, err, st)
	}
	if got := l.Snapshot().Payable(terms.PayableAfter.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("unexpected Payable after the seal; got %v; want none", got)
	}
	refuse("second seal", Batch{At: terms.PayableAfter.Add(3 * time.Minute), Seal: []string{"spring"}}, "sealed already")

	// Later flushes change neither the statement in the writer's state nor
	// the one Verify reads: a reactivated creator, more signups, new terms
	// with another price.
	alice.Signups, bob.Status, bob.Signups = 9, "active", 5
	terms.SignupRewardCents = 50000
	mustAppend(t, l, Batch{At: terms.PayableAfter.Add(time.Hour), Entries: []Entry{alice, bob}, Campaigns: []Terms{terms}})
	rep := mustVerify(t, dir)
	for name, r := range map[string]Report{"Snapshot": l.Snapshot(), "Verify": rep} {
		if r.Totals[Key{"spring", "bob"}] != bob || r.Campaigns["spring"].SignupRewardCents != 50000 {
			t.Fatalf("unexpected %s: the later batch is missing: %+v", name, r)
		}
		if got, err := r.Statement("spring"); err != nil || !reflect.DeepEqual(got, st) {
			t.Fatalf("unexpected statement from %s after later batches; got %+v, %v; want %+v", name, got, err, st)
		}
	}
}

func TestSealedLedger(t *testing.T) {
	dir := t.TempDir()
	batches := writeSealedLedger(t, dir, nil)
	rep := mustVerify(t, dir)
	st, err := rep.Statement("spring26")
	if err != nil || !reflect.DeepEqual(st, batches[2].Statements[0]) || st.TotalCents != wantSealedCents {
		t.Fatalf("unexpected statement of spring26; got %+v, %v; want %d cents, as sealed: %+v", st, err, wantSealedCents, batches[2].Statements)
	}
	var ids []string
	for _, r := range st.Rows {
		ids = append(ids, r.CreatorID+":"+r.Status)
	}
	if want := []string{"leo:ineligible_country", "maya:payable", "zoe:suspended", "ünïcødé 🎉:invited"}; !slices.Equal(ids, want) {
		t.Fatalf("unexpected rows of spring26; got %v; want %v", ids, want)
	}
	if _, err := rep.Statement("fall"); !errors.Is(err, ErrNotPayable) {
		t.Fatalf("unexpected error for fall; got %v; want ErrNotPayable", err)
	}
	for _, c := range []struct {
		at   time.Time
		want []string
	}{
		{t0.Add(25 * time.Hour), nil},
		{t0.Add(1001 * time.Hour), []string{"fall"}},
	} {
		if got := rep.Payable(c.at); !slices.Equal(got, c.want) {
			t.Fatalf("unexpected Payable for %q; got %v; want %v", c.at.Format(time.RFC3339), got, c.want)
		}
	}
}

// TestForgedStatement edits the sealed statement of a ledger and forges it
// with the ledger key, so that only the recomputation can catch it.
func TestForgedStatement(t *testing.T) {
	dir := t.TempDir()
	writeSealedLedger(t, dir, nil)
	data := readLedger(t, dir)
	ls := lines(data)
	// Forging without an edit gives the same bytes: the edits below are
	// all that differs.
	if got := bytes.Join(rechain(t, testKey, ls, sealedLine), nil); !bytes.Equal(got, data) {
		t.Fatalf("rechain changed an unedited ledger:\n%s\nwant\n%s", got, data)
	}
	seal := parse(t, ls[sealedLine])
	edit := func(name string, fn func(b *body), line int, reason string) {
		t.Helper()
		b := seal
		b.Statements = slices.Clone(seal.Statements)
		b.Statements[0].Rows = slices.Clone(seal.Statements[0].Rows)
		fn(&b)
		forged := slices.Clone(ls)
		forged[sealedLine] = forge(t, testKey, b)
		forged = rechain(t, testKey, forged, sealedLine+1)
		wantCorrupt(t, name, bytes.Join(forged, nil), line, reason)
	}
	const notComputed = "is not the one the ledger before it computes"
	edit("a row's amount and the total", func(b *body) {
		b.Statements[0].Rows[1].CappedCents += 100
		b.Statements[0].Rows[1].EarnedCents += 100
		b.Statements[0].TotalCents += 100
	}, 4, notComputed)
	edit("a suspended creator paid", func(b *body) {
		r := &b.Statements[0].Rows[2]
		r.Status, r.CappedCents = payout.StatusPayable, r.EarnedCents
		b.Statements[0].TotalCents += r.EarnedCents
	}, 4, notComputed)
	edit("a row dropped", func(b *body) { b.Statements[0].Rows = b.Statements[0].Rows[1:] }, 4, notComputed)
	edit("another reference", func(b *body) { b.Statements[0].Rows[1].Reference = payout.Reference("spring26", "maya", "first") }, 4, notComputed)
	edit("another ledger head", func(b *body) { b.Statements[0].LedgerHead = zeroHead }, 4, notComputed)
	edit("sealed before it is payable", func(b *body) { b.At = t0.Add(23 * time.Hour) }, 4, "is payable after")
	edit("an unknown campaign", func(b *body) { b.Statements[0].Campaign = "winter" }, 4, "not in the ledger")
	edit("entries beside the statement", func(b *body) {
		b.Entries = []Entry{{Campaign: "spring26", Creator: "maya", Qualified: 2400, Signups: 4, Handle: "@maya", Country: "US", Status: "active", AcceptedAt: mayaAccepted}}
	}, 4, "holds no entries or terms")

	// The same statement sealed again after it.
	twice := rechain(t, testKey, slices.Insert(slices.Clone(ls), sealedLine+1, ls[sealedLine]), sealedLine+1)
	wantCorrupt(t, "a statement sealed twice", bytes.Join(twice, nil), sealedLine+2, "sealed already")
}

// Package storetest is the conformance suite that every counter.Store passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// Opener opens a store on one backing state (a data directory, a Redis
// database). Opening it again after Close must find the same state.
type Opener func(p counter.DedupeParams) (counter.Store, error)

// Run runs the suite. fresh returns an Opener on new, empty backing state.
func Run(t *testing.T, fresh func(t *testing.T) Opener) {
	tests := []struct {
		name string
		f    func(t *testing.T, open Opener)
	}{
		{"Catalog", testCatalog},
		{"CommitDedupe", testCommitDedupe},
		{"CommitWindows", testCommitWindows},
		{"AddCountsAndStats", testAddCountsAndStats},
		{"LinkStats", testLinkStats},
		{"Persistence", testPersistence},
		{"ParamsMismatch", testParamsMismatch},
		{"ConcurrentCommits", testConcurrentCommits},
		{"MarkOnly", testMarkOnly},
		{"Also", testAlso},
		{"Signups", testSignups},
		{"SignupClicks", testSignupClicks},
		{"Claim", testClaim},
		{"UpdateLink", testUpdateLink},
		{"CatalogUnderWrites", testCatalogUnderWrites},
		{"ChangeFeedPositions", testChangeFeedPositions},
		{"TakenCodes", testTakenCodes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, fresh(t)) })
	}
}

// Params are the dedupe parameters the suite uses.
func Params(t testing.TB) counter.DedupeParams {
	p, err := counter.NewDedupeParams(100_000, 0.0001)
	if err != nil {
		t.Fatalf("cannot size dedupe: %s", err)
	}
	return p
}

func mustOpen(t *testing.T, open Opener, p counter.DedupeParams) counter.Store {
	t.Helper()
	s, err := open(p)
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Key returns a visitor key made from i.
func Key(i int) counter.VisitorKey {
	var k counter.VisitorKey
	copy(k[:], fmt.Sprintf("visitor-%08d", i))
	// Spread over slots like a real keyed hash would.
	k[12], k[13] = byte(i), byte(i>>8)
	return k
}

func visit(campaign, creator string, key int, at time.Time) counter.Visit {
	v := counter.Visit{Campaign: campaign, Creator: creator, Key: Key(key)}
	v.SetWindow(at, 24*time.Hour)
	return v
}

// decided reports whether a store's answer for a visit is want: a store
// that decides behind its log answers counter.Pending, and its Stats, which
// every test checks too, show the decision.
func decided(got, want counter.Reason) bool { return got == want || got == counter.Pending }

func commit(t *testing.T, s counter.Store, visits ...counter.Visit) []counter.Reason {
	t.Helper()
	out := make([]counter.Reason, len(visits))
	if err := s.Commit(context.Background(), visits, out); err != nil {
		t.Fatalf("cannot commit: %s", err)
	}
	return out
}

func total(t *testing.T, s counter.Store, campaign, creator string) counter.Counts {
	t.Helper()
	days, err := s.Stats(context.Background(), campaign, creator)
	if err != nil {
		t.Fatalf("cannot read stats of %q/%q: %s", campaign, creator, err)
	}
	for i := 1; i < len(days); i++ {
		if days[i-1].Day >= days[i].Day {
			t.Fatalf("stats days out of order: %v then %v", days[i-1].Day, days[i].Day)
		}
	}
	return counter.Total(days)
}

func testCommitDedupe(t *testing.T, open Opener) {
	s := mustOpen(t, open, Params(t))
	now := time.Now()
	out := commit(t, s, visit("c1", "alice", 1, now), visit("c1", "alice", 2, now), visit("c1", "alice", 1, now))
	want := []counter.Reason{counter.Qualified, counter.Qualified, counter.Duplicate}
	for i := range want {
		if !decided(out[i], want[i]) {
			t.Fatalf("unexpected reason for visit %d of one batch; got %v; want %v", i, out[i], want[i])
		}
	}
	if out := commit(t, s, visit("c1", "alice", 2, now)); !decided(out[0], counter.Duplicate) {
		t.Fatalf("unexpected reason for a known visitor in a later batch; got %v; want duplicates", out[0])
	}
	// The same key in another campaign is another visitor.
	if out := commit(t, s, visit("c2", "alice", 1, now)); !decided(out[0], counter.Qualified) {
		t.Fatalf("unexpected reason in another campaign; got %v; want qualified", out[0])
	}
	got := total(t, s, "c1", "alice")
	if got[counter.Qualified] != 2 || got[counter.Duplicate] != 2 || got.Clicks() != 4 {
		t.Fatalf("unexpected counts; got %+v; want qualified=2 duplicates=2 clicks=4", got)
	}
	if got := total(t, s, "c1", "bob"); got.Clicks() != 0 {
		t.Fatalf("unexpected counts for a creator without clicks; got %+v; want zero", got)
	}
}

func testCommitWindows(t *testing.T, open Opener) {
	s := mustOpen(t, open, Params(t))
	day := time.Now().UTC().Truncate(24 * time.Hour)
	a := visit("c1", "alice", 7, day.Add(time.Hour))
	b := visit("c1", "alice", 7, day.Add(25*time.Hour)) // next window, next day
	out := commit(t, s, a, b)
	if !decided(out[0], counter.Qualified) || !decided(out[1], counter.Qualified) {
		t.Fatalf("unexpected reasons for one visitor in two windows; got %v; want qualified twice", out)
	}
	days, err := s.Stats(context.Background(), "c1", "alice")
	if err != nil {
		t.Fatalf("cannot read stats: %s", err)
	}
	if len(days) != 2 || days[0].Day != a.Day || days[1].Day != b.Day ||
		days[0].Counts[counter.Qualified] != 1 || days[1].Counts[counter.Qualified] != 1 {
		t.Fatalf("unexpected per-day stats; got %+v; want one qualified on %v and on %v", days, a.Day, b.Day)
	}
}

func testAddCountsAndStats(t *testing.T, open Opener) {
	ctx := context.Background()
	s := mustOpen(t, open, Params(t))
	d := counter.DayOf(time.Now())
	err := s.AddCounts(ctx, []counter.Count{
		{Campaign: "c1", Creator: "alice", Day: d, Reason: counter.Duplicate, N: 5},
		{Campaign: "c1", Creator: "alice", Day: d - 1, Reason: counter.Uncounted, N: 2},
		{Campaign: "c1", Creator: "alice", Day: d, Reason: counter.Duplicate, N: 1},
		{Campaign: "c1", Creator: "bob", Day: d, Reason: counter.Uncounted, N: 3},
	})
	if err != nil {
		t.Fatalf("cannot add counts: %s", err)
	}
	days, err := s.Stats(ctx, "c1", "alice")
	if err != nil {
		t.Fatalf("cannot read stats: %s", err)
	}
	if len(days) != 2 || days[0].Day != d-1 || days[0].Counts[counter.Uncounted] != 2 ||
		days[1].Day != d || days[1].Counts[counter.Duplicate] != 6 {
		t.Fatalf("unexpected stats; got %+v", days)
	}
	if got := total(t, s, "c1", "bob"); got[counter.Uncounted] != 3 || got.Clicks() != 3 {
		t.Fatalf("unexpected counts for bob; got %+v; want uncounted=3", got)
	}
}

func testPersistence(t *testing.T, open Opener) {
	ctx := context.Background()
	p := Params(t)
	s, err := open(p)
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	now := time.Now()
	if err := s.PutCampaign(ctx, counter.Campaign{ID: "c1", Name: "one"}); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	commit(t, s, visit("c1", "alice", 1, now), visit("c1", "alice", 2, now))
	if err := s.Close(); err != nil {
		t.Fatalf("cannot close store: %s", err)
	}

	s = mustOpen(t, open, p)
	if c, err := s.Campaign(ctx, "c1"); err != nil || c.Name != "one" {
		t.Fatalf("unexpected campaign after reopen; got %+v, %v", c, err)
	}
	out := commit(t, s, visit("c1", "alice", 1, now), visit("c1", "alice", 3, now))
	if !decided(out[0], counter.Duplicate) || !decided(out[1], counter.Qualified) {
		t.Fatalf("unexpected reasons after reopen; got %v; want [duplicates qualified]", out)
	}
	if got := total(t, s, "c1", "alice"); got[counter.Qualified] != 3 || got[counter.Duplicate] != 1 {
		t.Fatalf("unexpected counts after reopen; got %+v; want qualified=3 duplicates=1", got)
	}
}

func testParamsMismatch(t *testing.T, open Opener) {
	p := Params(t)
	s, err := open(p)
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	s.Close()
	other, _ := counter.NewDedupeParams(5_000_000, 0.001)
	if s, err := open(other); !errors.Is(err, counter.ErrParamsMismatch) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("unexpected error opening with other params; got %v; want ErrParamsMismatch", err)
	}
	// The original parameters still open it.
	mustOpen(t, open, p)
}

func testConcurrentCommits(t *testing.T, open Opener) {
	s := mustOpen(t, open, Params(t))
	const workers, batches, batch, distinct = 8, 20, 25, 1000
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				vs := make([]counter.Visit, batch)
				for i := range vs {
					// Overlapping keys across workers and batches.
					vs[i] = visit("c1", "alice", (w*7+b*batch+i)%distinct, now)
				}
				out := make([]counter.Reason, batch)
				if err := s.Commit(context.Background(), vs, out); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("cannot commit: %s", err)
	}
	got := total(t, s, "c1", "alice")
	seen := map[int]bool{}
	for w := range workers {
		for b := range batches {
			for i := range batch {
				seen[(w*7+b*batch+i)%distinct] = true
			}
		}
	}
	if got[counter.Qualified] != int64(len(seen)) || got.Clicks() != workers*batches*batch {
		t.Fatalf("unexpected counts; got qualified=%d clicks=%d; want qualified=%d clicks=%d",
			got[counter.Qualified], got.Clicks(), len(seen), workers*batches*batch)
	}
}

func testMarkOnly(t *testing.T, open Opener) {
	s := mustOpen(t, open, Params(t))
	now := time.Now()
	mark := func(key int) counter.Visit {
		v := visit("c1", "alice", key, now)
		v.MarkOnly = true
		return v
	}
	out := commit(t, s, visit("c1", "alice", 1, now), mark(2))
	if !decided(out[0], counter.Qualified) || !decided(out[1], counter.Qualified) {
		t.Fatalf("unexpected reasons for a visit and a new marked key; got %v; want [qualified qualified]", out)
	}
	// The marked key is known: a visit keyed by it is a duplicate.
	if out := commit(t, s, visit("c1", "alice", 2, now)); !decided(out[0], counter.Duplicate) {
		t.Fatalf("unexpected reason for a marked key; got %v; want duplicates", out[0])
	}
	if out := commit(t, s, mark(1)); !decided(out[0], counter.Duplicate) {
		t.Fatalf("unexpected reason for marking a known key; got %v; want duplicates", out[0])
	}
	// Marks count nothing.
	if got := total(t, s, "c1", "alice"); got[counter.Qualified] != 1 || got[counter.Duplicate] != 1 || got.Clicks() != 2 {
		t.Fatalf("unexpected counts; got %+v; want qualified=1 duplicates=1 clicks=2", got)
	}
}

// testAlso: a visit's second key (HasAlso) is marked with it: a later
// visit keyed by it is a duplicate, and it counts nothing of its own.
func testAlso(t *testing.T, open Opener) {
	s := mustOpen(t, open, Params(t))
	now := time.Now()
	v := visit("c1", "alice", 1, now)
	v.Also, v.HasAlso = Key(2), true
	if out := commit(t, s, v); !decided(out[0], counter.Qualified) {
		t.Fatalf("unexpected reason for a new visitor with a second key; got %v; want qualified", out[0])
	}
	if out := commit(t, s, visit("c1", "alice", 2, now)); !decided(out[0], counter.Duplicate) {
		t.Fatalf("unexpected reason for a visit keyed by a second key; got %v; want duplicates", out[0])
	}
	if got := total(t, s, "c1", "alice"); got[counter.Qualified] != 1 || got[counter.Duplicate] != 1 || got.Clicks() != 2 {
		t.Fatalf("unexpected counts; got %+v; want qualified=1 duplicates=1 clicks=2", got)
	}
}

func testClaim(t *testing.T, open Opener) {
	ctx := context.Background()
	p := Params(t)
	s, err := open(p)
	if err != nil {
		t.Fatal(err)
	}
	f := func(s counter.Store, value, want string) {
		t.Helper()
		got, err := s.Claim(ctx, "flusher", value)
		if err != nil || got != want {
			t.Fatalf("unexpected claim by %q; got %q, %v; want %q", value, got, err, want)
		}
	}
	f(s, "ledger-a", "ledger-a")
	f(s, "ledger-a", "ledger-a") // repeated
	f(s, "ledger-b", "ledger-a") // refused: the first claim stands
	s.Close()
	s = mustOpen(t, open, p)
	f(s, "ledger-b", "ledger-a") // and survives a restart

	re := func(old, value, want string) {
		t.Helper()
		got, err := s.Reclaim(ctx, "flusher", old, value)
		if err != nil || got != want {
			t.Fatalf("unexpected reclaim of %q by %q; got %q, %v; want %q", old, value, got, err, want)
		}
	}
	re("ledger-x", "ledger-b", "ledger-a") // not the recorded value: refused
	re("ledger-a", "ledger-b", "ledger-b")
	re("ledger-a", "ledger-b", "ledger-b") // repeated
	re("ledger-a", "ledger-c", "ledger-b") // a second reclaim of the same value loses
	f(s, "ledger-c", "ledger-b")
	if got, err := s.Reclaim(ctx, "new", "ledger-a", "ledger-d"); err != nil || got != "ledger-d" {
		t.Fatalf("unexpected reclaim of an unclaimed name; got %q, %v; want %q", got, err, "ledger-d")
	}
}

package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		dir := t.TempDir()
		return func(p counter.DedupeParams) (counter.Store, error) {
			s, err := Open(dir, p)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	})
}

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, storetest.Params(t))
	if err != nil {
		t.Fatalf("cannot open store in %q: %s", dir, err)
	}
	return s
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("cannot close store: %s", err)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "clickgate")
	s := mustOpen(t, dir)
	defer mustClose(t, s)
	f := func(path string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("cannot stat %q: %s", path, err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Fatalf("unexpected mode for %q; got %v; want %v", path, got, want)
		}
	}
	f(dir, 0o700)
	f(filepath.Join(dir, FileName), 0o600)
}

func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	start := time.Now()
	s2, err := Open(dir, storetest.Params(t))
	if err == nil {
		s2.Close()
		t.Fatalf("second open of %q succeeded while the first is open", dir)
	}
	if want := `data directory "` + dir + `" is in use by another process`; err.Error() != want {
		t.Fatalf("unexpected error for a directory in use; got %q; want %q", err, want)
	}
	if d := time.Since(start); d > 10*lockTimeout {
		t.Fatalf("second open took %s; want about %s", d, lockTimeout)
	}
	mustClose(t, s)
	mustClose(t, mustOpen(t, dir))
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpen(t, dir)
	l := counter.Link{Code: "AB3KX9QZ", Campaign: "spring", Creator: "alice",
		Destinations: counter.Destinations{Default: "https://app.example.com/join"},
		CreatedAt:    time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatalf("cannot create link: %s", err)
	}
	v1, err := s.Version(ctx)
	if err != nil {
		t.Fatalf("cannot read version: %s", err)
	}
	// A taken code changes nothing, the version included.
	if err := s.CreateLink(ctx, l); !errors.Is(err, counter.ErrExists) {
		t.Fatalf("unexpected error for a taken code; got %v; want ErrExists", err)
	}
	if v, _ := s.Version(ctx); v != v1 {
		t.Fatalf("unexpected version after a failed CreateLink; got %d; want %d", v, v1)
	}
	d := counter.Day(20600)
	if err := s.AddCounts(ctx, []counter.Count{{Campaign: "spring", Creator: "alice", Day: d, Reason: counter.Uncounted, N: 4}}); err != nil {
		t.Fatalf("cannot add counts: %s", err)
	}
	mustClose(t, s)

	s = mustOpen(t, dir)
	defer mustClose(t, s)
	got, err := s.Link(ctx, l.Code)
	if err != nil || got.Creator != l.Creator || got.Destinations != l.Destinations || !got.CreatedAt.Equal(l.CreatedAt) {
		t.Fatalf("unexpected link after reopen; got %+v, %v; want %+v", got, err, l)
	}
	if v, _ := s.Version(ctx); v != v1 {
		t.Fatalf("unexpected version after reopen; got %d; want %d", v, v1)
	}
	days, err := s.Stats(ctx, "spring", "alice")
	if err != nil || len(days) != 1 || days[0].Day != d || days[0].Counts[counter.Uncounted] != 4 {
		t.Fatalf("unexpected stats after reopen; got %+v, %v; want uncounted=4 on %v", days, err, d)
	}
}

func TestCommitFailure(t *testing.T) {
	now := time.Now()
	v := counter.Visit{Campaign: "spring", Creator: "alice", Key: storetest.Key(1)}
	v.SetWindow(now, 24*time.Hour)
	bad := v
	bad.Creator = "al\x00ice"

	f := func(name string, ctx context.Context, s *Store, visits []counter.Visit) {
		t.Helper()
		out := make([]counter.Reason, len(visits))
		for i := range out {
			out[i] = counter.Qualified
		}
		if err := s.Commit(ctx, visits, out); err == nil {
			t.Fatalf("unexpected success of Commit %s", name)
		}
		for i, r := range out {
			if r != counter.Uncounted {
				t.Fatalf("unexpected reason for visit %d of Commit %s; got %v; want uncounted", i, name, r)
			}
		}
	}

	s := mustOpen(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f("with a done context", ctx, s, []counter.Visit{v, v})
	f("with an id holding NUL", context.Background(), s, []counter.Visit{v, bad})
	if days, err := s.Stats(context.Background(), "spring", "alice"); err != nil || len(days) != 0 {
		t.Fatalf("unexpected stats after failed commits; got %+v, %v; want none", days, err)
	}
	mustClose(t, s)
	f("on a closed store", context.Background(), s, []counter.Visit{v})
}

func TestInvalidIDs(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	defer mustClose(t, s)
	f := func(name string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("unexpected success of %s", name)
		}
	}
	f("PutCampaign with an empty id", s.PutCampaign(ctx, counter.Campaign{}))
	f("PutCampaign with NUL", s.PutCampaign(ctx, counter.Campaign{ID: "a\x00b"}))
	f("PutCreator with NUL in the campaign", s.PutCreator(ctx, counter.Creator{ID: "b", Campaign: "a\x00"}))
	f("PutCreator with NUL in the id", s.PutCreator(ctx, counter.Creator{ID: "\x00b", Campaign: "a"}))
	f("CreateLink with an empty code", s.CreateLink(ctx, counter.Link{}))
	f("AddCounts with NUL", s.AddCounts(ctx, []counter.Count{{Campaign: "a", Creator: "b\x00", N: 1}}))
	f("AddCounts with NUL in the link", s.AddCounts(ctx, []counter.Count{{Campaign: "a", Creator: "b", Link: "c\x00", N: 1}}))
	f("AddCounts of an unknown reason", s.AddCounts(ctx, []counter.Count{{Campaign: "a", Creator: "b", Reason: counter.NumReasons, N: 1}}))
	_, err := s.Stats(ctx, "a", "b\x00")
	f("Stats with NUL", err)
	if v, err := s.Version(ctx); err != nil || v != 0 {
		t.Fatalf("unexpected version after rejected changes; got %d, %v; want 0", v, err)
	}
}

func TestStatsDays(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	defer mustClose(t, s)
	// Days before the epoch sort before it.
	days := []counter.Day{300, -1, 0, -400, 1}
	var counts []counter.Count
	for i, d := range days {
		counts = append(counts, counter.Count{Campaign: "c1", Creator: "alice", Day: d, Reason: counter.Duplicate, N: int64(i + 1)})
	}
	counts = append(counts, counter.Count{Campaign: "c1", Creator: "alice", Day: 7, Reason: counter.Qualified})
	if err := s.AddCounts(ctx, counts); err != nil {
		t.Fatalf("cannot add counts: %s", err)
	}
	// A reason written by a later build is ignored, and so is a day with
	// nothing else.
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		if err := putUint64(b, appendCounterKey(nil, "c1", "alice", 0, "refunded"), 9); err != nil {
			return err
		}
		return putUint64(b, appendCounterKey(nil, "c1", "alice", 5, "refunded"), 9)
	})
	if err != nil {
		t.Fatalf("cannot write a counter of an unknown reason: %s", err)
	}
	got, err := s.Stats(ctx, "c1", "alice")
	if err != nil {
		t.Fatalf("cannot read stats: %s", err)
	}
	want := []counter.DayCounts{
		{Day: -400, Counts: counter.Counts{counter.Duplicate: 4}},
		{Day: -1, Counts: counter.Counts{counter.Duplicate: 2}},
		{Day: 0, Counts: counter.Counts{counter.Duplicate: 3}},
		{Day: 1, Counts: counter.Counts{counter.Duplicate: 5}},
		{Day: 300, Counts: counter.Counts{counter.Duplicate: 1}},
	}
	if len(got) != len(want) {
		t.Fatalf("unexpected stats; got %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("unexpected stats for day %d; got %+v; want %+v", i, got[i], want[i])
		}
	}
	// A creator whose id is a prefix of alice's shares none of her counters.
	if got, err := s.Stats(ctx, "c1", "alic"); err != nil || len(got) != 0 {
		t.Fatalf("unexpected stats of an unknown creator; got %+v, %v; want none", got, err)
	}
}

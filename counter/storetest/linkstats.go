package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

func onLink(v counter.Visit, code string) counter.Visit {
	v.Link = code
	return v
}

func linkTotal(t *testing.T, s counter.Store, campaign, creator, code string, day counter.Day) counter.Counts {
	t.Helper()
	days, err := s.LinkStats(context.Background(), campaign, creator, code)
	if err != nil {
		t.Fatalf("cannot read stats of link %q: %s", code, err)
	}
	for _, d := range days {
		if d.Day != day {
			t.Fatalf("unexpected day of link %q; got %s; want %s", code, d.Day, day)
		}
	}
	return counter.Total(days)
}

// testLinkStats: two links of one creator are counted apart, a visitor of
// one who comes through the other is a duplicate on the other, and the
// links sum to the creator's counts but for the visits without a link and
// the counts added without one; they survive a reopen.
func testLinkStats(t *testing.T, open Opener) {
	ctx := context.Background()
	p := Params(t)
	s, err := open(p)
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	now := time.Now()
	day := counter.DayOf(now)
	if err := s.PutCampaign(ctx, counter.Campaign{ID: "c1", Name: "one"}); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	commit(t, s,
		onLink(visit("c1", "alice", 1, now), "TIKTOK01"), onLink(visit("c1", "alice", 2, now), "TIKTOK01"),
		onLink(visit("c1", "alice", 1, now), "TIKTOK01"), onLink(visit("c1", "alice", 3, now), "YOUTUBE1"),
		onLink(visit("c1", "alice", 1, now), "YOUTUBE1"), visit("c1", "alice", 4, now),
		onLink(visit("c1", "bob", 10, now), "BOBLINK1"))
	if err := s.AddCounts(ctx, []counter.Count{{Campaign: "c1", Creator: "alice", Day: day, Reason: counter.Bot, N: 5}}); err != nil {
		t.Fatalf("cannot add counts: %s", err)
	}
	f := func(creator, code string, want counter.Counts) {
		t.Helper()
		if got := linkTotal(t, s, "c1", creator, code, day); got != want {
			t.Fatalf("unexpected counts of link %q of %q; got %v; want %v", code, creator, got, want)
		}
	}
	check := func() {
		t.Helper()
		f("alice", "TIKTOK01", counter.Counts{counter.Qualified: 2, counter.Duplicate: 1})
		f("alice", "YOUTUBE1", counter.Counts{counter.Qualified: 1, counter.Duplicate: 1})
		f("alice", "BOBLINK1", counter.Counts{}) // bob's link
		f("alice", "UNKNOWN1", counter.Counts{})
		f("bob", "BOBLINK1", counter.Counts{counter.Qualified: 1})
		links := linkTotal(t, s, "c1", "alice", "TIKTOK01", day)
		yt := linkTotal(t, s, "c1", "alice", "YOUTUBE1", day)
		links.Add(&yt)
		// The visit without a link and the bots are alice's alone.
		links.Add(&counter.Counts{counter.Qualified: 1, counter.Bot: 5})
		if got := total(t, s, "c1", "alice"); got != links {
			t.Fatalf("unexpected counts of alice; got %v; want %v, the sum of her links, the visit without one and the bots", got, links)
		}
	}
	check()
	if _, err := s.LinkStats(ctx, "c1", "alice", ""); err == nil {
		t.Fatalf("unexpected success reading the stats of an empty link code")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("cannot close store: %s", err)
	}

	s = mustOpen(t, open, p)
	check()
	commit(t, s, onLink(visit("c1", "alice", 5, now), "YOUTUBE1"))
	f("alice", "YOUTUBE1", counter.Counts{counter.Qualified: 2, counter.Duplicate: 1})
}

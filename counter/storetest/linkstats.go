package storetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

func onLink(v counter.Visit, code string) counter.Visit {
	v.Link = code
	return v
}

func linkTotal(t *testing.T, s counter.Store, campaign, creator, code string) counter.Counts {
	t.Helper()
	days, err := s.LinkStats(context.Background(), campaign, creator, code)
	if err != nil {
		t.Fatalf("cannot read stats of link %q: %s", code, err)
	}
	for i := 1; i < len(days); i++ {
		if days[i-1].Day >= days[i].Day {
			t.Fatalf("stats days of link %q out of order: %v then %v", code, days[i-1].Day, days[i].Day)
		}
	}
	return counter.Total(days)
}

// testLinkStats: two links of one creator are counted apart, a visitor of
// one who comes through the other is a duplicate on the other, the counts
// added with a link (the edge's bots, previews, local duplicates, ...) and
// the signups of a link's clicks count for the link as well as for the
// creator, and the links sum to the creator's counts but for the visits,
// counts and signups without a link; they survive a reopen.
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
	err = s.AddCounts(ctx, []counter.Count{
		{Campaign: "c1", Creator: "alice", Day: day, Reason: counter.Bot, N: 5},
		{Campaign: "c1", Creator: "alice", Link: "TIKTOK01", Day: day, Reason: counter.Bot, N: 3},
		{Campaign: "c1", Creator: "alice", Link: "TIKTOK01", Day: day - 1, Reason: counter.Prefetch, N: 2},
		{Campaign: "c1", Creator: "alice", Link: "TIKTOK01", Day: day, Reason: counter.Duplicate, N: 4},
		{Campaign: "c1", Creator: "alice", Link: "YOUTUBE1", Day: day, Reason: counter.Preview, N: 2},
		{Campaign: "c1", Creator: "alice", Link: "YOUTUBE1", Day: day, Reason: counter.Uncounted, N: 1},
		{Campaign: "c1", Creator: "alice", Link: "YOUTUBE1", Day: day, Reason: counter.Inactive, N: 0},
		{Campaign: "c1", Creator: "bob", Link: "BOBLINK1", Day: day, Reason: counter.Inactive, N: 6},
	})
	if err != nil {
		t.Fatalf("cannot add counts: %s", err)
	}
	for i, code := range []string{"TIKTOK01", "", "YOUTUBE1"} {
		su := counter.Conversion{Campaign: "c1", Creator: "alice", UserID: "u" + strconv.Itoa(i), Click: "k" + strconv.Itoa(i), Link: code, Day: day}
		if created, _, err := s.AttributeSignup(ctx, su); err != nil || !created {
			t.Fatalf("unexpected signup on link %q; got %v, %v; want a new one", code, created, err)
		}
	}
	// Again: the same user counts once, for neither link.
	if created, _, err := s.AttributeSignup(ctx, counter.Conversion{Campaign: "c1", Creator: "alice", UserID: "u0", Click: "k9", Link: "YOUTUBE1", Day: day}); err != nil || created {
		t.Fatalf("unexpected signup of a known user; got %v, %v; want none", created, err)
	}
	f := func(creator, code string, want counter.Counts) {
		t.Helper()
		if got := linkTotal(t, s, "c1", creator, code); got != want {
			t.Fatalf("unexpected counts of link %q of %q; got %v; want %v", code, creator, got, want)
		}
	}
	check := func() {
		t.Helper()
		f("alice", "TIKTOK01", counter.Counts{counter.Qualified: 2, counter.Duplicate: 5, counter.Bot: 3, counter.Prefetch: 2, counter.Signup: 1})
		f("alice", "YOUTUBE1", counter.Counts{counter.Qualified: 1, counter.Duplicate: 1, counter.Preview: 2, counter.Uncounted: 1, counter.Signup: 1})
		f("alice", "BOBLINK1", counter.Counts{}) // bob's link
		f("alice", "UNKNOWN1", counter.Counts{})
		f("bob", "BOBLINK1", counter.Counts{counter.Qualified: 1, counter.Inactive: 6})
		days, err := s.LinkStats(ctx, "c1", "alice", "TIKTOK01")
		if err != nil || len(days) != 2 || days[0].Day != day-1 || days[0].Counts != (counter.Counts{counter.Prefetch: 2}) {
			t.Fatalf("unexpected days of link TIKTOK01; got %v, %v; want the prefetches the day before, then today", days, err)
		}
		links := linkTotal(t, s, "c1", "alice", "TIKTOK01")
		yt := linkTotal(t, s, "c1", "alice", "YOUTUBE1")
		links.Add(&yt)
		// The visit without a link, the bots added without one and the
		// signup without one are alice's alone.
		links.Add(&counter.Counts{counter.Qualified: 1, counter.Bot: 5, counter.Signup: 1})
		if got := total(t, s, "c1", "alice"); got != links {
			t.Fatalf("unexpected counts of alice; got %v; want %v, the sum of her links, the visit, bots and signup without one", got, links)
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
	if err := s.AddCounts(ctx, []counter.Count{{Campaign: "c1", Creator: "alice", Link: "YOUTUBE1", Day: day, Reason: counter.Preview, N: 1}}); err != nil {
		t.Fatalf("cannot add counts: %s", err)
	}
	f("alice", "YOUTUBE1", counter.Counts{counter.Qualified: 2, counter.Duplicate: 1, counter.Preview: 3, counter.Uncounted: 1, counter.Signup: 1})
}

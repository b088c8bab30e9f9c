package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// LinkUpdater is a store that changes links (both stores are).
type LinkUpdater interface {
	UpdateLink(ctx context.Context, code string, update func(*counter.Link) error) (counter.Link, error)
}

// changeFeed is a store with a catalog change feed (both stores are).
type changeFeed interface {
	CatalogChanges(ctx context.Context, since uint64, limit int) (*counter.CatalogChanges, error)
}

func testUpdateLink(t *testing.T, open Opener) {
	ctx := context.Background()
	s := mustOpen(t, open, Params(t))
	u, ok := s.(LinkUpdater)
	if !ok {
		t.Skip("the store does not update links")
	}
	if _, err := u.UpdateLink(ctx, "NOSUCHCODE", func(*counter.Link) error { return nil }); !errors.Is(err, counter.ErrNotFound) {
		t.Fatalf("unexpected error for an unknown code; got %v; want ErrNotFound", err)
	}
	c := counter.Campaign{ID: "spring", Name: "Spring", StartsAt: time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC),
		EndsAt: time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC), VisitBlockSize: 1000,
		DedupeWindow: counter.Duration(24 * time.Hour), QueryPassthrough: false}
	if err := s.PutCampaign(ctx, c); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	if got, err := s.Campaign(ctx, "spring"); err != nil || got.QueryPassthrough {
		t.Fatalf("unexpected campaign; got %+v, %v; want query_passthrough false kept", got, err)
	}
	l := counter.Link{Code: "UPD8CODE", Campaign: "spring", Creator: "alice",
		Destinations: counter.Destinations{Default: "https://app.example.com/a"}, CreatedAt: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatalf("cannot create link: %s", err)
	}
	v0, _ := s.Version(ctx)

	// A failing update changes nothing, not even the version.
	boom := errors.New("refused")
	if _, err := u.UpdateLink(ctx, l.Code, func(l *counter.Link) error { l.Disabled = true; return boom }); !errors.Is(err, boom) {
		t.Fatalf("unexpected error of a refused update; got %v; want %v", err, boom)
	}
	if _, err := u.UpdateLink(ctx, l.Code, func(l *counter.Link) error { l.Creator = "mallory"; return nil }); err == nil {
		t.Fatalf("an update that changes the creator was taken")
	}
	if got, _ := s.Link(ctx, l.Code); got.Disabled || got.Creator != "alice" {
		t.Fatalf("a refused update changed the link: %+v", got)
	}
	if v, _ := s.Version(ctx); v != v0 {
		t.Fatalf("a refused update changed the version; got %d; want %d", v, v0)
	}

	got, err := u.UpdateLink(ctx, l.Code, func(l *counter.Link) error {
		l.Disabled = true
		l.Destinations.IOS = "https://apps.apple.com/app/id1"
		return nil
	})
	if err != nil || !got.Disabled || got.Destinations.IOS == "" || got.Destinations.Default != l.Destinations.Default {
		t.Fatalf("unexpected updated link; got %+v, %v", got, err)
	}
	stored, err := s.Link(ctx, l.Code)
	if err != nil || stored != got {
		t.Fatalf("unexpected stored link; got %+v, %v; want %+v", stored, err, got)
	}
	v1, _ := s.Version(ctx)
	if v1 != v0+1 {
		t.Fatalf("unexpected version after an update; got %d; want %d", v1, v0+1)
	}
	if f, ok := s.(changeFeed); ok {
		ch, err := f.CatalogChanges(ctx, v0, 0)
		if err != nil || ch.Version != v1 || len(ch.Links) != 1 || ch.Links[0] != got {
			t.Fatalf("unexpected changes after an update; got %+v, %v; want the link as updated at version %d", ch, err, v1)
		}
	}
}

// testChangeFeedPositions reads the change feed after a bulk creation of
// more links than one write of the Redis store's feed holds, from every
// kind of position (at and inside a write's changes, at its ends) and in
// steps of every kind of size: each read gives exactly the changes of the
// versions after since, in order, and names the change at since and the
// last one read.
func testChangeFeedPositions(t *testing.T, open Opener) {
	ctx := context.Background()
	s, c := openBulk(t, open, "feed")
	bulk, feed := s.(bulkLinker), s.(changeFeed)
	v0, _ := s.Version(ctx)
	// Versions v0+1 to v0+n: codes[1] to codes[n], the last one alone.
	const n = 2502
	codes := make([]string, n+1)
	var links []counter.Link
	for i := 1; i <= n; i++ {
		codes[i] = fmt.Sprintf("FEED%05d", i)
		links = append(links, counter.Link{Code: codes[i], Campaign: "feed", Creator: "alice",
			Destinations: counter.Destinations{Default: "https://app.example.com/a"}, CreatedAt: c.StartsAt})
	}
	if err := bulk.CreateLinks(ctx, links[:n-1]); err != nil {
		t.Fatalf("cannot create links: %s", err)
	}
	if err := s.CreateLink(ctx, links[n-1]); err != nil {
		t.Fatalf("cannot create link: %s", err)
	}
	if v, _ := s.Version(ctx); v != v0+n {
		t.Fatalf("unexpected version after %d links; got %d; want %d", n, v, v0+n)
	}
	for _, at := range []int{0, 1, 2, 999, 1000, 1001, 1999, 2000, 2001, n - 2, n - 1} {
		for _, limit := range []int{0, 1, 7, 1000} {
			ch, err := feed.CatalogChanges(ctx, v0+uint64(at), limit)
			if err != nil {
				t.Fatalf("cannot read changes after %d: %s", at, err)
			}
			to := n
			if limit > 0 && at+limit < n {
				to = at + limit
			}
			var got []string
			for _, l := range ch.Links {
				got = append(got, l.Code)
			}
			want := codes[at+1 : to+1]
			if ch.Trimmed || ch.Version != v0+uint64(to) || ch.More != (to < n) || !slices.Equal(got, want) {
				t.Fatalf("unexpected changes after %d, limit %d; got version %d (more %v, trimmed %v), %d links from %v; want version %d, %d links from %s",
					at, limit, ch.Version-v0, ch.More, ch.Trimmed, len(got), got[:min(1, len(got))], to, len(want), want[0])
			}
			if ch.Last != "l"+codes[to] || (at > 0 && ch.At != "l"+codes[at]) {
				t.Fatalf("unexpected changes named after %d, limit %d; got at %q, last %q; want at %q, last %q", at, limit, ch.At, ch.Last, "l"+codes[at], "l"+codes[to])
			}
		}
	}
}

// testTakenCodes: TakenCodes names exactly the codes of the links
// created, disabled ones included, in the order asked, over more codes
// than one round trip of the Redis store checks.
func testTakenCodes(t *testing.T, open Opener) {
	ctx := context.Background()
	s, c := openBulk(t, open, "taken")
	bulk := s.(bulkLinker)
	link := func(code string) counter.Link {
		return counter.Link{Code: code, Campaign: "taken", Creator: "alice",
			Destinations: counter.Destinations{Default: "https://app.example.com/a"}, CreatedAt: c.StartsAt}
	}
	code := func(i int) string { return fmt.Sprintf("TAKEN%04d", i) }
	const n = 2500
	var links []counter.Link
	for i := range n {
		if i%3 == 0 {
			links = append(links, link(code(i)))
		}
	}
	if err := bulk.CreateLinks(ctx, links); err != nil {
		t.Fatalf("cannot create links: %s", err)
	}
	if err := s.CreateLink(ctx, link("TAKENONE")); err != nil {
		t.Fatalf("cannot create link: %s", err)
	}
	if u, ok := s.(LinkUpdater); ok {
		if _, err := u.UpdateLink(ctx, code(3), func(l *counter.Link) error { l.Disabled = true; return nil }); err != nil {
			t.Fatalf("cannot disable link: %s", err)
		}
	}
	ask := []string{"NOSUCHCODE", "TAKENONE"}
	want := []string{"TAKENONE"}
	for i := n - 1; i >= 0; i-- {
		ask = append(ask, code(i))
		if i%3 == 0 {
			want = append(want, code(i))
		}
	}
	if got, err := bulk.TakenCodes(ctx, ask); err != nil || !slices.Equal(got, want) {
		t.Fatalf("unexpected taken codes; got %d (%v), err %v; want %d, from %v", len(got), got[:min(3, len(got))], err, len(want), want[:3])
	}
	if got, err := bulk.TakenCodes(ctx, []string{"NOSUCHCODE"}); err != nil || len(got) != 0 {
		t.Fatalf("unexpected taken codes of a code never created; got %v, %v", got, err)
	}
	if got, err := bulk.TakenCodes(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("unexpected taken codes of none; got %v, %v", got, err)
	}
}

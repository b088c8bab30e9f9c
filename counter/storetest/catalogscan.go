package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// bulkLinker is a store that creates links in bulk (both stores are).
type bulkLinker interface {
	CreateLinks(ctx context.Context, links []counter.Link) error
	// TakenCodes returns those of codes that name a link, in their order.
	TakenCodes(ctx context.Context, codes []string) ([]string, error)
}

// openBulk opens a store that creates links in bulk and has a change
// feed, or skips the test, and puts campaign id in it.
func openBulk(t *testing.T, open Opener, id string) (counter.Store, counter.Campaign) {
	t.Helper()
	s := mustOpen(t, open, Params(t))
	_, ok := s.(bulkLinker)
	_, ok2 := s.(changeFeed)
	if !ok || !ok2 {
		t.Skip("the store does not create links in bulk or has no change feed")
	}
	c := counter.Campaign{ID: id, Name: id, StartsAt: time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC),
		EndsAt: time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC), VisitBlockSize: 1000, DedupeWindow: counter.Duration(24 * time.Hour)}
	if err := s.PutCampaign(context.Background(), c); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	return s, c
}

// testCatalogUnderWrites reads a catalog of more links than one read of
// the Redis store's takes, while links are created: each catalog is the
// one at its version, as the change feed tells it (the catalog at the
// first version, with the changes after it applied, is the catalog at the
// last), and holds every link created before the read began.
func testCatalogUnderWrites(t *testing.T, open Opener) {
	ctx := context.Background()
	s, c := openBulk(t, open, "big")
	bulk, feed := s.(bulkLinker), s.(changeFeed)
	link := func(i int) counter.Link {
		return counter.Link{Code: fmt.Sprintf("BIG%07d", i), Campaign: "big", Creator: "alice",
			Destinations: counter.Destinations{Default: "https://app.example.com/a"}, CreatedAt: c.StartsAt}
	}
	const first = 25_000
	var links []counter.Link
	for i := range first {
		links = append(links, link(i))
	}
	if err := bulk.CreateLinks(ctx, links); err != nil {
		t.Fatalf("cannot create links: %s", err)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := first; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.CreateLink(ctx, link(i)); err != nil {
				t.Errorf("cannot create link %d: %s", i, err)
				return
			}
		}
	})
	var reads []*counter.Catalog
	for range 3 {
		cat, err := s.Catalog(ctx)
		if err != nil {
			t.Fatalf("cannot read the catalog while links are created: %s", err)
		}
		reads = append(reads, cat)
	}
	close(stop)
	wg.Wait()
	last, err := s.Catalog(ctx)
	if err != nil {
		t.Fatalf("cannot read the catalog: %s", err)
	}
	if len(last.Links) <= first {
		t.Fatalf("no link was created during the reads (%d links); the test checks nothing", len(last.Links))
	}
	for i, cat := range reads {
		codes := make(map[string]counter.Link, len(cat.Links))
		for _, l := range cat.Links {
			codes[l.Code] = l
		}
		if len(codes) != len(cat.Links) || !slices.IsSortedFunc(cat.Links, func(a, b counter.Link) int { return strings.Compare(a.Code, b.Code) }) {
			t.Fatalf("read %d: links repeated or not sorted by code", i)
		}
		for j := range first {
			if _, ok := codes[link(j).Code]; !ok {
				t.Fatalf("read %d: link %d, created before the read, is missing", i, j)
			}
		}
		ch, err := feed.CatalogChanges(ctx, cat.Version, 0)
		if err != nil || ch.Trimmed {
			t.Fatalf("cannot read the changes after version %d: %v (trimmed %v)", cat.Version, err, ch != nil && ch.Trimmed)
		}
		for _, l := range ch.Links {
			codes[l.Code] = l
		}
		want := make(map[string]counter.Link, len(last.Links))
		for _, l := range last.Links {
			want[l.Code] = l
		}
		if ch.Version != last.Version || !maps.EqualFunc(codes, want, func(a, b counter.Link) bool { return a.Code == b.Code && a.Creator == b.Creator }) {
			t.Fatalf("read %d at version %d and its %d changes give %d links at version %d; the catalog has %d at version %d",
				i, cat.Version, len(ch.Links), len(codes), ch.Version, len(want), last.Version)
		}
	}
}

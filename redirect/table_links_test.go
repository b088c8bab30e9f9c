package redirect

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/storetest"
)

// TestTableLinkChanges: a link's new destination is served at the next
// refresh; a disabled link is not served (its code is unknown), without a
// whole-catalog read, and a table loaded afresh while it is disabled is
// not taken for a reset store; enabled again, it is served again.
func TestTableLinkChanges(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			reader, writer := openStores(t, kind, 1000)
			up := writer.(storetest.LinkUpdater)
			now := time.Now().UTC()
			must(t, writer.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour),
				VisitBlockSize: 1000, DedupeWindow: counter.Duration(24 * time.Hour)}))
			must(t, writer.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
			must(t, writer.CreateLink(ctx, counter.Link{Code: "keep0001", Campaign: "spring", Creator: "alice", Destinations: testDest}))
			must(t, writer.CreateLink(ctx, counter.Link{Code: "flip0001", Campaign: "spring", Creator: "alice", Destinations: testDest}))
			fs := &feedStore{Store: reader}
			table := NewTable(TableOptions{Store: fs})
			must(t, table.Refresh(ctx))

			update := func(f func(l *counter.Link)) {
				t.Helper()
				if _, err := up.UpdateLink(ctx, "flip0001", func(l *counter.Link) error { f(l); return nil }); err != nil {
					t.Fatalf("cannot update link: %s", err)
				}
				must(t, table.Refresh(ctx))
			}
			update(func(l *counter.Link) { l.Destinations.Default = "https://app.example.com/new" })
			if e := table.entry("flip0001"); e == nil || e.Link.Destinations.Default != "https://app.example.com/new" {
				t.Fatalf("unexpected entry after a new destination; got %+v", e)
			}
			update(func(l *counter.Link) { l.Disabled = true })
			if e := table.entry("flip0001"); e != nil || table.Len() != 1 || table.entry("keep0001") == nil {
				t.Fatalf("unexpected table after disabling; got entry %+v, %d links", e, table.Len())
			}

			// A node that loads the catalog now, and this one reloading it,
			// take the disabled link for what it is, not a lost one.
			fresh := NewTable(TableOptions{Store: reader})
			must(t, fresh.Refresh(ctx))
			if fresh.entry("flip0001") != nil || fresh.Len() != 1 {
				t.Fatalf("a fresh table serves a disabled link")
			}
			if err := table.reload(ctx); errors.Is(err, ErrCatalogReset) || err != nil {
				t.Fatalf("unexpected error of a reload with a link disabled; got %v; want none", err)
			}

			update(func(l *counter.Link) { l.Disabled = false })
			if e := table.entry("flip0001"); e == nil || e.Link.Destinations.Default != "https://app.example.com/new" || table.Len() != 2 {
				t.Fatalf("unexpected entry after enabling again; got %+v, %d links", e, table.Len())
			}
			if got := fs.catalogs.Load(); got != 2 {
				t.Fatalf("unexpected whole-catalog reads; got %d; want 2 (the first load and the reload)", got)
			}
		})
	}
}

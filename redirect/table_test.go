package redirect

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
)

// TestTableKeepsServingAfterReset: a store that comes back without the
// links the table serves (FLUSHALL, an empty replica) is refused, loudly,
// and the links keep redirecting; once the catalog is restored it is
// taken again, even under a lower version.
func TestTableKeepsServingAfterReset(t *testing.T) {
	e := newEdge(t)
	ctx := context.Background()
	if e.table.Lookup([]byte(testCode)) == nil {
		t.Fatalf("the test link is not served")
	}
	params, _ := counter.NewDedupeParams(10_000, 0.001)
	empty, err := boltstore.Open(t.TempDir(), params)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	e.table.o.Store = empty
	before := catalogResets.Get()
	if err := e.table.Refresh(ctx); !errors.Is(err, ErrCatalogReset) {
		t.Fatalf("unexpected Refresh error from an empty store; got %v; want ErrCatalogReset", err)
	}
	// A reset store that got new changes since: a higher version, still
	// without the served link.
	now := time.Now().UTC()
	for i := range 20 {
		if err := empty.PutCampaign(ctx, counter.Campaign{ID: "fall", StartsAt: now, EndsAt: now.Add(time.Duration(i+1) * time.Hour), VisitBlockSize: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.table.Refresh(ctx); !errors.Is(err, ErrCatalogReset) {
		t.Fatalf("unexpected Refresh error from a reset store with a higher version; got %v; want ErrCatalogReset", err)
	}
	if got := catalogResets.Get() - before; got != 2 {
		t.Fatalf("unexpected clickgate_catalog_resets_total increase; got %d; want 2", got)
	}
	if resp := e.do(t, "127.0.0.1", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n"); resp.StatusCode() != 302 {
		t.Fatalf("unexpected status after the store was reset; got %d; want 302", resp.StatusCode())
	}
	// Restored: the same catalog put back.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(empty.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour),
		DedupeWindow: counter.Duration(24 * time.Hour), VisitBlockSize: 1000}))
	must(empty.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
	must(empty.CreateLink(ctx, counter.Link{Code: testCode, Campaign: "spring", Creator: "alice", Destinations: testDest}))
	must(e.table.Refresh(ctx))
	if e.table.Lookup([]byte(testCode)) == nil {
		t.Fatalf("the restored link is not served")
	}
}

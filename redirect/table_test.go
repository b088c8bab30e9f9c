package redirect

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/redisstore"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

// TestTableKeepsServingAfterReset: a store that comes back without the
// links the table serves (FLUSHALL, an empty replica) is refused, loudly,
// and the links keep redirecting; once the catalog is restored it is
// taken again, even under a lower version.
// lookup returns the entry of code, or nil.
func (s *snapshot) lookup(code string) *Entry {
	r := find(s, code)
	if r == nil {
		return nil
	}
	e := new(Entry)
	s.entry(r, e)
	return e
}

// entry returns the entry of code, or nil.
func (t *Table) entry(code string) *Entry {
	var e Entry
	if t.Lookup([]byte(code), &e) {
		return &e
	}
	return nil
}

func TestTableKeepsServingAfterReset(t *testing.T) {
	e := newEdge(t)
	ctx := context.Background()
	if e.table.entry(testCode) == nil {
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
	if e.table.entry(testCode) == nil {
		t.Fatalf("the restored link is not served")
	}
}

// feedStore is a store with a change feed that counts its whole-catalog
// reads.
type feedStore struct {
	counter.Store
	catalogs atomic.Int64
}

func (s *feedStore) Catalog(ctx context.Context) (*counter.Catalog, error) {
	s.catalogs.Add(1)
	return s.Store.Catalog(ctx)
}

func (s *feedStore) CatalogChanges(ctx context.Context, since uint64, limit int) (*counter.CatalogChanges, error) {
	return s.Store.(ChangeFeed).CatalogChanges(ctx, since, limit)
}

// openStores opens two handles of one new store of kind: two Redis
// clients of one server, or the embedded store twice (it is one process's).
func openStores(t *testing.T, kind string, kept int) (counter.Store, counter.Store) {
	t.Helper()
	params, _ := counter.NewDedupeParams(10_000, 0.001)
	if kind == "embedded" {
		old := boltstore.ChangesKept
		boltstore.ChangesKept = uint64(kept)
		t.Cleanup(func() { boltstore.ChangesKept = old })
		s, err := boltstore.Open(t.TempDir(), params)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, s
	}
	srv := redistest.Start(t)
	open := func() counter.Store {
		s, err := redisstore.Open(context.Background(), redisstore.Options{URL: srv.URL(0), Params: params, CatalogChanges: kept})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open()
}

var storeKinds = []string{"embedded", "redis"}

// TestTableFollowsChanges: a table applies the changes another store
// handle makes (links, a campaign's and a creator's new terms) without
// reading the whole catalog again, and never changes a snapshot it
// served.
func TestTableFollowsChanges(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			reader, writer := openStores(t, kind, 1000)
			now := time.Now().UTC()
			camp := counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1000,
				DedupeWindow: counter.Duration(24 * time.Hour)}
			must(t, writer.PutCampaign(ctx, camp))
			must(t, writer.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
			must(t, writer.CreateLink(ctx, counter.Link{Code: "first01", Campaign: "spring", Creator: "alice", Destinations: testDest}))
			fs := &feedStore{Store: reader}
			table := NewTable(TableOptions{Store: fs})
			must(t, table.Refresh(ctx))
			if fs.catalogs.Load() != 1 || table.entry("first01") == nil {
				t.Fatalf("unexpected first load; got %d catalog reads, entry %v", fs.catalogs.Load(), table.entry("first01"))
			}
			old := table.snap.Load()

			// Links of a creator not known yet are served once it is.
			for i := range 50 {
				must(t, writer.CreateLink(ctx, counter.Link{Code: fmt.Sprintf("link%04d", i), Campaign: "spring", Creator: "alice", Destinations: testDest}))
			}
			must(t, writer.CreateLink(ctx, counter.Link{Code: "bobs0001", Campaign: "spring", Creator: "bob", Destinations: testDest}))
			must(t, table.Refresh(ctx))
			if table.Len() != 51 || table.entry("link0049") == nil || table.entry("bobs0001") != nil {
				t.Fatalf("unexpected table after 51 links; got %d links", table.Len())
			}
			must(t, writer.PutCreator(ctx, counter.Creator{ID: "bob", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
			must(t, table.Refresh(ctx))
			if e := table.entry("bobs0001"); e == nil || e.Creator.ID != "bob" {
				t.Fatalf("unexpected entry of bob's link once bob exists; got %+v", e)
			}

			// New terms reach every link of the campaign and of the creator.
			camp.CapCents = 12345
			must(t, writer.PutCampaign(ctx, camp))
			must(t, writer.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusSuspended}))
			must(t, table.Refresh(ctx))
			for _, code := range []string{"first01", "link0000", "link0049", "bobs0001"} {
				e := table.entry(code)
				if e == nil || e.Campaign.CapCents != 12345 {
					t.Fatalf("unexpected campaign of %q after its change; got %+v", code, e)
				}
				if want := map[bool]string{true: counter.StatusActive, false: counter.StatusSuspended}[e.Creator.ID == "bob"]; e.Creator.Status != want {
					t.Fatalf("unexpected status of the creator of %q; got %q; want %q", code, e.Creator.Status, want)
				}
			}
			if got := fs.catalogs.Load(); got != 1 {
				t.Fatalf("unexpected whole-catalog reads; got %d; want 1 (the first load)", got)
			}
			if old.n != 1 || old.lookup("link0000") != nil || old.lookup("first01").Campaign.CapCents != 0 {
				t.Fatalf("a snapshot served before changed")
			}
			v, _ := writer.Version(ctx)
			if cur := table.snap.Load(); cur.version != v {
				t.Fatalf("unexpected version served; got %d; want %d", cur.version, v)
			}
		})
	}
}

// TestTableTrimmedFeed: a table further behind than the store's feed
// reaches reads the whole catalog, and catches up.
func TestTableTrimmedFeed(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			reader, writer := openStores(t, kind, 5)
			now := time.Now().UTC()
			must(t, writer.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1}))
			must(t, writer.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
			fs := &feedStore{Store: reader}
			table := NewTable(TableOptions{Store: fs})
			must(t, table.Refresh(ctx))
			// Within the feed: applied.
			for i := range 5 {
				must(t, writer.CreateLink(ctx, counter.Link{Code: fmt.Sprintf("near%04d", i), Campaign: "spring", Creator: "alice", Destinations: testDest}))
			}
			must(t, table.Refresh(ctx))
			if got := fs.catalogs.Load(); got != 1 || table.Len() != 5 {
				t.Fatalf("unexpected refresh within the feed; got %d catalog reads, %d links; want 1, 5", got, table.Len())
			}
			// Past it: the whole catalog.
			before := catalogReloads.Get()
			for i := range 6 {
				must(t, writer.CreateLink(ctx, counter.Link{Code: fmt.Sprintf("far%04d", i), Campaign: "spring", Creator: "alice", Destinations: testDest}))
			}
			must(t, table.Refresh(ctx))
			if got := fs.catalogs.Load(); got != 2 || table.Len() != 11 || table.entry("far0005") == nil {
				t.Fatalf("unexpected refresh past the feed; got %d catalog reads, %d links; want 2, 11", got, table.Len())
			}
			if got := catalogReloads.Get() - before; got != 1 {
				t.Fatalf("unexpected clickgate_catalog_trimmed_reloads_total increase; got %d; want 1", got)
			}
			// And applied again after.
			must(t, writer.CreateLink(ctx, counter.Link{Code: "after01", Campaign: "spring", Creator: "alice", Destinations: testDest}))
			must(t, table.Refresh(ctx))
			if got := fs.catalogs.Load(); got != 2 || table.entry("after01") == nil {
				t.Fatalf("unexpected refresh after catching up; got %d catalog reads; want 2", got)
			}
		})
	}
}

// TestTableRedisFlushed: a Redis emptied under a table (FLUSHALL) is a
// reset whatever the feed says, before and after new changes.
func TestTableRedisFlushed(t *testing.T) {
	ctx := context.Background()
	params, _ := counter.NewDedupeParams(10_000, 0.001)
	srv := redistest.Start(t)
	s, err := redisstore.Open(ctx, redisstore.Options{URL: srv.URL(0), Params: params})
	must(t, err)
	defer s.Close()
	now := time.Now().UTC()
	put := func() {
		must(t, s.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1}))
		must(t, s.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
	}
	put()
	must(t, s.CreateLink(ctx, counter.Link{Code: testCode, Campaign: "spring", Creator: "alice", Destinations: testDest}))
	table := NewTable(TableOptions{Store: s})
	must(t, table.Refresh(ctx))
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	must(t, rdb.FlushAll(ctx).Err())
	if err := table.Refresh(ctx); !errors.Is(err, ErrCatalogReset) {
		t.Fatalf("unexpected Refresh error after FLUSHALL; got %v; want ErrCatalogReset", err)
	}
	// Changes since, to a version above the table's.
	for range 5 {
		put()
	}
	if err := table.Refresh(ctx); !errors.Is(err, ErrCatalogReset) {
		t.Fatalf("unexpected Refresh error after FLUSHALL and changes; got %v; want ErrCatalogReset", err)
	}
	if table.entry(testCode) == nil {
		t.Fatalf("the link is not served after the reset")
	}
}

// TestTableServesNewLinkWithinASecond: a link created through one store
// handle is served by a table polling another at the default interval
// within a second.
func TestTableServesNewLinkWithinASecond(t *testing.T) {
	ctx := context.Background()
	reader, writer := openStores(t, "redis", 0)
	now := time.Now().UTC()
	must(t, writer.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1}))
	must(t, writer.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
	table := NewTable(TableOptions{Store: reader})
	must(t, table.Start(ctx))
	defer table.Stop()
	for i := range 3 {
		code := fmt.Sprintf("soon%04d", i)
		start := time.Now()
		must(t, writer.CreateLink(ctx, counter.Link{Code: code, Campaign: "spring", Creator: "alice", Destinations: testDest}))
		for table.entry(code) == nil {
			if time.Since(start) > time.Second {
				t.Fatalf("link %q not served within 1s", code)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTableForkedHistory: a store whose catalog has the table's epoch and
// a version above the table's, but another change at the table's version
// (a failover to a stale replica that took changes since), is read whole
// and refused by the reset guard.
func TestTableForkedHistory(t *testing.T) {
	ctx := context.Background()
	params, _ := counter.NewDedupeParams(10_000, 0.001)
	open := func() (counter.Store, *redis.Client) {
		srv := redistest.Start(t)
		s, err := redisstore.Open(ctx, redisstore.Options{URL: srv.URL(0), Params: params})
		must(t, err)
		t.Cleanup(func() { s.Close() })
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { rdb.Close() })
		return s, rdb
	}
	now := time.Now().UTC()
	fill := func(s counter.Store, codes ...string) {
		must(t, s.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1}))
		must(t, s.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
		for _, c := range codes {
			must(t, s.CreateLink(ctx, counter.Link{Code: c, Campaign: "spring", Creator: "alice", Destinations: testDest}))
		}
	}
	master, mrdb := open()
	fill(master, "same0001", "same0002")
	table := NewTable(TableOptions{Store: master})
	must(t, table.Refresh(ctx))
	must(t, master.CreateLink(ctx, counter.Link{Code: "lost0001", Campaign: "spring", Creator: "alice", Destinations: testDest}))
	must(t, table.Refresh(ctx)) // applied: the table knows the change at its version

	replica, rrdb := open()
	must(t, rrdb.Set(ctx, "cg:{catalog}:epoch", mrdb.Get(ctx, "cg:{catalog}:epoch").Val(), 0).Err())
	fill(replica, "same0001", "same0002", "fork0001", "fork0002")
	table.o.Store = replica
	if err := table.Refresh(ctx); !errors.Is(err, ErrCatalogReset) {
		t.Fatalf("unexpected Refresh error from a forked catalog; got %v; want ErrCatalogReset", err)
	}
	if table.entry("lost0001") == nil || table.entry("fork0002") != nil {
		t.Fatalf("unexpected table after a forked catalog was refused")
	}
}

// TestTableLinks: the links the admin API lists come from the table, each
// once, in code order and paged, served or not: a link created and then
// changed in one refresh (two calls of the feed apart, each with the link
// as it is now), a disabled one, and one of a creator the catalog lacks.
func TestTableLinks(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			reader, writer := openStores(t, kind, 10_000)
			now := time.Now().UTC()
			must(t, writer.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1000}))
			must(t, writer.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
			table := NewTable(TableOptions{Store: reader})
			must(t, table.Refresh(ctx))

			must(t, writer.CreateLink(ctx, counter.Link{Code: "twice001", Campaign: "spring", Creator: "alice", Destinations: testDest}))
			var want []string
			for i := range changesPerCall + 10 {
				code := fmt.Sprintf("link%04d", i)
				must(t, writer.CreateLink(ctx, counter.Link{Code: code, Campaign: "spring", Creator: "alice", Destinations: testDest}))
				want = append(want, code)
			}
			_, err := writer.(interface {
				UpdateLink(context.Context, string, func(*counter.Link) error) (counter.Link, error)
			}).UpdateLink(ctx, "twice001", func(l *counter.Link) error { l.Destinations.Default = "https://app.example.com/new"; return nil })
			must(t, err)
			must(t, writer.CreateLink(ctx, counter.Link{Code: "off00001", Campaign: "spring", Creator: "alice", Destinations: testDest, Disabled: true}))
			want = append(want, "off00001", "twice001")
			must(t, writer.CreateLink(ctx, counter.Link{Code: "bobs0001", Campaign: "spring", Creator: "bob", Destinations: testDest}))
			must(t, table.Refresh(ctx))
			if table.entry("off00001") != nil || table.entry("bobs0001") != nil || table.Len() != len(want)-1 {
				t.Fatalf("unexpected table; got %d links served", table.Len())
			}

			all := func(*counter.Link) bool { return true }
			codes := func(ls []counter.Link) []string {
				var out []string
				for _, l := range ls {
					out = append(out, l.Code)
				}
				return out
			}
			got, more := table.Links("spring", "alice", "", 10_000, all)
			if !slices.Equal(codes(got), want) || more {
				t.Fatalf("unexpected links of alice; got %v (more %v); want %v", codes(got), more, want)
			}
			if off, l := got[len(got)-2], got[len(got)-1]; l.Destinations.Default != "https://app.example.com/new" || !off.Disabled {
				t.Fatalf("unexpected links; got %+v and %+v; want off00001 disabled and twice001 changed", off, l)
			}
			// Paged: each page after the last code of the one before.
			var paged []string
			for after, more := "", true; more; {
				var page []counter.Link
				page, more = table.Links("", "", after, 100, all)
				if len(page) == 0 || len(page) > 100 {
					t.Fatalf("unexpected page after %q of %d links", after, len(page))
				}
				paged = append(paged, codes(page)...)
				after = page[len(page)-1].Code
			}
			if w := append([]string{"bobs0001"}, want...); !slices.Equal(paged, w) {
				t.Fatalf("unexpected pages; got %d links; want %d", len(paged), len(w))
			}
			disabled, _ := table.Links("", "", "", 10, func(l *counter.Link) bool { return l.Disabled })
			bobs, _ := table.Links("", "bob", "", 10, all)
			if !slices.Equal(codes(disabled), []string{"off00001"}) || !slices.Equal(codes(bobs), []string{"bobs0001"}) {
				t.Fatalf("unexpected filtered links; got %v and %v", codes(disabled), codes(bobs))
			}
		})
	}
}

// TestTableGrowsShards: as links are added the shards grow in number,
// every link moved to its new shard; changes made in the apply that grows
// them, and after, are served, and a snapshot served before is unchanged.
func TestTableGrowsShards(t *testing.T) {
	now := time.Now().UTC()
	camp := counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1000}
	creator := counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}
	link := func(i int, dest string) counter.Link {
		return counter.Link{Code: fmt.Sprintf("grow%06d", i), Campaign: "spring", Creator: "alice",
			Destinations: counter.Destinations{Default: dest}}
	}
	links := func(from, to int) []counter.Link {
		var ls []counter.Link
		for i := from; i < to; i++ {
			ls = append(ls, link(i, "https://app.example.com/a"))
		}
		return ls
	}
	st := newCatalogState()
	cur := NewTable(TableOptions{}).snap.Load()
	cur, _ = st.apply(cur, []counter.Campaign{camp}, []counter.Creator{creator}, links(0, 1000))
	if len(cur.shards) != minShards || cur.n != 1000 {
		t.Fatalf("unexpected table of 1,000 links; got %d shards, %d links; want %d shards", len(cur.shards), cur.n, minShards)
	}
	const n = 3 * minShards * linksPerShard
	var before *snapshot
	changedCodes, disabled := map[string]bool{}, map[string]bool{}
	for from := 1000; from < n; from += 10_000 {
		ls := links(from, min(from+10_000, n))
		// An earlier link changed, another disabled, in the same apply.
		changed, off := link(from/10, "https://app.example.com/b"), link(from/10+1, "https://app.example.com/a")
		off.Disabled = true
		changedCodes[changed.Code], disabled[off.Code] = true, true
		before = cur
		next, dropped := st.apply(cur, nil, nil, append(ls, changed, off))
		if len(dropped) != 0 {
			t.Fatalf("unexpected links dropped: %v", dropped)
		}
		if err := older(cur, next, st, 1); err != nil {
			t.Fatalf("a grown table is taken for an older one: %s", err)
		}
		cur = next
	}
	if want := shardsFor(n); len(cur.shards) != want || want < 4*minShards {
		t.Fatalf("unexpected shards of %d links; got %d; want %d, at least %d", n, len(cur.shards), want, 4*minShards)
	}
	// A new term reaches every link through the grown shards.
	camp.CapCents = 4242
	cur, _ = st.apply(cur, []counter.Campaign{camp}, nil, nil)
	served := 0
	for i := range n {
		code := link(i, "").Code
		e := cur.lookup(code)
		if disabled[code] {
			if e != nil {
				t.Fatalf("disabled link %q served", code)
			}
			continue
		}
		if e == nil || e.Link.Code != code || e.Campaign.CapCents != 4242 {
			t.Fatalf("unexpected entry of %q; got %+v", code, e)
		}
		if want := map[bool]string{true: "https://app.example.com/b", false: "https://app.example.com/a"}[changedCodes[code]]; e.Link.Destinations.Default != want {
			t.Fatalf("unexpected destination of changed link %q; got %q; want %q", code, e.Link.Destinations.Default, want)
		}
		served++
	}
	if served != cur.n || served != n-len(disabled) || len(changedCodes) < 3 {
		t.Fatalf("unexpected links served; got %d, table says %d; want %d", served, cur.n, n-len(disabled))
	}
	if before.lookup(link(n-1, "").Code) != nil || before.n >= cur.n {
		t.Fatal("a snapshot served before changed")
	}
}

// TestShardProbes: a shard's open-addressed table against a map, with
// hashes drawn from a few, so that codes share whole hashes and homes and
// their probe sequences wrap around the table: every code set is found
// with its link, every code removed is not, through growth and removals.
func TestShardProbes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tx text
	var sh shard
	want := map[string]string{}
	hashes := map[string]uint64{}
	// 40 hashes for 300 codes; half of them with homes at the end of any
	// table, whose probes wrap around.
	var few []uint64
	for i := range 40 {
		h := uint64(rng.Uint32())
		if i%2 == 0 {
			h = 1<<32 - 1 - uint64(i)
		}
		few = append(few, h)
	}
	for step := range 20_000 {
		code := fmt.Sprintf("code%03d", rng.IntN(300))
		if _, ok := hashes[code]; !ok {
			hashes[code] = few[rng.IntN(len(few))]
		}
		h := hashes[code]
		if rng.IntN(3) == 0 {
			_, ok := sh.remove(tx.chunks, h, code)
			if _, had := want[code]; ok != had {
				t.Fatalf("step %d: unexpected removal of %q; got %v; want %v", step, code, ok, had)
			}
			delete(want, code)
		} else {
			dest := fmt.Sprintf("https://app.example.com/%d", step)
			l := counter.Link{Code: code, Destinations: counter.Destinations{Default: dest}}
			f := fields(&l)
			var r rec
			r.chunk, r.off, r.lens = tx.add(&f)
			if _, replaced := sh.set(tx.chunks, h, code, r); replaced != (want[code] != "") {
				t.Fatalf("step %d: unexpected set of %q; replaced %v", step, code, replaced)
			}
			want[code] = dest
		}
		if sh.n != len(want) || sh.n*4 > len(sh.recs)*3 {
			t.Fatalf("step %d: unexpected shard of %d in %d slots; want %d", step, sh.n, len(sh.recs), len(want))
		}
		for c, h := range hashes {
			i, ok := slot(&sh, tx.chunks, h, c)
			if dest, served := want[c]; ok != served || ok && tx.chunks.strings(&sh.recs[i])[1] != dest {
				t.Fatalf("step %d: unexpected slot of %q; got %v; want %v, %q", step, c, ok, served, dest)
			}
		}
	}
}

// TestTableTextCompacts: the strings of links changed again and again
// are dropped once they outweigh the live ones, so a table's text stays
// bounded by what it serves; a snapshot served before keeps its strings.
func TestTableTextCompacts(t *testing.T) {
	now := time.Now().UTC()
	camp := counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), VisitBlockSize: 1000}
	creator := counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}
	dest := func(i int) string {
		return fmt.Sprintf("https://app.example.com/%04d/%s", i, strings.Repeat("x", 2000))
	}
	link := func(code string, i int) counter.Link {
		return counter.Link{Code: code, Campaign: "spring", Creator: "alice", CreatedAt: now,
			Destinations: counter.Destinations{Default: dest(i)}}
	}
	st := newCatalogState()
	cur, _ := st.apply(NewTable(TableOptions{}).snap.Load(), []counter.Campaign{camp}, []counter.Creator{creator},
		[]counter.Link{link("keep0001", 0), link("flip0001", 0)})
	first := cur
	const changes = 5000 // 10 MB of destinations
	for i := 1; i <= changes; i++ {
		cur, _ = st.apply(cur, nil, nil, []counter.Link{link("flip0001", i)})
	}
	size := 0
	for _, c := range cur.text {
		size += len(c)
	}
	if size > 4*textChunk {
		t.Fatalf("text of 2 links holds %d bytes after %d changes; want at most %d", size, changes, 4*textChunk)
	}
	for code, want := range map[string]string{"keep0001": dest(0), "flip0001": dest(changes)} {
		e := cur.lookup(code)
		if e == nil || e.Link.Destinations.Default != want || !e.Link.CreatedAt.Equal(now) {
			t.Fatalf("unexpected entry of %q after compaction; got %+v", code, e)
		}
	}
	if e := first.lookup("flip0001"); e == nil || e.Link.Destinations.Default != dest(0) {
		t.Fatalf("a snapshot served before changed; got %+v", e)
	}
	if cur.n != 2 || st.text.live != 2*len(link("keep0001", 0).Code+dest(0)) {
		t.Fatalf("unexpected table; got %d links, %d live bytes", cur.n, st.text.live)
	}
}

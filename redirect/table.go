package redirect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/clickgate/clickgate/counter"
)

// Entry is a resolved link: everything the hot path needs, without I/O.
// Disabled links have none: they answer like unknown codes.
type Entry struct {
	Link     counter.Link
	Campaign *counter.Campaign
	Creator  *counter.Creator
}

// TableOptions configure a Table.
type TableOptions struct {
	Store counter.Store
	// PollInterval is how often the store's catalog version is checked, so
	// a link created on another node is served here within it.
	// default: 250ms
	PollInterval time.Duration
	// Logger receives reload errors when they start and when they stop.
	// default: slog.Default()
	Logger *slog.Logger
}

// ChangeFeed is a store that says what changed in its catalog after a
// version, so that the table applies a change without reading the whole
// catalog. Both stores implement it.
type ChangeFeed interface {
	CatalogChanges(ctx context.Context, since uint64, limit int) (*counter.CatalogChanges, error)
}

// changesPerCall bounds the changes read in one call: Redis runs nothing
// else while it reads them (10,000 took it 16-50 ms, which held every
// commit meanwhile). changesPerApply bounds those applied at once, so that
// a node far behind catches up in steps of bounded size, each copying the
// shards it touches once.
const (
	changesPerCall  = 256
	changesPerApply = 10_000
)

// Table is the in-memory link table: immutable snapshots of the catalog,
// swapped atomically. With a store that has a change feed, a refresh
// applies the changes since the version served, copying only the shards
// of the links they touch; otherwise, and when the feed cannot say (the
// table is new, the store was reset, or the feed was trimmed past the
// version served), it reloads the whole catalog.
type Table struct {
	o    TableOptions
	snap atomic.Pointer[snapshot]
	mu   sync.Mutex // serializes refreshes; guards st
	st   *catalogState
	stop chan struct{}
	done chan struct{}
}

// NewTable returns a Table; Load or Start fills it.
func NewTable(o TableOptions) *Table {
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	t := &Table{o: o, st: newCatalogState(), stop: make(chan struct{}), done: make(chan struct{})}
	// No store version is MaxUint64, so the first Refresh always loads.
	t.snap.Store(&snapshot{version: ^uint64(0), shards: make([]shard, minShards)})
	return t
}

// Lookup sets e to the entry of code and returns true, if it is served.
// It does not allocate: the entry's strings are the table's.
func (t *Table) Lookup(code []byte, e *Entry) bool {
	s := t.snap.Load()
	r := find(s, code)
	if r != nil {
		s.entry(r, e)
	}
	return r != nil
}

// Len is the number of links served.
func (t *Table) Len() int { return t.snap.Load().n }

// Refresh brings the table to the store's catalog: the changes since the
// version served, or the whole catalog.
func (t *Table) Refresh(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	feed, ok := t.o.Store.(ChangeFeed)
	if !ok {
		v, err := t.o.Store.Version(ctx)
		if err != nil {
			return fmt.Errorf("cannot read catalog version: %w", err)
		}
		if t.snap.Load().version == v {
			return nil
		}
		return t.reload(ctx)
	}
	pace := NewPacer()
	for {
		cur := t.snap.Load()
		var all counter.CatalogChanges
		var links [][]counter.Link // the pages of links, put together once
		n := 0
		version, last, more := cur.version, cur.last, true
		for more && n < changesPerApply {
			if version != cur.version && !pace.Wait(ctx) {
				// A bulk import's changes, read paced like the
				// import, until the poll's time is up.
				break
			}
			ch, err := feed.CatalogChanges(ctx, version, changesPerCall)
			if err != nil {
				return fmt.Errorf("cannot read catalog changes: %w", err)
			}
			switch {
			case cur.version == ^uint64(0), ch.Epoch != cur.epoch, ch.Trimmed, ch.Version < version,
				ch.At != "" && last != "" && ch.At != last:
				// Never loaded, or the feed cannot say (another history,
				// trimmed, gone back, forked): the whole catalog, which
				// the reset guard checks.
				if ch.Trimmed {
					catalogReloads.Inc()
				}
				return t.reload(ctx)
			}
			all.Campaigns = append(all.Campaigns, ch.Campaigns...)
			all.Creators = append(all.Creators, ch.Creators...)
			links = append(links, ch.Links)
			n += len(ch.Campaigns) + len(ch.Creators) + len(ch.Links)
			version, last, more = ch.Version, ch.Last, ch.More
		}
		all.Links = slices.Concat(links...)
		if version == cur.version {
			return nil
		}
		next, dropped := t.st.apply(cur, all.Campaigns, all.Creators, all.Links)
		next.version, next.last = version, last
		t.logDropped(dropped)
		t.snap.Store(next)
		catalogChangesApplied.Add(len(all.Campaigns) + len(all.Creators) + len(all.Links))
		if !more || ctx.Err() != nil {
			// All read, or the rest at the next poll.
			return nil
		}
	}
}

var (
	catalogChangesApplied = metrics.NewCounter("clickgate_catalog_changes_applied_total")
	// catalogReloads counts reloads of the whole catalog because the
	// store's feed no longer held the changes the table needed.
	catalogReloads = metrics.NewCounter("clickgate_catalog_trimmed_reloads_total")
)

// reload reads the whole catalog and serves it unless it is older than
// the one served.
func (t *Table) reload(ctx context.Context) error {
	cat, err := t.o.Store.Catalog(ctx)
	if err != nil {
		return fmt.Errorf("cannot load catalog: %w", err)
	}
	st := newCatalogState()
	snap, dropped := st.apply(&snapshot{}, cat.Campaigns, cat.Creators, cat.Links)
	snap.version, snap.epoch = cat.Version, cat.Epoch
	if err := older(t.snap.Load(), snap, st, cat.Version); err != nil {
		catalogResets.Inc()
		return err
	}
	t.logDropped(dropped)
	t.st = st
	t.snap.Store(snap)
	return nil
}

func (t *Table) logDropped(dropped []string) {
	for _, code := range dropped {
		t.o.Logger.Error("link cannot be served: malformed in the store", "code", code)
	}
}

// ErrCatalogReset is matched by Refresh's error when the store's catalog
// is older than the one served: the store was reset (FLUSHALL, a failover
// to an empty or stale replica, a data directory swapped). The table keeps
// serving what it has; the catalog must be restored in the store.
var ErrCatalogReset = errors.New("redirect: the store's catalog is older than the one served")

var catalogResets = metrics.NewCounter("clickgate_catalog_resets_total")

// Start loads the table and keeps it fresh until Stop.
func (t *Table) Start(ctx context.Context) error {
	if err := t.Refresh(ctx); err != nil {
		return err
	}
	go t.run()
	return nil
}

// Stop stops refreshing.
func (t *Table) Stop() {
	close(t.stop)
	<-t.done
}

func (t *Table) run() {
	defer close(t.done)
	tick := time.NewTicker(t.o.PollInterval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := t.Refresh(ctx)
		cancel()
		switch {
		case err != nil && !failing:
			t.o.Logger.Error("link table is stale", "err", err)
		case err == nil && failing:
			t.o.Logger.Info("link table is fresh again")
		}
		failing = err != nil
	}
}

package redirect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// Entry is a resolved link: everything the hot path needs, without I/O.
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

// Table is the in-memory link table: an immutable snapshot of the catalog,
// swapped atomically when the store's version changes.
type Table struct {
	o    TableOptions
	snap atomic.Pointer[snapshot]
	mu   sync.Mutex // serializes reloads
	stop chan struct{}
	done chan struct{}
}

type snapshot struct {
	version uint64
	links   map[string]*Entry
}

// NewTable returns a Table; Load or Start fills it.
func NewTable(o TableOptions) *Table {
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	t := &Table{o: o, stop: make(chan struct{}), done: make(chan struct{})}
	// No store version is MaxUint64, so the first Refresh always loads.
	t.snap.Store(&snapshot{version: ^uint64(0), links: map[string]*Entry{}})
	return t
}

// Lookup returns the entry of code, or nil. It does not allocate.
func (t *Table) Lookup(code []byte) *Entry {
	return t.snap.Load().links[string(code)]
}

// Len is the number of links served.
func (t *Table) Len() int { return len(t.snap.Load().links) }

// Refresh reloads the catalog if its version changed.
func (t *Table) Refresh(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, err := t.o.Store.Version(ctx)
	if err != nil {
		return fmt.Errorf("cannot read catalog version: %w", err)
	}
	if t.snap.Load().version == v {
		return nil
	}
	cat, err := t.o.Store.Catalog(ctx)
	if err != nil {
		return fmt.Errorf("cannot load catalog: %w", err)
	}
	snap, dropped := build(cat)
	if err := older(t.snap.Load(), snap, cat.Version); err != nil {
		catalogResets.Inc()
		return err
	}
	for _, code := range dropped {
		t.o.Logger.Error("link cannot be served: malformed in the store", "code", code)
	}
	t.snap.Store(snap)
	return nil
}

// ErrCatalogReset is matched by Refresh's error when the store's catalog
// is older than the one served: the store was reset (FLUSHALL, a failover
// to an empty or stale replica, a data directory swapped). The table keeps
// serving what it has; the catalog must be restored in the store.
var ErrCatalogReset = errors.New("redirect: the store's catalog is older than the one served")

var catalogResets = metrics.NewCounter("clickgate_catalog_resets_total")

// older refuses next when it lacks a link that cur serves: links are
// never deleted, so such a catalog is an older one, whatever its version
// says. A catalog restored into a reset store holds every link again and
// is taken, even under a lower version.
func older(cur, next *snapshot, version uint64) error {
	for code := range cur.links {
		if next.links[code] == nil {
			return fmt.Errorf("%w: link %q and maybe others are missing from version %d (served: %d); the store was reset or failed over to a stale replica: serving the last catalog until it is restored",
				ErrCatalogReset, code, version, cur.version)
		}
	}
	return nil
}

// build makes a snapshot of cat. Links the admin API could not have made
// (over-long ids, bad codes, missing campaign or creator) are dropped and
// returned: serving them could break the hot path's invariants.
func build(cat *counter.Catalog) (s *snapshot, dropped []string) {
	campaigns := make(map[string]*counter.Campaign, len(cat.Campaigns))
	for i := range cat.Campaigns {
		campaigns[cat.Campaigns[i].ID] = &cat.Campaigns[i]
	}
	type creatorID struct{ campaign, id string }
	creators := make(map[creatorID]*counter.Creator, len(cat.Creators))
	for i := range cat.Creators {
		c := &cat.Creators[i]
		creators[creatorID{c.Campaign, c.ID}] = c
	}
	s = &snapshot{version: cat.Version, links: make(map[string]*Entry, len(cat.Links))}
	for _, l := range cat.Links {
		c, cr := campaigns[l.Campaign], creators[creatorID{l.Campaign, l.Creator}]
		if c == nil || cr == nil || !ValidCode([]byte(l.Code)) ||
			len(l.Campaign) > clickid.MaxFieldLen || len(l.Creator) > clickid.MaxFieldLen {
			dropped = append(dropped, l.Code)
			continue
		}
		s.links[l.Code] = &Entry{Link: l, Campaign: c, Creator: cr}
	}
	return s, dropped
}

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

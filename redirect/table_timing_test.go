package redirect

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// BenchmarkTableBuild builds the table of a catalog of 1M links (1,000
// creators of one campaign) as a full reload does, after the store's
// read, and reports the heap it holds per link: the entry, its share of
// the maps, and the strings of the link decoded from the store (code and
// destination; the ids are shared).
//
//	go test ./redirect -run '^$' -bench TableBuild -benchtime 3x
func BenchmarkTableBuild(b *testing.B) {
	const n, creators = 1_000_000, 1000
	now := time.Now().UTC()
	cat := &counter.Catalog{Campaigns: []counter.Campaign{{ID: "spring", StartsAt: now, EndsAt: now.Add(time.Hour), VisitBlockSize: 1}}}
	for i := range creators {
		cat.Creators = append(cat.Creators, counter.Creator{ID: fmt.Sprintf("creator%04d", i), Campaign: "spring", Country: "US", Status: counter.StatusActive})
	}
	links := func() []counter.Link {
		ls := make([]counter.Link, n)
		for i := range ls {
			// Each link with strings of its own, as decoded from the store.
			ls[i] = counter.Link{Code: fmt.Sprintf("C%07d", i), Campaign: string([]byte("spring")),
				Creator:      fmt.Sprintf("creator%04d", i%creators),
				Destinations: counter.Destinations{Default: fmt.Sprintf("https://app.example.com/join?ref=%d", i%creators)}, CreatedAt: now}
		}
		return ls
	}
	var perLink float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cat.Links = links()
		b.StartTimer()
		st := newCatalogState()
		snap, dropped := st.apply(&snapshot{}, cat.Campaigns, cat.Creators, cat.Links)
		b.StopTimer()
		if snap.n != n || len(dropped) != 0 {
			b.Fatalf("unexpected table of %d links, %d dropped", snap.n, len(dropped))
		}
		cat.Links = nil // what the table keeps of them, not the decoded slice
		runtime.GC()
		runtime.ReadMemStats(&after)
		perLink = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		runtime.KeepAlive(snap)
		runtime.KeepAlive(st)
		b.StartTimer()
	}
	b.ReportMetric(perLink, "heap-B/link")
}

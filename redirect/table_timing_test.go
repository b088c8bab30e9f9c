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
// read, and reports the heap it holds per link: its slot in a shard, its
// strings (code and destination; the ids are shared), and its code in its
// creator's list.
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

// benchTable returns a snapshot of n links, and its state.
func benchTable(b *testing.B, n int) (*snapshot, *catalogState, []counter.Link) {
	now := time.Now().UTC()
	camp := counter.Campaign{ID: "spring", StartsAt: now, EndsAt: now.Add(time.Hour), VisitBlockSize: 1}
	var creators []counter.Creator
	for i := range 100 {
		creators = append(creators, counter.Creator{ID: fmt.Sprintf("creator%04d", i), Campaign: "spring", Country: "US", Status: counter.StatusActive})
	}
	ls := make([]counter.Link, n)
	for i := range ls {
		ls[i] = counter.Link{Code: fmt.Sprintf("C%07d", i), Campaign: "spring", Creator: creators[i%len(creators)].ID,
			Destinations: counter.Destinations{Default: "https://app.example.com/join"}, CreatedAt: now}
	}
	st := newCatalogState()
	snap, dropped := st.apply(NewTable(TableOptions{}).snap.Load(), []counter.Campaign{camp}, creators, ls)
	if snap.n != n || len(dropped) != 0 {
		b.Fatalf("unexpected table of %d links, %d dropped", snap.n, len(dropped))
	}
	return snap, st, ls
}

var sinkSum int

// BenchmarkLookup looks up random codes of tables of several sizes, and
// reads what the handler reads of their entries.
//
//	go test ./redirect -run '^$' -bench Lookup
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1000, 100_000, 1_000_000} {
		snap, _, ls := benchTable(b, n)
		t := NewTable(TableOptions{})
		t.snap.Store(snap)
		codes := make([][]byte, 1<<16)
		for i := range codes {
			codes[i] = []byte(ls[(i*7919)%n].Code)
		}
		b.Run(fmt.Sprintf("links=%d", n), func(b *testing.B) {
			i, sum := 0, 0
			for b.Loop() {
				var e Entry
				if !t.Lookup(codes[i&(len(codes)-1)], &e) {
					b.Fatal("a link is missing")
				}
				// What the handler reads of every entry.
				sum += int(e.Link.Destinations.Default[8]) + len(e.Creator.ID) + int(e.Campaign.DedupeWindow)
				i++
			}
			sinkSum = sum
		})
	}
}

// BenchmarkApplyImport applies a bulk import of 10,000 links as a node's
// poll sees it, 40 changes of 256 links, to tables of several sizes, and
// reports the time and the bytes allocated per link applied.
//
//	go test ./redirect -run '^$' -bench ApplyImport -benchtime 3x
func BenchmarkApplyImport(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("links=%d", n), func(b *testing.B) {
			snap, st, ls := benchTable(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				cur := snap
				for i := range 40 {
					chunk := make([]counter.Link, 256)
					for j := range chunk {
						chunk[j] = ls[0]
						chunk[j].Code = fmt.Sprintf("I%07d", i*256+j)
					}
					cur, _ = st.apply(cur, nil, nil, chunk)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(40*256*b.N), "ns/link")
		})
	}
}

// BenchmarkTableGC times a full collection of a heap that holds a table
// of 1M links and nothing else of size: what the collector spends on the
// table at every cycle.
//
//	go test ./redirect -run '^$' -bench TableGC -benchtime 5x
func BenchmarkTableGC(b *testing.B) {
	snap, st, ls := benchTable(b, 1_000_000)
	clear(ls)
	runtime.GC()
	b.ResetTimer()
	for range b.N {
		runtime.GC()
	}
	b.StopTimer()
	runtime.KeepAlive(snap)
	runtime.KeepAlive(st)
}

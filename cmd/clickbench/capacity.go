package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// busyShare is how busy a core may run in the capacity plan: the rest is
// headroom for bursts, failovers and checkpoints.
const busyShare = 0.7

// writeImport writes the open loop without and with a bulk import, and how
// soon the other edge served the imported links.
func (l *loadtester) writeImport(w io.Writer, stores []*row, bare *row) {
	fmt.Fprintf(w, "## Bulk import under load, and new links on every edge\n\n")
	fmt.Fprintf(w, "The open loop again, at %.0f req/s (the open loop's rate, but at most %.0f%% of the slowest clickgate design's closed-loop maximum: above a design's capacity its queue grows for as long as a round lasts, and its p99 measures that, import or not; the import's own work and the time the hypervisor takes from the core come on top of the rate), "+
		"for each clickgate design in %d rounds of %s that take turns with the others. In every round, `POST /v1/links:bulk` calls of %d links each (codes drawn by clickgate) to the first edge alternate with pauses about as long (0.5 to 1.5 times the call before); no call starts that would outlast the round. "+
		"Each request's latency counts as during an import when a call was in flight at its due time, and as without otherwise: both kinds share every slow spell of the machine, as they alternate every few seconds. "+
		"Send lag is how late the generator sent a request after it was due (as in the open loop's table, and inside the latency): the bulk calls' client shares the generator's process and core, but reads each call's answer a buffer at a time without decoding it. "+
		"Commits over %s are the edges' (`clickgate_commit_duration_seconds`), without and during a call (those that ended while one was in flight): a new visitor's redirect waits for the commit of its visit, so one commit that long holds every connection of the open loop, and the requests due meanwhile leave late; one in a round is enough to set its p99. Both p99s are over all the rounds; the median of the rounds' ratio is over the rounds of the p99 during an import over that without in the same round. Server CPU is the design's processes' CPU over the rounds' time, in cores, and stolen the time the hypervisor took from the server's cores, as in the open loop's table. "+
		"On the cluster, after each call, the second edge is asked (HEAD, not counted) for the call's last link until it redirects: the time from the call's answer until then is the time a new link takes to reach every node.\n\n",
		l.importRate, 100*importShare, importRounds, time.Duration(importRoundLen*float64(l.duration)), l.importBatch, slowCommit)
	fmt.Fprintf(w, "| design | p99 without import | p99 during import | × | median of the rounds' × | p50 without / during | send lag p99 without / during | commits over %s without / during | requests during an import | server CPU, cores | stolen, cores | links imported | one bulk call of %d, median | max | served by the other edge, median | max |\n", slowCommit, l.importBatch)
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range stores {
		x, med, ok := importRatios(r)
		if !ok {
			continue
		}
		q, b := r.importing.res.Quiet, r.importing.res.Busy
		served, servedMax := "—", "—"
		if len(r.imp.served) > 0 {
			served, servedMax = ms(median(r.imp.served)), ms(slices.Max(r.imp.served))
		}
		callMed, callMax := "—", "—"
		if len(r.imp.calls) > 0 {
			callMed, callMax = ms(median(r.imp.calls)), ms(slices.Max(r.imp.calls))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.2f | %.2f | %s / %s | %s / %s | %.0f / %.0f | %.0f%% | %.2f | %.2f | %d | %s | %s | %s | %s |\n", r.name, ms(q.Latency.P99), ms(b.Latency.P99),
			x, med, ms(q.Latency.P50), ms(b.Latency.P50), ms(q.SendLag.P99), ms(b.SendLag.P99), r.imp.slow-r.imp.slowDuring, r.imp.slowDuring, 100*float64(b.Requests)/float64(b.Requests+q.Requests),
			r.importing.cores(), r.importing.stolen(), r.imp.links, callMed, callMax, served, servedMax)
	}
	fmt.Fprintf(w, "\nErrors: %s.\n\n", errorsOf(stores, func(r *row) *phase { return &r.importing }))
}

// importRatios returns the p99 of r's requests during an import over that
// of its requests without, over all its rounds and the median of the
// rounds'; not ok when no round had requests of both kinds.
func importRatios(r *row) (all, median float64, ok bool) {
	var x []float64
	for _, res := range r.importing.rounds {
		if res.Quiet.Requests > 0 && res.Busy.Requests > 0 {
			x = append(x, float64(res.Busy.Latency.P99)/float64(res.Quiet.Latency.P99))
		}
	}
	if len(x) == 0 {
		return 0, 0, false
	}
	slices.Sort(x)
	q, b := r.importing.res.Quiet, r.importing.res.Busy
	return float64(b.Latency.P99) / float64(q.Latency.P99), x[len(x)/2], true
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// write writes the section on a start with many links.
func (cat *catalogResult) write(w io.Writer) {
	fmt.Fprintf(w, "## A start with %d links\n\n", cat.links)
	fmt.Fprintf(w, "%d links of one creator are written into a store through its own `CreateLinks`, 1,000 a call (the path of `POST /v1/links:bulk` without HTTP), from clickbench, the server stopped. "+
		"Then a clickgate server starts on it: the start runs from the exec to its `clickgate serving` line, after it has read the whole catalog and built its link table (the line's link count is checked, and the last link redirects at once). "+
		"Memory per link is the server's, over the same server started on the catalog without those links: Go's heap in use after a collection (a heap profile with `gc=1`), and the resident set (VmRSS); on Redis also `used_memory_dataset`.\n\n", cat.links)
	fmt.Fprintf(w, "| store | links written in | start, empty | start with the links | heap per link | RSS per link | Redis per link |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range cat.stores {
		red := "—"
		if s.redis0 != 0 || s.redis != 0 {
			red = fmt.Sprintf("%.0f B", s.perLinkRedis)
		}
		fmt.Fprintf(w, "| %s | %.2f s | %.2f s | %.2f s | %.0f B | %.0f B | %s |\n", s.name, s.fill.Seconds(), s.start0.Seconds(), s.start.Seconds(), s.perLinkHeap, s.perLinkRSS, red)
	}
	fmt.Fprintf(w, "\n")
}

// writeCapacity writes the cluster's layout, the costs measured on it, and
// the plan for larger campaigns drawn from them.
func (l *loadtester) writeCapacity(w io.Writer, cl, red *row, mem *memResult, cat *catalogResult, micro *microResult) {
	fmt.Fprintf(w, "## Capacity: the Redis Cluster, measured\n\n")
	lay := cl.layout
	if lay != nil {
		fmt.Fprintf(w, "Where the keys were after the run (`SCAN` and `MEMORY USAGE` on every master, by hash tag): each campaign's %d partitions are one hash tag each, `{campaign:p}`; the catalog is `{catalog}`.\n\n", l.partitions)
		fmt.Fprintf(w, "| master | partitions | catalog | `used_memory_dataset` |\n|---|---:|---|---:|\n")
		for _, m := range lay.masters {
			c := ""
			if m.catalog {
				c = fmt.Sprintf("yes, %.0f KiB", lay.catalog.bytes/1024)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %.1f MiB |\n", m.addr, m.partitions, c, m.dataset/(1<<20))
		}
		lo, med, hi := lay.partitionBytes()
		fmt.Fprintf(w, "\nA partition's keys (its log trimmed below the checkpoint, the checkpoint with its Bloom filters and counters, the lease, the published counters) took %.0f KiB at least, %.0f KiB in the median, %.0f KiB at most, over %d partitions.\n\n",
			lo/1024, med/1024, hi/1024, len(lay.partitions))
	}
	reqs := float64(cl.max.res.Requests)
	edgeReq := 1e6 * cl.max.cpuEdge / reqs
	redisReq := 1e6 * cl.max.cpuRedis / reqs
	fresh := float64(cl.fresh.res.NewVisitors())
	edgeNew := 1e6 * cl.fresh.cpuEdge / float64(cl.fresh.res.Requests)
	redisNew := 1e6 * cl.fresh.cpuRedis / fresh
	singleNew := 1e6 * red.fresh.cpuRedis / float64(red.fresh.res.NewVisitors())
	fmt.Fprintf(w, "Measured in this run on the cluster design (CPU of both edges and all %d masters, from the start of each round until the judges were idle):\n\n", clusterMasters)
	fmt.Fprintf(w, "- the default model: %.1f µs of edge CPU and **%.2f µs of Redis CPU per request** (%.3f Redis commands per request); the single Redis: %.1f + %.2f µs\n",
		edgeReq, redisReq, cl.max.redisCmds/reqs, 1e6*red.max.cpuEdge/float64(red.max.res.Requests), 1e6*red.max.cpuRedis/float64(red.max.res.Requests))
	fmt.Fprintf(w, "- every request a new visitor: %.1f µs of edge CPU per request and **%.2f µs of Redis CPU per new visitor** (%.3f commands); the single Redis: %.2f µs\n",
		edgeNew, redisNew, cl.fresh.redisCmds/fresh, singleNew)
	judgeNew := 0.0
	if micro != nil {
		judgeNew = micro.nsPerOp["BenchmarkApply/new"] / 1000
	}
	if judgeNew > 0 {
		fmt.Fprintf(w, "- a judge decides a new visitor in %.2f µs of CPU on one goroutine (`BenchmarkApply/new`: in memory, Redis aside)\n", judgeNew)
	}
	if mem != nil {
		fmt.Fprintf(w, "- Redis memory: %.2f bytes per unique visitor for dedupe (above), plus a partition's fixed keys (%s)\n", mem.perVisitor, partitionFixed(lay))
	}
	var redisLink, heapLink float64
	if cat != nil {
		for _, s := range cat.stores {
			if s.name == "Redis" {
				redisLink, heapLink = s.perLinkRedis, s.perLinkHeap
				fmt.Fprintf(w, "- the catalog: %.0f bytes of Redis per link, all on the one master of `{catalog}`, and %.0f bytes of heap per link on every edge; a start reads %d links in %.2f s\n",
					s.perLinkRedis, s.perLinkHeap, cat.links, s.start.Seconds())
			}
		}
	}
	fmt.Fprintf(w, "\n")

	// The plan: each master is one Redis thread, each edge core serves
	// 1e6/edge µs requests a second, a partition is one judge goroutine
	// and one hash slot.
	fmt.Fprintf(w, "### What a campaign needs\n\n")
	fmt.Fprintf(w, "From the figures above, cores at most %.0f%% busy. Clicks are the default model's mix; the worst case is every click a new visitor, whose visit goes to the log and the judge (a repeat click is answered by the edge's filter of decided visitors, the crawlers and previews are never appended). "+
		"A master is one Redis thread: masters = Redis CPU / %.0f%%. Edges scale the same way on their cores. "+
		"A partition is one hash slot on one master and one judge goroutine on one node, so one partition takes at most min(1 / judge CPU, 1 / Redis CPU) new visitors a second, %s; "+
		"a campaign's partitions are split by creator, so one creator's clicks all go to one partition.\n\n", 100*busyShare, 100*busyShare, partitionCapText(judgeNew, redisNew))
	fmt.Fprintf(w, "| clicks/s | edge cores (mix) | edge cores (all new) | masters (mix) | masters (all new) | partitions at least (all new) | Redis memory per hour of new visitors |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	perPartition := partitionCap(judgeNew, redisNew)
	for _, rate := range []float64{10_000, 100_000, 1_000_000} {
		cores := func(us float64) float64 { return rate * us / 1e6 / busyShare }
		parts := "—"
		if perPartition > 0 {
			parts = fmt.Sprintf("%.0f", math.Ceil(rate/perPartition))
		}
		memHour := "—"
		if mem != nil {
			memHour = fmt.Sprintf("%.1f GiB", rate*3600*mem.perVisitor/(1<<30))
		}
		fmt.Fprintf(w, "| %.0f | %.1f | %.1f | %d | %d | %s | %s |\n", rate, cores(edgeReq), cores(edgeNew),
			max(3, int(math.Ceil(cores(redisReq)))), max(3, int(math.Ceil(cores(redisNew)))), parts, memHour)
	}
	fmt.Fprintf(w, "\nMasters are at least 3, the smallest cluster redis-cli creates. The first bottleneck, in order:\n\n")
	fmt.Fprintf(w, "1. **A hot partition.** A campaign's visits spread over its partitions by creator, so a single viral creator is one partition: %s, whatever the number of masters or edges. "+
		"Below that, `--partitions` must be at least the campaign's new-visitor rate over one partition's (the table), and at least the masters, or some masters get none of the campaign; the partitions then spread over the masters by their slots (above: %s).\n",
		partitionCapText(judgeNew, redisNew), spreadText(lay))
	fmt.Fprintf(w, "2. **Redis CPU** grows with new visitors, not clicks (%.2f µs each on the cluster); masters are added with their share of partitions, linearly as long as partitions outnumber masters.\n", redisNew)
	fmt.Fprintf(w, "3. **Edges** grow with clicks (%.1f µs each); they share nothing but Redis, and add linearly.\n", edgeReq)
	if redisLink > 0 {
		fmt.Fprintf(w, "4. **The catalog** is not on the click path (every edge resolves from memory), but it is one hash tag: all links on one master (%.0f B each: 1M links %.0f MiB), every edge holds all of them (%.0f B each on the heap), and every edge's start reads all of them from that one master. It bounds the links, not the clicks.\n",
			redisLink, redisLink*1e6/(1<<20), heapLink)
	}
	fmt.Fprintf(w, "\n")
}

// partitionCap returns the new visitors a second one partition takes, at
// busyShare of its judge's goroutine and of its master's thread; 0 when
// unknown.
func partitionCap(judgeUS, redisUS float64) float64 {
	us := max(judgeUS, redisUS)
	if us <= 0 {
		return 0
	}
	return busyShare * 1e6 / us
}

func partitionCapText(judgeUS, redisUS float64) string {
	c := partitionCap(judgeUS, redisUS)
	if c == 0 {
		return "not measured in this run"
	}
	by := "its judge's CPU"
	if redisUS > judgeUS {
		by = "its master's CPU"
	}
	return fmt.Sprintf("about %.0f new visitors a second, bounded by %s (judge %.2f µs, Redis %.2f µs per new visitor, at %.0f%%)", c, by, judgeUS, redisUS, 100*busyShare)
}

func partitionFixed(lay *clusterLayout) string {
	if lay == nil || len(lay.partitions) == 0 {
		return "not measured"
	}
	_, med, _ := lay.partitionBytes()
	return fmt.Sprintf("%.0f KiB in the median partition of this run", med/1024)
}

func spreadText(lay *clusterLayout) string {
	if lay == nil {
		return "not measured"
	}
	s := ""
	for i, m := range lay.masters {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d", m.partitions)
	}
	return s + " partitions on the masters"
}

// writeCatalogTargets writes the targets on links and scale-out.
func (l *loadtester) writeCatalogTargets(w io.Writer, stores []*row, cat *catalogResult) {
	if cat != nil {
		for _, s := range cat.stores {
			fmt.Fprintf(w, "- %s: %d links loaded at start in seconds (≤ 10 s): %.2f s, %s\n", s.name, cat.links, s.start.Seconds(), atMost(s.start.Seconds(), 10, "%.2f s"))
		}
	}
	for _, r := range stores {
		if r.imp == nil || len(r.imp.calls) == 0 {
			continue
		}
		x := slices.Max(r.imp.calls).Seconds() * 10_000 / float64(l.importBatch)
		fmt.Fprintf(w, "- %s: 10,000 links created in one bulk call in seconds (≤ 10 s), under load: at most %.2f s per 10,000 (%d calls of %d), %s\n", r.name, x, len(r.imp.calls), l.importBatch, atMost(x, 10, "%.2f s"))
		if len(r.imp.served) > 0 {
			m := slices.Max(r.imp.served).Seconds()
			fmt.Fprintf(w, "- %s: a new link served by every node within 1 s: at most %s after the bulk call's answer (%d calls), %s\n", r.name, ms(slices.Max(r.imp.served)), len(r.imp.served), atMost(m, 1, "%.2f s"))
		}
		if x, med, ok := importRatios(r); ok {
			q, b := r.importing.res.Quiet, r.importing.res.Busy
			fmt.Fprintf(w, "- %s: redirect p99 unchanged during a bulk import (≤ 1.2× without): %s against %s, %.2f×, %s (the median of the rounds': %.2f×)\n",
				r.name, ms(b.Latency.P99), ms(q.Latency.P99), x, atMost(max(x, med), 1.2, "%.2f×"), med)
		}
	}
	for _, r := range stores {
		if r.cluster == nil || r.audit == nil {
			continue
		}
		verdict := "met"
		if !r.audit.OK() {
			verdict = "**missed** (the audit's problems above)"
		}
		fmt.Fprintf(w, "- %s: `make loadtest` has an audited cluster row: every person redirected and counted once over both edges: %s\n", r.name, verdict)
	}
}

package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/redisstore"
)

// memResult is Redis memory for dedupe over many unique visitors.
type memResult struct {
	visitors       int
	expected       uint64
	fp             float64
	bytes          float64 // used_memory after - before
	dataset        float64 // used_memory_dataset after - before: keys and values, no buffers
	bitmaps        float64 // MEMORY USAGE of the judge's checkpoint: its Bloom filters and counters
	perVisitor     float64 // bitmaps / visitors
	falsePositives int     // visitors the filters took for known
}

// memory commits n unique visitors of one campaign window to a fresh
// redis-server through clickgate's Redis store, sized as clickgate is by
// default (a million visitors per window, 0.1% false positives), and
// measures INFO memory.
func (l *loadtester) memory(n int) (*memResult, error) {
	rp, rdb, err := l.redis()
	if err != nil {
		return nil, err
	}
	defer rp.stop()
	defer rdb.Close()
	res := &memResult{visitors: n, expected: 1_000_000, fp: 0.001}
	params, err := counter.NewDedupeParams(res.expected, res.fp)
	if err != nil {
		return nil, err
	}
	params.Keying = "loadtest"
	ctx := l.ctx
	s, err := redisstore.Open(ctx, redisstore.Options{URL: "redis://" + rdb.Options().Addr, Params: params, Judge: true})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	before, beforeData := redisInfo(ctx, rdb, "used_memory"), redisInfo(ctx, rdb, "used_memory_dataset")
	now := time.Now()
	const batch = 1024
	visits := make([]counter.Visit, batch)
	out := make([]counter.Reason, batch)
	for done := 0; done < n; done += batch {
		for i := range visits {
			// Both keys of a new visitor, as the edge commits it.
			visits[i] = counter.Visit{Campaign: "memory", Creator: "creator", HasAlso: true, At: now.UnixMilli()}
			rand.Read(visits[i].Key[:])
			rand.Read(visits[i].Also[:])
			visits[i].Network = binary.LittleEndian.Uint64(visits[i].Also[:])
			visits[i].SetWindow(now, 24*time.Hour)
		}
		vs := visits[:min(batch, n-done)]
		if err := s.Commit(ctx, vs, out[:len(vs)]); err != nil {
			return nil, err
		}
	}
	days, err := s.Stats(ctx, "memory", "creator")
	if err != nil {
		return nil, err
	}
	res.falsePositives = n - int(counter.Total(days)[counter.Qualified])
	// Stopped, the judge writes its checkpoint and trims the log below it.
	s.StopJudges(ctx)
	res.bytes = redisInfo(ctx, rdb, "used_memory") - before
	res.dataset = redisInfo(ctx, rdb, "used_memory_dataset") - beforeData
	keys, err := rdb.Keys(ctx, "*:checkpoint").Result()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		b, err := rdb.MemoryUsage(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		res.bitmaps += float64(b)
	}
	res.perVisitor = res.bitmaps / float64(n)
	fmt.Fprintf(l.stderr, "%d visitors: used_memory +%.0f bytes, dataset +%.0f (%.2f per visitor), checkpoint %.0f; %d false positives\n",
		n, res.bytes, res.dataset, res.perVisitor, res.bitmaps, res.falsePositives)
	return res, nil
}

func commandOutput(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// machine describes where the run happened.
func machine(redisBin string) []string {
	cpu := "unknown"
	b, _ := os.ReadFile("/proc/cpuinfo")
	cpuinfo := "\n" + string(b)
	{
		for _, line := range strings.Split(cpuinfo, "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	cores := strings.Count(cpuinfo, "\nprocessor")
	return []string{
		fmt.Sprintf("CPU: %s, %d logical cores; memory %s", cpu, cores, mem),
		fmt.Sprintf("Linux %s, %s, %s", kernel, runtime.Version(), commandOutput(redisBin, "--version")),
	}
}

// microResult is the handler's Go benchmarks.
type microResult struct {
	command string
	lines   string
	allocs  map[string]int // benchmark name → allocs/op
}

// micro runs the handler benchmarks with the go tool, from the module
// this clickbench was run in; nil when it cannot.
func (l *loadtester) micro() *microResult {
	args := []string{"test", "-run", "^$", "-bench", "BenchmarkHandle", "-benchmem", "-cpu", "1", "-count", "1", "./redirect/"}
	out, err := exec.CommandContext(l.ctx, "go", args...).Output()
	if err != nil {
		fmt.Fprintf(l.stderr, "no handler benchmarks: go %s: %s\n", strings.Join(args, " "), err)
		return nil
	}
	m := &microResult{command: "go " + strings.Join(args, " "), allocs: map[string]int{}}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		m.lines += line + "\n"
		for i := range f {
			if n, err := strconv.Atoi(f[max(i-1, 0)]); err == nil && f[i] == "allocs/op" {
				m.allocs[f[0]] = n
			}
		}
	}
	return m
}

func (l *loadtester) report(w io.Writer, rows []*row, mem *memResult, micro *microResult, args string) {
	m := l.model
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "Generated by `make loadtest` (`clickbench loadtest %s`) on %s. Do not edit by hand: run it again.\n\n",
		args, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "## Machine\n\n")
	for _, s := range machine(l.redisBin) {
		fmt.Fprintf(w, "- %s\n", s)
	}
	pin := "not pinned"
	if l.cpus != "" {
		pin = fmt.Sprintf("the server and its redis-server pinned to CPU %s (`taskset -c %s`), the load generator to the other core(s)", l.cpus, l.cpus)
	}
	fmt.Fprintf(w, "- %s; everything on loopback\n\n", pin)

	fmt.Fprintf(w, "## Traffic\n\n")
	fmt.Fprintf(w, "`clickbench` sends the default campaign model: %d campaigns × %d creators × %d links; %d people behind each source address in 127.0.0.0/8 "+
		"(a new address per group, so every visitor is new), each with its own real browser User-Agent, clicking one link 1 to %d times (Zipf exponent %.2g: two thirds click once); "+
		"link popularity Zipf %.2g; %.0f%% of requests crawlers, %.0f%% link-preview fetchers, %.0f%% prefetches, %.0f%% HEAD, %.0f%% unknown codes. "+
		"Each address's requests share one keep-alive connection, and the browsers keep their visitor cookies.\n\n",
		m.Campaigns, m.CreatorsPerCampaign, m.LinksPerCreator, m.VisitorsPerAddress, m.MaxRepeats, m.RepeatSkew, m.LinkSkew,
		100*m.CrawlerShare, 100*m.PreviewShare, 100*m.PrefetchShare, 100*m.HeadShare, 100*m.UnknownShare)
	fmt.Fprintf(w, "All four designs run at once, each idle but for its turn. Each gets %s of warm-up, then a **closed loop** (%d connections as fast as they go) for the most it takes: "+
		"%s in all, in %d rounds that take turns with the other designs, so that a slow spell of this shared machine falls on all of them alike. "+
		"Then an **open loop** at half of that rate (%s, in rounds as well; latency measured from each request's due time, so a stall is not hidden). "+
		"clickgate runs with its defaults: every person's visit deduped and committed before the 302, and Redis with `appendonly yes`, `appendfsync everysec`.\n\n",
		l.warmup, l.conns, l.duration, l.rounds, l.duration)

	fmt.Fprintf(w, "## Results\n\n")
	fmt.Fprintf(w, "| design | closed loop req/s | × baseline | open loop req/s | p50 | p99 | p99.9 | CPU µs/req (edge + Redis) | allocs/req | Redis round trips/req | audit |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	base := rows[0].max.Throughput
	for _, r := range rows {
		cpu := fmt.Sprintf("%.1f", 1e6*r.perReq(r.cpuEdge))
		if r.redis {
			cpu = fmt.Sprintf("%.1f + %.1f", 1e6*r.perReq(r.cpuEdge), 1e6*r.perReq(r.cpuRedis))
		}
		allocs, trips := "n/a", "n/a"
		if r.mallocs >= 0 {
			allocs = fmt.Sprintf("%.1f", r.perReq(r.mallocs))
		}
		if r.roundTrips >= 0 {
			trips = fmt.Sprintf("%.3f", r.perReq(r.roundTrips))
		}
		audit := "—"
		if r.audit != nil {
			audit = "FAILED"
			if r.audit.OK() {
				audit = fmt.Sprintf("passed: %d of %d qualified", r.audit.Got.Qualified, r.audit.Expected.Qualified)
			}
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", r.name, r.max.Throughput, r.max.Throughput/base,
			r.open.Throughput, ms(r.open.Latency.P50), ms(r.open.Latency.P99), ms(r.open.Latency.P999), cpu, allocs, trips, audit)
	}
	fmt.Fprintf(w, "\nLatency is the open loop's, connecting included; in the closed loop:\n\n")
	for _, r := range rows {
		fmt.Fprintf(w, "- %s: p50 %s, p99 %s, p99.9 %s, max %s; %d errors in both loops; the open loop's own send lag p99 %s\n", r.name,
			ms(r.max.Latency.P50), ms(r.max.Latency.P99), ms(r.max.Latency.P999), ms(r.max.Latency.Max), r.max.Errors+r.open.Errors, ms(r.open.SendLag.P99))
	}
	fmt.Fprintf(w, "\nAllocations per request are the server process's heap allocations (`go_memstats_mallocs_total` of its `/metrics`) over the closed loop, divided by its requests; "+
		"CPU is the processes' user + system time from `/proc/PID/stat` over the closed loop. "+
		"Redis round trips per request are counted by the edge (`clickgate_redis_round_trips_total`; every naive request is one). "+
		"The audit compares each creator's counters, read through the admin API before and after all of the design's traffic, with what was sent and answered.\n\n")

	if mem != nil {
		fmt.Fprintf(w, "## Redis memory for dedupe\n\n")
		fmt.Fprintf(w, "%d unique visitors of one campaign window, two keys each (cookie and network, as the edge commits a new visitor), committed through clickgate's Redis store, with filters sized as by default (`--dedupe-expected %d --dedupe-fp %g`). "+
			"The dedupe state is the judge's checkpoint of the campaign's %d partition (its filters, sized for both keys of every visitor, and its counters), the log trimmed below it: `MEMORY USAGE` %.0f bytes, **%.2f bytes per unique visitor**. "+
			"INFO memory, before and after: `used_memory_dataset` grew %.0f bytes (%.2f per visitor; it also holds the counters and moves by ~100 KB between runs), "+
			"`used_memory` %.0f (%.2f, with client and AOF buffers). "+
			"%d visitors (%.4f%%) were taken for known (Bloom false positives).\n\n",
			mem.visitors, mem.expected, mem.fp, 1, mem.bitmaps, mem.bitmaps/float64(mem.visitors),
			mem.dataset, mem.dataset/float64(mem.visitors), mem.bytes, mem.bytes/float64(mem.visitors),
			mem.falsePositives, 100*float64(mem.falsePositives)/float64(mem.visitors))
	}

	fmt.Fprintf(w, "## Targets\n\n")
	find := func(name string) *row {
		for _, r := range rows {
			if strings.HasPrefix(r.name, name) {
				return r
			}
		}
		return nil
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	cg, naive := find("clickgate, Redis"), find("naive")
	ratio := cg.max.Throughput / base
	fmt.Fprintf(w, "- clickgate on Redis at ≥ 0.8× the baseline's requests/s: %.2f×, %s\n", ratio, verdict(ratio >= 0.8))
	ratio = cg.max.Throughput / naive.max.Throughput
	fmt.Fprintf(w, "- clickgate on Redis at ≥ 2× the naive design: %.2f×, %s\n", ratio, verdict(ratio >= 2))
	fmt.Fprintf(w, "- open loop at half of clickgate's maximum, p99 ≤ 2 ms: %s on Redis, %s embedded, %s\n", ms(cg.open.Latency.P99),
		ms(find("clickgate, embedded").open.Latency.P99), verdict(cg.open.Latency.P99 <= 2*time.Millisecond))
	if mem != nil {
		fmt.Fprintf(w, "- Redis memory for dedupe ≤ 2 bytes per unique visitor at 0.1%% false positives: %.2f (checkpoint; %.2f by `used_memory_dataset`), %s\n",
			mem.perVisitor, mem.dataset/float64(mem.visitors), verdict(mem.perVisitor <= 2))
	}
	audits := true
	for _, r := range rows {
		if r.audit != nil && !r.audit.OK() {
			audits = false
		}
	}
	fmt.Fprintf(w, "- audit at maximum load: zero missing or extra qualified visits beyond the Bloom bound: %s\n", verdict(audits))
	if micro == nil {
		fmt.Fprintf(w, "- handler: at most one allocation per request outside the commit queue: not measured in this run (`make bench`)\n\n")
	} else {
		nv, nvOK := micro.allocs["BenchmarkHandleNewVisitor"]
		hit, hitOK := micro.allocs["BenchmarkHandle/localHit"]
		fmt.Fprintf(w, "- handler: at most one allocation per request outside the commit queue: %d allocs/op for a new visitor, %d for a known one, %s\n\n",
			nv, hit, verdict(nvOK && hitOK && nv <= 1 && hit <= 1))
		fmt.Fprintf(w, "## Handler micro-benchmarks\n\n`%s`, pinned to the generator's core:\n\n```\n%s```\n\n", micro.command, micro.lines)
	}

	fmt.Fprintf(w, "## Reproduce\n\n")
	fmt.Fprintf(w, "```\nmake loadtest        # builds bin/clickgate and bin/clickbench, runs this and rewrites BENCHMARKS.md\nmake bench           # the Go micro-benchmarks\n```\n\n")
	fmt.Fprintf(w, "One design by hand, on the embedded store:\n\n```\n")
	fmt.Fprintf(w, "taskset -c 0 bin/clickgate serve --data /tmp/cg --admin-token $TOKEN &\n")
	fmt.Fprintf(w, "bin/clickbench seed --admin-token $TOKEN\n")
	fmt.Fprintf(w, "taskset -c 1 bin/clickbench run --audit --admin-token $TOKEN --connections %d --duration %s\n", l.conns, l.duration)
	fmt.Fprintf(w, "taskset -c 1 bin/clickbench run --audit --admin-token $TOKEN --rate R --duration %s   # open loop at R req/s\n```\n", l.duration)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

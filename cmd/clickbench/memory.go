package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

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
	before, beforeData := redisInfo(ctx, rdb, "used_memory"), dataset(ctx, rdb)
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
	res.dataset = dataset(ctx, rdb) - beforeData
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

// dataset returns Redis's used_memory_dataset, or NaN when it is more
// than used_memory: Redis 7.0 computes it as used_memory less its
// overhead, and printed it wrapped around below zero (18446744073708 TB)
// in one run, when the overhead it estimated was the larger.
func dataset(ctx context.Context, rdb *redis.Client) float64 {
	if d := redisInfo(ctx, rdb, "used_memory_dataset"); d <= redisInfo(ctx, rdb, "used_memory") {
		return d
	}
	return math.NaN()
}

// datasetText is d, bytes of used_memory_dataset, per n visitors.
func datasetText(d float64, n int) string {
	if math.IsNaN(d) {
		return "unknown: Redis reported a `used_memory_dataset` above its `used_memory`"
	}
	return fmt.Sprintf("%.0f bytes, %.2f per visitor", d, d/float64(n))
}

// write writes the report's section on Redis memory.
func (mem *memResult) write(w io.Writer) {
	fmt.Fprintf(w, "## Redis memory for dedupe\n\n")
	fmt.Fprintf(w, "%d unique visitors of one campaign window, two keys each (cookie and network, as the edge commits a new visitor), committed through clickgate's Redis store, with filters sized as by default (`--dedupe-expected %d --dedupe-fp %g`). "+
		"The dedupe state is the judge's checkpoint of the campaign's %d partition (its filters, sized for both keys of every visitor, and its counters), the log trimmed below it: `MEMORY USAGE` %.0f bytes, **%.2f bytes per unique visitor**. "+
		"INFO memory, before and after: `used_memory_dataset` grew %s; it also holds the counters and moves by ~100 KB between runs. "+
		"`used_memory` grew %.0f (%.2f, with client and AOF buffers). "+
		"%d visitors (%.4f%%) were taken for known (Bloom false positives).\n\n",
		mem.visitors, mem.expected, mem.fp, 1, mem.bitmaps, mem.bitmaps/float64(mem.visitors),
		datasetText(mem.dataset, mem.visitors), mem.bytes, mem.bytes/float64(mem.visitors),
		mem.falsePositives, 100*float64(mem.falsePositives)/float64(mem.visitors))
	// A Bloom filter with k = round(log2(1/fp)) hash functions, as the
	// judge's filters, takes -k/ln(1 - fp^(1/k)) bits a key.
	k := math.Round(-math.Log2(mem.fp))
	bloom := -k / math.Log1p(-math.Pow(mem.fp, 1/k))
	fmt.Fprintf(w, "Two keys per visitor put a floor under this: any filter of n keys at false-positive rate ε takes at least n·log2(1/ε) bits "+
		"(Carter, Floyd, Gill, Markowsky and Wegman, \"Exact and approximate membership testers\", 1978), %.2f bytes per visitor at ε = %g, "+
		"and a Bloom filter with %.0f hash functions %.2f: no filter holds both keys of a visitor in 2 bytes at that rate. "+
		"Only one key per visitor would: a visitor cookie derived from the network key instead of drawn at random, so that a new visitor's two keys are one. "+
		"clickgate does not do that: people who share an address and a User-Agent (a carrier's NAT, one phone's browser) would then share a cookie, "+
		"and be one visitor for every creator, not only on a first visit without a cookie, as now.\n\n",
		2*-math.Log2(mem.fp)/8, mem.fp, k, 2*bloom/8)
}

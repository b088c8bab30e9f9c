package judge

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

var (
	sinkReason counter.Reason
	sinkBytes  []byte
	sinkUint   uint32
)

// benchParams are the service's defaults over 16 partitions: a window's
// filter in one partition is sized for 2M keys, 1M visitors, since one
// creator may bring all of a campaign's.
var benchParams = Params{Expected: 1_000_000, FP: 0.001, Partitions: 16, VelocityMax: 30, VelocityWindow: 10 * time.Minute}

const benchBatch = 256

// benchVisitors returns n new visitors of 16 creators of one campaign in
// the window of t0, each with a cookie, its network key marked, and its
// own network in one of 16,384 blocks, 50 ms apart.
func benchVisitors(n int) []counter.Visit {
	r := rand.New(rand.NewPCG(7, 7))
	visits := make([]counter.Visit, n)
	for i := range visits {
		v := &visits[i]
		v.Campaign, v.Creator = "spring-2026", "creator-"+strconv.Itoa(i%16)
		binary.LittleEndian.PutUint64(v.Key[:8], r.Uint64())
		binary.LittleEndian.PutUint64(v.Key[8:], r.Uint64())
		binary.LittleEndian.PutUint64(v.Also[:8], r.Uint64())
		binary.LittleEndian.PutUint64(v.Also[8:], r.Uint64())
		v.HasAlso = true
		v.Network = r.Uint64()
		v.Block = 1 + r.Uint64()%16384
		v.At = t0 + int64(i)*50
		v.SetWindow(time.UnixMilli(t0), time.Hour)
	}
	return visits
}

// BenchmarkApply gives the cost of judging one visit, applied in batches
// of 256 (copying each visit into the batch included).
//
// new: every visit a new visitor. The partition's 62.5k visitors come in
// an hour, then the next hour's window starts and the last one expires:
// a window's filter, sized for 1M visitors, holds 6% of that, and one
// 3.4 MiB filter is allocated per 62.5k visitors.
//
// new/budgets: the same with the default budgets, 20 qualified visits a
// day per network and 300 per block, which the hourly cycles of the same
// networks reach: every network's budget holds the day's visits of 20 of
// them, and each of the 16,384 blocks about 3.8 per hour.
//
// new/layers: the same in filters sized for 7.8k visitors, an eighth of
// the hour's: each window grows to four layers (adding a layer included).
//
// repeat: every visit a visitor already in the window, each network
// visiting once per 52 minutes. repeat/layers: the same in a window of
// four layers, which a visitor's keys may be in any of.
func BenchmarkApply(b *testing.B) {
	n := int(benchParams.Expected / uint64(benchParams.Partitions))
	pool := benchVisitors(n)
	budgets := benchParams
	budgets.BudgetNetwork, budgets.BudgetBlock = 20, 300
	layers := benchParams
	layers.Expected = uint64(n / 8)
	// In order: each allocates a filter per hour of visits.
	b.Run("new", func(b *testing.B) { benchmarkNew(b, benchParams, pool) })
	b.Run("new/budgets", func(b *testing.B) { benchmarkNew(b, budgets, pool) })
	b.Run("new/layers", func(b *testing.B) { benchmarkNew(b, layers, pool) })
	b.Run("repeat", func(b *testing.B) { benchmarkRepeat(b, benchParams, pool) })
	b.Run("repeat/layers", func(b *testing.B) { benchmarkRepeat(b, layers, pool) })
}

// benchmarkRepeat applies the visitors of pool, all in one window, again
// and again.
func benchmarkRepeat(b *testing.B, p Params, pool []counter.Visit) {
	n := len(pool)
	j := mustNew(b, p)
	pool = slices.Clone(pool)
	for i := range pool {
		pool[i].Expires += 365 * 86400 // the window outlives the benchmark
	}
	out := make([]counter.Reason, n)
	j.Apply(pool, out)
	if p != benchParams {
		if f := j.Fill(); f[0].Layers != 4 {
			b.Fatalf("unexpected window; got %+v; want 4 layers", f)
		}
	}
	at := pool[n-1].At
	batch := make([]counter.Visit, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		m := min(benchBatch, b.N-i)
		for x := range batch[:m] {
			at += 50
			batch[x] = pool[(i+x)%n]
			batch[x].At = at
		}
		j.Apply(batch[:m], out[:m])
		i += m
	}
	b.StopTimer()
	if out[0] != counter.Duplicate {
		b.Fatalf("unexpected reason of a repeat visitor; got %s; want duplicates", out[0])
	}
}

// benchmarkNew applies the visitors of pool, whose n visitors fill a
// window, again every hour.
func benchmarkNew(b *testing.B, p Params, pool []counter.Visit) {
	n, hour := len(pool), int64(time.Hour/time.Millisecond)
	j := mustNew(b, p)
	batch := make([]counter.Visit, benchBatch)
	out := make([]counter.Reason, benchBatch)
	b.ReportAllocs()
	for i := 0; i < b.N; {
		m := min(benchBatch, b.N-i)
		for x := range batch[:m] {
			cycle := int64((i + x) / n)
			batch[x] = pool[(i+x)%n]
			batch[x].At += cycle * hour
			batch[x].Window += cycle * 3600
			batch[x].Expires += cycle * 3600
		}
		j.Apply(batch[:m], out[:m])
		i += m
	}
	sinkReason = out[0]
}

// benchJudge returns a judge of benchParams holding one window of 62.5k
// visitors (125k keys), their 62.5k networks and 16 creators' counters.
func benchJudge(b *testing.B) *Judge { return benchJudgeOf(b, benchParams) }

func benchJudgeOf(b *testing.B, p Params) *Judge {
	pool := benchVisitors(int(p.Expected / uint64(p.Partitions)))
	j := mustNew(b, p)
	j.Apply(pool, make([]counter.Reason, len(pool)))
	j.SetOffset([]byte("1778460000000-0"))
	return j
}

// benchCheckpointed are the judges whose checkpoints are measured: one with
// the velocity rule alone (its networks of the window), and one with both
// budgets too (the day's networks and blocks), as both stores' judges run
// by default; and at scale, 1M: a partition of the defaults' size whose
// 1M visitors, each its own network, came within one velocity window, so
// that the rule and the budgets hold 1M networks each.
func benchCheckpointed(b *testing.B, run func(b *testing.B, j *Judge)) {
	budgets := benchParams
	budgets.BudgetNetwork, budgets.BudgetBlock = 20, 300
	for name, p := range map[string]Params{"velocity": benchParams, "budgets": budgets} {
		b.Run(name, func(b *testing.B) { run(b, benchJudgeOf(b, p)) })
	}
	b.Run("1M", func(b *testing.B) {
		p := budgets
		p.Partitions = 1
		pool := benchVisitors(1_000_000)
		for i := range pool {
			pool[i].At = t0 + int64(i)/2 // 2 a millisecond: 500 s
		}
		j := mustNew(b, p)
		j.Apply(pool, make([]counter.Reason, len(pool)))
		j.SetOffset([]byte("1778460000000-0"))
		if j.vel.len() != len(pool) {
			b.Fatalf("unexpected networks; got %d; want %d", j.vel.len(), len(pool))
		}
		run(b, j)
	})
}

func BenchmarkMarshalBinary(b *testing.B) {
	benchCheckpointed(b, func(b *testing.B, j *Judge) {
		var size int
		b.ReportAllocs()
		for b.Loop() {
			cp, err := j.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			size = len(cp)
			sinkBytes = cp
		}
		b.ReportMetric(float64(size), "bytes")
	})
}

// BenchmarkClone copies the judges of BenchmarkMarshalBinary: what the
// embedded store's judge (and Stats) wait for at a checkpoint, against
// the marshalling they waited for before.
func BenchmarkClone(b *testing.B) {
	benchCheckpointed(b, func(b *testing.B, j *Judge) {
		b.ReportAllocs()
		for b.Loop() {
			sinkJudge = j.Clone()
		}
	})
}

var sinkJudge *Judge

func BenchmarkUnmarshalBinary(b *testing.B) {
	benchCheckpointed(b, func(b *testing.B, j *Judge) {
		cp := mustMarshal(b, j)
		k := mustNew(b, j.Params())
		b.ReportAllocs()
		for b.Loop() {
			if err := k.UnmarshalBinary(cp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPartition(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkUint = Partition("spring-2026", "creator-00042", 16)
	}
}

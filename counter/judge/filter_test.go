package judge

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

func TestFilterSize(t *testing.T) {
	f := func(n, fp float64, wantK int) {
		t.Helper()
		m, k := filterSize(n, fp)
		if k != wantK || math.Mod(m, 64) != 0 {
			t.Fatalf("unexpected size for %v keys at %v; got m=%v k=%d; want k=%d and m a multiple of 64", n, fp, m, k, wantK)
		}
		// The classic estimate of the rate at capacity: m is the
		// smallest multiple of 64 within fp.
		rate := func(m float64) float64 { return math.Pow(1-math.Exp(-float64(k)*n/m), float64(k)) }
		if rate(m) > fp || rate(m-64) <= fp {
			t.Fatalf("unexpected size for %v keys at %v; got m=%v k=%d, rate %v, and %v with 64 bits less; want the least m within %v", n, fp, m, k, rate(m), rate(m-64), fp)
		}
	}
	f(125_000, 0.001, 10)
	f(2_000_000, 0.001, 10)
	f(1_000, 0.01, 7)
	f(100, 0.1, 3)
	f(1e9, 1e-6, 20)
}

func TestLayerSizes(t *testing.T) {
	f := func(n, fp float64, wantLayers int) {
		t.Helper()
		sizes, err := layerSizes(n, fp)
		if err != nil {
			t.Fatalf("unexpected error for %v keys at %v: %s", n, fp, err)
		}
		if len(sizes) != wantLayers {
			t.Fatalf("unexpected layers for %v keys at %v; got %d; want %d", n, fp, len(sizes), wantLayers)
		}
		// The first layer is the filter of before layers.
		if m, k := filterSize(n, fp); sizes[0].m != uint64(m) || sizes[0].k != k {
			t.Fatalf("unexpected first layer for %v keys at %v; got %+v; want m=%v k=%d", n, fp, sizes[0], m, k)
		}
		var sum float64
		total := uint64(0)
		for i, sz := range sizes {
			// Sealed at its rate: one bit less is under it.
			rate := fp * math.Pow(tightening, float64(i))
			at := func(ones uint64) float64 { return math.Pow(float64(ones)/float64(sz.m), float64(sz.k)) }
			if at(sz.seal) < rate || at(sz.seal-1) >= rate*(1+1e-9) || sz.m%64 != 0 {
				t.Fatalf("unexpected layer %d for %v keys at %v; got %+v, rate %v when sealed; want %v", i, n, fp, sz, at(sz.seal), rate)
			}
			if i > 0 {
				if m, k := filterSize(n*math.Pow(growth, float64(i)), rate); sz.m != uint64(m) || sz.k != k {
					t.Fatalf("unexpected layer %d for %v keys at %v; got %+v; want m=%v k=%d", i, n, fp, sz, m, k)
				}
			}
			sum += rate
			total += sz.m
		}
		if sum >= 2*fp || total > maxFilterBits {
			t.Fatalf("unexpected layers for %v keys at %v; got rates summing to %v in %d bits; want under %v in 2^32", n, fp, sum, total, 2*fp)
		}
	}
	f(3200, 0.001, maxLayers)
	f(2_000_000, 0.001, maxLayers)
	f(100, 0.1, maxLayers)
	f(2, 0.5, maxLayers)
	// Layers stop short of 2^32 bits for the window.
	f(10_000_000, 0.001, 4)
	f(20_000_000, 0.001, 3)
	f(50_000_000, 0.001, 2)
	f(100_000_000, 0.001, 1)
}

// randomKeys returns a source of random keys.
func randomKeys(seed uint64) func() counter.VisitorKey {
	r := rand.New(rand.NewPCG(seed, seed))
	return func() (k counter.VisitorKey) {
		binary.LittleEndian.PutUint64(k[:8], r.Uint64())
		binary.LittleEndian.PutUint64(k[8:], r.Uint64())
		return k
	}
}

// newVisitors returns n new visitors of creator, each with two keys, from
// networks of their own, at t0 in a window of a day.
func newVisitors(creator string, n int, keys func() counter.VisitorKey) []counter.Visit {
	visits := make([]counter.Visit, n)
	for i := range visits {
		v := &visits[i]
		v.Campaign, v.Creator = "c1", creator
		v.Key, v.Also, v.HasAlso = keys(), keys(), true
		v.Network = binary.LittleEndian.Uint64(v.Key[8:])
		v.At = t0 + int64(i)
		v.SetWindow(time.UnixMilli(t0), 24*time.Hour)
	}
	return visits
}

// falsePositives is the most false positives of trials at a rate of at
// most fp that is plausible: the mean plus 5 standard deviations.
func falsePositives(trials int, fp float64) int {
	mean := float64(trials) * fp
	return int(mean + 5*math.Sqrt(mean*(1-fp)))
}

// TestFalseDuplicates fills a window with the Expected distinct visitors
// it was sized for, each marking two keys: the visitors judged
// duplicates, and the new keys the filter then holds, stay within FP.
func TestFalseDuplicates(t *testing.T) {
	p := Params{Expected: 1_000_000, FP: 0.001, Partitions: 16, VelocityWindow: 10 * time.Minute}
	if testing.Short() {
		p.Expected /= 10
	}
	j := mustNew(t, p)
	keys := randomKeys(11)
	n := int(p.Expected)
	visits := newVisitors("alice", n, keys)
	out := make([]counter.Reason, n)
	j.Apply(visits, out)
	dups := 0
	for _, r := range out {
		if r != counter.Qualified {
			dups++
		}
	}
	if dups > falsePositives(n, p.FP) {
		t.Fatalf("unexpected false duplicates among %d new visitors; got %d; want at most %d (rate %v)", n, dups, falsePositives(n, p.FP), p.FP)
	}
	// The window holds what it is sized for: a new key is found with
	// probability under FP.
	w := j.win.byKey[windowKey{"c1", visits[0].Window}]
	probes, hits := 4*n, 0
	for range probes {
		k := keys()
		if j.win.has(w, &k) {
			hits++
		}
	}
	if hits > falsePositives(probes, p.FP) {
		t.Fatalf("unexpected false positives of the full filter among %d new keys; got %d; want at most %d (rate %v)", probes, hits, falsePositives(probes, p.FP), p.FP)
	}
	f := j.Fill()[0]
	t.Logf("%d visitors, 2 keys each, in %d layers (%d bits, k=%d, first): %d false duplicates (%.5f); then %.5f of %d new keys found; estimated rate %.5f",
		n, f.Layers, j.win.sizes[0].m, j.win.sizes[0].k, dups, float64(dups)/float64(n), float64(hits)/float64(probes), probes, f.Rate)
}

// TestFlood is issue 12's flood: a window sized for 1,600 visitors, 4 ×
// 1,600 fake visitors of one creator (two keys each, as the edge marks
// Key and Also), then 1,000 real visitors of another creator of the
// campaign: their false duplicates are within the rate, since the
// window's filter grew layers. A filter that could not grow calls about
// half of them duplicates.
func TestFlood(t *testing.T) {
	p := Params{Expected: 1600, FP: 0.001, Partitions: 1, VelocityWindow: time.Minute}
	const real = 1000
	bound := int(3*p.FP*real) + 3
	flood := func(grow bool) (fakeDups, realDups int, f WindowFill) {
		j := mustNew(t, p)
		if !grow {
			j.win.sizes = j.win.sizes[:1]
		}
		keys := randomKeys(12)
		fakes := newVisitors("alice", 4*int(p.Expected), keys)
		out := make([]counter.Reason, len(fakes))
		j.Apply(fakes, out)
		for _, r := range out {
			if r != counter.Qualified {
				fakeDups++
			}
		}
		people := newVisitors("bob", real, keys)
		for i := range people {
			people[i].At += int64(len(fakes))
		}
		out = out[:real]
		j.Apply(people, out)
		for i, r := range out {
			if r != counter.Qualified {
				if r != counter.Duplicate {
					t.Fatalf("unexpected reason of real visitor %d; got %s; want qualified or duplicate", i, r)
				}
				realDups++
			}
		}
		return fakeDups, realDups, j.Fill()[0]
	}
	fakeDups, realDups, f := flood(true)
	t.Logf("with layers: %d of %d fakes and %d of %d real visitors judged duplicates; %d layers, %d bytes, newest %.3f full, estimated rate %.6f",
		fakeDups, 4*p.Expected, realDups, real, f.Layers, f.Bytes, f.Fill, f.Rate)
	if realDups > bound || f.Layers != 3 || f.Full || f.Rate > 2*p.FP {
		t.Fatalf("unexpected flood; got %d false duplicates of %d real visitors, %+v; want at most %d, 3 layers, a rate under %v",
			realDups, real, f, bound, 2*p.FP)
	}
	if fakeDups > falsePositives(4*int(p.Expected), p.FP) {
		t.Fatalf("unexpected false duplicates among the fakes; got %d; want at most %d", fakeDups, falsePositives(4*int(p.Expected), p.FP))
	}
	fakeDups, realDups, f = flood(false)
	t.Logf("without: %d of %d fakes and %d of %d real visitors judged duplicates; %d layer, %d bytes, %.3f full, estimated rate %.6f",
		fakeDups, 4*p.Expected, realDups, real, f.Layers, f.Bytes, f.Fill, f.Rate)
	if realDups <= bound {
		t.Fatalf("unexpected flood of a filter that cannot grow; got %d false duplicates of %d real visitors; want more than %d", realDups, real, bound)
	}
}

// TestFill: a window's layers are added as its newest is sealed, the rate
// stays under FP until the window has all its layers and the last is
// sealed (Full), and Fill and LayersAdded say so.
func TestFill(t *testing.T) {
	p := testParams
	p.Expected, p.VelocityMax, p.BudgetNetwork, p.BudgetBlock = 100, 0, 0, 0
	j := mustNew(t, p)
	sizes := j.win.sizes
	keys := randomKeys(13)
	layers, full := 1, false
	for i := range 20_000 {
		v := newVisitors("alice", 1, keys)[0]
		v.HasAlso = false
		j.Apply([]counter.Visit{v}, make([]counter.Reason, 1))
		fs := j.Fill()
		if len(fs) != 1 || fs[0].Campaign != "c1" || fs[0].Start != v.Window {
			t.Fatalf("unexpected windows %+v", fs)
		}
		f := fs[0]
		if f.Layers != layers {
			// A layer is added for the first key once the last is sealed.
			w := j.win.byKey[windowKey{"c1", v.Window}]
			if f.Layers != layers+1 || w.layers[layers-1].ones < sizes[layers-1].seal {
				t.Fatalf("unexpected layers after %d keys; got %d; want %d, one more once layer %d is sealed", i+1, f.Layers, layers, layers)
			}
			layers++
			if got := j.LayersAdded(); got != uint64(layers-1) {
				t.Fatalf("unexpected layers added after %d keys; got %d; want %d", i+1, got, layers-1)
			}
		}
		var bytes uint64
		for _, sz := range sizes[:layers] {
			bytes += sz.m / 8
		}
		if f.Bytes != bytes {
			t.Fatalf("unexpected bytes of %d layers; got %d; want %d", layers, f.Bytes, bytes)
		}
		if f.Full != full {
			if full || layers != len(sizes) || f.Fill < float64(sizes[layers-1].seal)/float64(sizes[layers-1].m) {
				t.Fatalf("unexpected Full after %d keys in %d layers, newest %.3f full", i+1, layers, f.Fill)
			}
			full = true
			t.Logf("full after %d keys in %d layers (%d bytes); rate %.6f", i+1, layers, f.Bytes, f.Rate)
		}
		// Until then the rate is under twice FP (under FP in the first
		// layer); the key that seals a layer may take it a little over
		// the layer's.
		if limit := p.FP * float64(min(layers, 2)) * 1.05; !full && f.Rate > limit {
			t.Fatalf("unexpected rate after %d keys in %d layers; got %v; want under %v", i+1, layers, f.Rate, limit)
		}
	}
	if !full || j.Fill()[0].Rate <= p.FP || j.Fill()[0].Fill <= FullAt {
		t.Fatalf("unexpected fill after 100 times the keys a window was sized for; got %+v; want full, past FP", j.Fill()[0])
	}
}

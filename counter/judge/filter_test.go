package judge

import (
	"encoding/binary"
	"math"
	"math/bits"
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

// contains reports whether key's bits are all set in w.
func contains(w *window, key *counter.VisitorKey, m uint64, k int) bool {
	h1 := fmix64(binary.LittleEndian.Uint64(key[:8]))
	h2 := fmix64(binary.LittleEndian.Uint64(key[8:])) | 1
	for range k {
		p, _ := bits.Mul64(h1, m)
		h1 += h2
		if w.bits[p>>6]&(1<<(p&63)) == 0 {
			return false
		}
	}
	return true
}

// TestFalseDuplicates fills one partition's filter with Expected /
// Partitions distinct visitors, each marking two keys: the visitors judged
// duplicates, and the new visitors a full filter would call duplicates,
// stay within FP.
func TestFalseDuplicates(t *testing.T) {
	p := Params{Expected: 1_600_000, FP: 0.001, Partitions: 16, VelocityMax: 30, VelocityWindow: 10 * time.Minute}
	if testing.Short() {
		p.Expected /= 10
	}
	j := mustNew(t, p)
	r := rand.New(rand.NewPCG(11, 12))
	randomKey := func() (k counter.VisitorKey) {
		binary.LittleEndian.PutUint64(k[:8], r.Uint64())
		binary.LittleEndian.PutUint64(k[8:], r.Uint64())
		return k
	}
	n := int(p.Expected / uint64(p.Partitions))
	visits := make([]counter.Visit, n)
	for i := range visits {
		v := &visits[i]
		v.Campaign, v.Creator = "c1", "alice"
		v.Key, v.Also, v.HasAlso = randomKey(), randomKey(), true
		v.Network = r.Uint64()
		v.At = t0 + int64(i)
		v.SetWindow(time.UnixMilli(t0), 24*time.Hour)
	}
	out := make([]counter.Reason, n)
	j.Apply(visits, out)

	// bound is the most false positives of trials at a rate of at most
	// fp that is plausible: the mean plus 5 standard deviations.
	bound := func(trials int, fp float64) int {
		mean := float64(trials) * fp
		return int(mean + 5*math.Sqrt(mean*(1-fp)))
	}
	dups := 0
	for _, r := range out {
		if r != counter.Qualified {
			dups++
		}
	}
	if dups > bound(n, p.FP) {
		t.Fatalf("unexpected false duplicates among %d new visitors; got %d; want at most %d (rate %v)", n, dups, bound(n, p.FP), p.FP)
	}
	// The filter now holds what it is sized for: a new visitor is called
	// a duplicate with probability FP.
	w := j.win.byKey[windowKey{"c1", visits[0].Window}]
	probes, hits := 4*n, 0
	for range probes {
		k := randomKey()
		if contains(w, &k, j.m, j.k) {
			hits++
		}
	}
	if hits > bound(probes, p.FP) {
		t.Fatalf("unexpected false positives of the full filter among %d new keys; got %d; want at most %d (rate %v)", probes, hits, bound(probes, p.FP), p.FP)
	}
	t.Logf("%d visitors, 2 keys each, in %d bits (k=%d): %d false duplicates (%.5f); full filter: %.5f of %d new keys",
		n, j.m, j.k, dups, float64(dups)/float64(n), float64(hits)/float64(probes), probes)
}

// TestFill: a filter filled with the keys it was sized for is about half
// full, and twice as many take it past FullAt.
func TestFill(t *testing.T) {
	p := testParams
	p.Expected, p.Partitions = 1000, 1
	j := mustNew(t, p)
	at := time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	add := func(from, n int) float64 {
		vs := make([]counter.Visit, n)
		for i := range vs {
			vs[i] = counter.Visit{Campaign: "spring", Creator: "alice", At: at.UnixMilli(), Network: uint64(from + i)}
			binary.LittleEndian.PutUint64(vs[i].Key[:], uint64(from+i)*0x9e3779b97f4a7c15)
			binary.LittleEndian.PutUint64(vs[i].Key[8:], uint64(from+i)*0xc2b2ae3d27d4eb4f)
			vs[i].SetWindow(at, 24*time.Hour)
		}
		j.Apply(vs, make([]counter.Reason, n))
		f := j.Fill()
		if len(f) != 1 || f[0].Campaign != "spring" || f[0].Start != vs[0].Window {
			t.Fatalf("unexpected windows %+v", f)
		}
		return f[0].Fill
	}
	// Sized for 2 × 1000 keys: 2000 visits of one key each.
	if f := add(0, 2000); f < 0.4 || f > FullAt+0.02 {
		t.Fatalf("unexpected fill at capacity; got %.3f; want about %.1f", f, FullAt)
	}
	if f := add(2000, 2000); f <= FullAt+0.1 {
		t.Fatalf("unexpected fill at twice the capacity; got %.3f; want well over %.1f", f, FullAt)
	}
}

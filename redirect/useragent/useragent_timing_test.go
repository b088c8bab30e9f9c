package useragent

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// UAs the benchmarks and the allocation test classify, one per kind of
// work: a desktop browser reads the whole UA and finds nothing, an in-app
// browser finds a marker (and "Google" tokens on a Pixel), a bot finds a
// crawler literal, and a random 1 KiB string is the longest plausible scan.
var (
	benchDesktop = []byte("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36")
	benchInApp   = []byte("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240905.003; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.58 Mobile Safari/537.36 Instagram 355.1.0.44.103 Android (34/14; 420dpi; 1080x2205; Google/google; Pixel 8; shiba; shiba; en_US; 658190016)")
	benchBot     = []byte("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.7390.122 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
	benchRandom  = randomUA(1024, 1)
)

// randomUA returns n printable ASCII bytes: no control byte, so the
// implausibility rules do not cut the scan short.
func randomUA(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(' ' + r.IntN('~'-' '+1))
	}
	return b
}

var benchSink atomic.Uint64

func benchmarkClassify(b *testing.B, ua []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(ua)))
	b.RunParallel(func(pb *testing.PB) {
		var n uint64
		for pb.Next() {
			n += uint64(Classify(ua))
		}
		benchSink.Add(n)
	})
}

func BenchmarkClassifyDesktop(b *testing.B) { benchmarkClassify(b, benchDesktop) }
func BenchmarkClassifyInApp(b *testing.B)   { benchmarkClassify(b, benchInApp) }
func BenchmarkClassifyBot(b *testing.B)     { benchmarkClassify(b, benchBot) }
func BenchmarkClassifyRandom(b *testing.B)  { benchmarkClassify(b, benchRandom) }

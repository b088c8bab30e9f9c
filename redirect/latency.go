package redirect

import (
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
)

// Timed returns h observing the latency of every redirect (a 302) it
// answers in clickgate_redirect_duration_seconds: from the time fasthttp
// read the request (RequestCtx.Time, read once per request by fasthttp
// anyway) to the handler's return. It costs one clock read and three
// atomic adds per request, on one of several shards, no lock
// (BenchmarkTimed, -cpu 1,2,4).
func Timed(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		h(ctx)
		if ctx.Response.StatusCode() == fasthttp.StatusFound {
			redirectLatency.observe(time.Since(ctx.Time()))
		}
	}
}

var redirectLatency = newLatency(counter.DurationBuckets)

func init() {
	metrics.RegisterMetricsWriter(func(w io.Writer) {
		redirectLatency.write(w, "clickgate_redirect_duration_seconds")
	})
}

// latency is a Prometheus histogram of durations that many goroutines
// update at once. VictoriaMetrics' PrometheusHistogram takes one mutex per
// update; this one spreads updates over shards picked at random, each a
// few cache lines of atomic counters, and sums them when scraped.
type latency struct {
	bounds []int64 // upper bounds in nanoseconds
	le     []string
	shards [latencyShards]latencyShard
}

const latencyShards = 16

type latencyShard struct {
	counts [maxLatencyBuckets + 1]atomic.Uint64 // the last one is +Inf
	sum    atomic.Int64                         // nanoseconds
	_      [192 - 8*(maxLatencyBuckets+2)]byte  // 3 cache lines: no false sharing between shards
}

const maxLatencyBuckets = 16

func newLatency(bounds []float64) *latency {
	if len(bounds) > maxLatencyBuckets {
		panic("BUG: too many latency buckets")
	}
	l := &latency{}
	for _, b := range bounds {
		l.bounds = append(l.bounds, int64(math.Round(b*1e9)))
		l.le = append(l.le, strconv.FormatFloat(b, 'g', -1, 64))
	}
	return l
}

func (l *latency) observe(d time.Duration) {
	s := &l.shards[rand.Uint32()%latencyShards]
	i := 0
	for i < len(l.bounds) && int64(d) > l.bounds[i] {
		i++
	}
	if i == len(l.bounds) {
		i = maxLatencyBuckets
	}
	s.counts[i].Add(1)
	s.sum.Add(int64(d))
}

// write writes the histogram in the Prometheus text format, with its
// TYPE and a bare HELP (the admin API fills in the text).
func (l *latency) write(w io.Writer, name string) {
	var counts [maxLatencyBuckets + 1]uint64
	var sum int64
	for i := range l.shards {
		s := &l.shards[i]
		for j := range s.counts {
			counts[j] += s.counts[j].Load()
		}
		sum += s.sum.Load()
	}
	metrics.WriteMetadataIfNeeded(w, name, "histogram")
	var b []byte
	var cum uint64
	for i, le := range l.le {
		cum += counts[i]
		b = append(b, name...)
		b = append(b, `_bucket{le="`...)
		b = append(b, le...)
		b = append(b, `"} `...)
		b = strconv.AppendUint(b, cum, 10)
		b = append(b, '\n')
	}
	cum += counts[maxLatencyBuckets]
	b = append(b, name...)
	b = append(b, `_bucket{le="+Inf"} `...)
	b = strconv.AppendUint(b, cum, 10)
	b = append(b, '\n')
	b = append(b, name...)
	b = append(b, "_sum "...)
	b = strconv.AppendFloat(b, float64(sum)/1e9, 'g', -1, 64)
	b = append(b, '\n')
	b = append(b, name...)
	b = append(b, "_count "...)
	b = strconv.AppendUint(b, cum, 10)
	b = append(b, '\n')
	w.Write(b)
}

package counter

import (
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// DurationBuckets are the upper bounds, in seconds, of the Prometheus
// histograms of durations on the counting path (a commit, a redirect): from
// a Redis round trip (about 100 us) to a commit that timed out (5 s).
var DurationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
}

var (
	checkpointDuration = metrics.NewPrometheusHistogramExt(`clickgate_judge_checkpoint_seconds`, DurationBuckets)
	checkpointSize     = metrics.NewPrometheusHistogramExt(`clickgate_judge_checkpoint_bytes`, checkpointBuckets)
)

// checkpointBuckets are the upper bounds, in bytes, of the histogram of
// checkpoints' sizes: from a judge that has seen a few visitors to one of
// many campaigns' windows, filled (a window's filters at the defaults
// take 3.4 MiB, with all their layers 140 MiB).
var checkpointBuckets = []float64{1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28, 1 << 30}

// CheckpointTaken records, for /metrics, a judge's checkpoint of size
// bytes that took d: the copy of the judge (the embedded store), its
// marshalling and its write. Both stores call it. A checkpoint grows with
// the judge's state, and its CPU is taken on the cores the redirects
// share.
func CheckpointTaken(d time.Duration, size int) {
	checkpointDuration.Update(d.Seconds())
	checkpointSize.Update(float64(size))
}

// Tallied returns every click this Recorder tallied since it was made, by
// reason: the clicks decided at the edge (duplicates answered by the local
// filter, bots, previews, prefetches, velocity, out of window, inactive,
// uncounted), whether or not they have been added to the store yet. Visits
// are not in it: the store's judge decides them. It is for /metrics: it
// reads the tally at the time of the call, so the hot path does no work
// for it.
func (r *Recorder) Tallied() Counts { return r.tally.total() }

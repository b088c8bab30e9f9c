package counter

// DurationBuckets are the upper bounds, in seconds, of the Prometheus
// histograms of durations on the counting path (a commit, a redirect): from
// a Redis round trip (about 100 us) to a commit that timed out (5 s).
var DurationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
}

// Tallied returns every click this Recorder tallied since it was made, by
// reason: the clicks decided at the edge (duplicates answered by the local
// filter, bots, previews, prefetches, velocity, out of window, inactive,
// uncounted), whether or not they have been added to the store yet. Visits
// are not in it: the store's judge decides them. It is for /metrics: it
// reads the tally at the time of the call, so the hot path does no work
// for it.
func (r *Recorder) Tallied() Counts { return r.tally.total() }

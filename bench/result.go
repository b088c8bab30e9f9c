package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are percentiles of the latency of the answered requests.
type Latencies struct {
	P50, P90, P99, P999, Max time.Duration
}

// KindResult is what became of the requests of one kind.
type KindResult struct {
	Sent int64 `json:"sent"`
	// OK got the expected answer: 302 with a Location (200 for previews,
	// 404 for unknown codes).
	OK int64 `json:"ok"`
	// Unexpected got another status; Errors got none (a transport error
	// or a timeout).
	Unexpected int64 `json:"unexpected"`
	Errors     int64 `json:"errors"`
}

// Expected is what clickgate should have counted for one creator, from
// what was sent and what came back.
type Expected struct {
	Qualified  int64 `json:"qualified"`
	Duplicates int64 `json:"duplicates"`
	Bots       int64 `json:"bots"`
	Previews   int64 `json:"previews"`
	Prefetches int64 `json:"prefetches"`
	// Fraud is the fraudsters' clicks that were redirected: each is
	// counted once, qualified (paid) at most as the budgets allow.
	Fraud int64 `json:"fraud,omitempty"`
	// Unsure are requests whose fate is unknown (no answer): the server
	// may or may not have counted them.
	Unsure int64 `json:"unsure"`
}

func (e *Expected) add(o *Expected) {
	e.Qualified += o.Qualified
	e.Duplicates += o.Duplicates
	e.Bots += o.Bots
	e.Previews += o.Previews
	e.Prefetches += o.Prefetches
	e.Fraud += o.Fraud
	e.Unsure += o.Unsure
}

// Result is the outcome of a run.
type Result struct {
	Loop        string        `json:"loop"` // "closed" or "open"
	Connections int           `json:"connections"`
	Rate        float64       `json:"target_rate,omitempty"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	Requests    int64         `json:"requests"` // answered
	Errors      int64         `json:"errors"`   // not answered
	Sessions    int64         `json:"sessions"`
	Throughput  float64       `json:"requests_per_second"`
	Latency     Latencies     `json:"latency_ns"`
	// SendLag is how late the open loop sent requests after they were due:
	// the generator's own delay, included in Latency.
	SendLag Latencies             `json:"send_lag_ns"`
	Kinds   map[string]KindResult `json:"kinds"`
	Creator []Expected            `json:"-"` // by creator index
	// Fraud is what each fraudster's session sent, to bound what it may
	// be paid (MergeFraud sums a /24's).
	Fraud []FraudBlock `json:"fraud,omitempty"`
	// Busy and Quiet are the answered requests that LoadOptions.Busy put
	// on each side: only their Requests, Latency and SendLag are set.
	Busy  *Result                 `json:"busy,omitempty"`
	Quiet *Result                 `json:"quiet,omitempty"`
	hist  *hdrhistogram.Histogram // latency in µs
	lag   *hdrhistogram.Histogram // send lag in µs, open loop
}

// People returns the Person requests and those that were not redirected.
func (r *Result) People() (sent, notRedirected int64) {
	p := r.Kinds[Person.String()]
	return p.Sent, p.Sent - p.OK
}

// NewVisitors returns the Person requests that were a person's first click
// and were redirected.
func (r *Result) NewVisitors() int64 {
	var n int64
	for i := range r.Creator {
		n += r.Creator[i].Qualified
	}
	return n
}

// newHist is a latency histogram: 1 µs to 60 s, 3 significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

func latencies(h *hdrhistogram.Histogram) Latencies {
	return Latencies{us(h.ValueAtQuantile(50)), us(h.ValueAtQuantile(90)), us(h.ValueAtQuantile(99)), us(h.ValueAtQuantile(99.9)), us(h.Max())}
}

func (l *loader) result(elapsed time.Duration) *Result {
	m := l.o.Generator.Model()
	r := &Result{Loop: "closed", Connections: l.o.Connections, Rate: l.o.Rate, Elapsed: elapsed,
		Sessions: int64(l.sessions.Load()), Kinds: map[string]KindResult{}, Creator: make([]Expected, m.Creators()), hist: newHist()}
	if l.o.Rate > 0 {
		r.Loop = "open"
	}
	lag := newHist()
	r.lag = lag
	var kinds [numKinds]KindResult
	for _, w := range l.workers {
		r.hist.Merge(w.hist)
		lag.Merge(w.lag)
		for k := range kinds {
			kinds[k].Sent += w.kinds[k].Sent
			kinds[k].OK += w.kinds[k].OK
			kinds[k].Unexpected += w.kinds[k].Unexpected
			kinds[k].Errors += w.kinds[k].Errors
		}
		for i := range w.creators {
			r.Creator[i].add(&w.creators[i])
		}
		r.Fraud = append(r.Fraud, w.fraud...)
	}
	for k := range kinds {
		r.Kinds[Kind(k).String()] = kinds[k]
		r.Errors += kinds[k].Errors
	}
	r.Requests = r.hist.TotalCount()
	r.Throughput = float64(r.Requests) / elapsed.Seconds()
	r.Latency = latencies(r.hist)
	if l.o.Rate > 0 {
		r.SendLag = latencies(lag)
	}
	if l.o.Busy != nil {
		r.Quiet, r.Busy = &Result{hist: newHist(), lag: newHist()}, &Result{hist: newHist(), lag: newHist()}
		for _, w := range l.workers {
			for side, s := range []*Result{r.Quiet, r.Busy} {
				s.hist.Merge(w.split[side][0])
				s.lag.Merge(w.split[side][1])
			}
		}
		for _, s := range []*Result{r.Quiet, r.Busy} {
			s.Requests, s.Latency, s.SendLag = s.hist.TotalCount(), latencies(s.hist), latencies(s.lag)
		}
	}
	return r
}

// Merge returns the sum of runs of the same model: one audit over all of
// them, or one loop run in several rounds (latency over all requests,
// throughput over the time spent in them).
func Merge(runs ...*Result) *Result {
	sum := &Result{Kinds: map[string]KindResult{}, hist: newHist()}
	lag := newHist()
	for _, r := range runs {
		sum.Loop, sum.Connections, sum.Rate = r.Loop, r.Connections, r.Rate
		sum.Elapsed += r.Elapsed
		sum.Sessions += r.Sessions
		if r.hist != nil {
			sum.hist.Merge(r.hist)
		}
		if r.lag != nil {
			lag.Merge(r.lag)
		}
		if sum.Creator == nil {
			sum.Creator = make([]Expected, len(r.Creator))
		}
		for i := range r.Creator {
			sum.Creator[i].add(&r.Creator[i])
		}
		sum.Fraud = append(sum.Fraud, r.Fraud...)
		for k, v := range r.Kinds {
			s := sum.Kinds[k]
			s.Sent, s.OK, s.Unexpected, s.Errors = s.Sent+v.Sent, s.OK+v.OK, s.Unexpected+v.Unexpected, s.Errors+v.Errors
			sum.Kinds[k] = s
		}
		sum.Requests += r.Requests
		sum.Errors += r.Errors
	}
	if sum.Elapsed > 0 {
		sum.Throughput = float64(sum.Requests) / sum.Elapsed.Seconds()
	}
	sum.Latency, sum.SendLag = latencies(sum.hist), latencies(lag)
	var quiet, busy []*Result
	for _, r := range runs {
		if r.Busy != nil {
			quiet, busy = append(quiet, r.Quiet), append(busy, r.Busy)
		}
	}
	if busy != nil {
		sum.Quiet, sum.Busy = Merge(quiet...), Merge(busy...)
	}
	return sum
}

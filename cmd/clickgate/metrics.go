package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/disk"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/payout"
)

// serveMetrics registers the figures of one serve that no package counts
// on its own: the build, the free space of the data directory's file
// system, and the clicks by reason, read from the recorder's tally and the
// judges when scraped. It returns the function that unregisters them.
func serveMetrics(rec *counter.Recorder, data string) (unregister func()) {
	s := metrics.NewSet()
	s.RegisterMetricsWriter(func(w io.Writer) {
		metrics.WriteMetadataIfNeeded(w, "clickgate_build_info", "gauge")
		fmt.Fprintf(w, "clickgate_build_info{version=%q,goversion=%q} 1\n", version, runtime.Version())
		if free, err := disk.Free(data); err == nil {
			metrics.WriteMetadataIfNeeded(w, "clickgate_data_free_bytes", "gauge")
			fmt.Fprintf(w, "clickgate_data_free_bytes %d\n", free)
		}
		clicks := rec.Tallied()
		decided := judge.Decided()
		clicks.Add(&decided)
		metrics.WriteMetadataIfNeeded(w, "clickgate_clicks_total", "counter")
		for r, n := range clicks {
			if counter.Reason(r) != counter.Signup {
				fmt.Fprintf(w, "clickgate_clicks_total{reason=%q} %d\n", counter.Reason(r), n)
			}
		}
	})
	metrics.RegisterSet(s)
	return func() { metrics.UnregisterSet(s, true) }
}

// flushMetrics are the figures of a node's flusher: its flushes, and each
// campaign's payout standing in the ledger as of the last one. They exist
// only on the node that flushes.
type flushMetrics struct {
	set       *metrics.Set
	ok, fail  *metrics.Counter
	behind    *metrics.Counter
	sealed    *metrics.Counter
	duration  *metrics.PrometheusHistogram
	lastFlush atomic.Int64 // Unix nanoseconds of the last flush that succeeded
	lastSeq   atomic.Uint64
	standings atomic.Pointer[[]standing]
	log       *slog.Logger
}

// standing is a campaign's payout standing, computed after each flush.
type standing struct {
	campaign     string
	sealed       bool
	payableAfter time.Time
	cents        int64
	creators     map[string]int // by payout row status
}

// flushBuckets: a flush reads every creator's totals, milliseconds to
// tens of seconds for a large catalog on Redis.
var flushBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60}

func newFlushMetrics(log *slog.Logger) *flushMetrics {
	s := metrics.NewSet()
	m := &flushMetrics{set: s, log: log,
		ok:       s.NewCounter(`clickgate_ledger_flushes_total{result="ok"}`),
		fail:     s.NewCounter(`clickgate_ledger_flushes_total{result="error"}`),
		behind:   s.NewCounter(`clickgate_ledger_behind_total`),
		sealed:   s.NewCounter(`clickgate_ledger_statements_sealed_total`),
		duration: s.NewPrometheusHistogramExt(`clickgate_ledger_flush_duration_seconds`, flushBuckets),
	}
	s.NewGauge(`clickgate_ledger_last_flush_timestamp_seconds`, func() float64 {
		return float64(m.lastFlush.Load()) / 1e9
	})
	s.NewGauge(`clickgate_ledger_last_seq`, func() float64 { return float64(m.lastSeq.Load()) })
	s.RegisterMetricsWriter(m.writeStandings)
	metrics.RegisterSet(s)
	return m
}

func (m *flushMetrics) unregister() { metrics.UnregisterSet(m.set, true) }

// flushed records one flush that started at start, and with rep the
// ledger after it, each campaign's standing.
func (m *flushMetrics) flushed(start time.Time, res ledger.FlushResult, err error, rep ledger.Report) {
	m.duration.UpdateDuration(start)
	m.behind.Add(len(res.Behind))
	m.sealed.Add(len(res.Sealed.Statements))
	if err != nil {
		m.fail.Inc()
		return
	}
	m.ok.Inc()
	m.lastFlush.Store(time.Now().UnixNano())
	m.standing(rep)
}

// standing computes each campaign's standing from rep.
func (m *flushMetrics) standing(rep ledger.Report) {
	m.lastSeq.Store(rep.LastSeq)
	var all []standing
	for id, t := range rep.Campaigns {
		st, err := rep.Standing(id)
		if err != nil {
			m.log.Error("cannot compute the standing of a campaign for /metrics", "campaign", id, "err", err)
			continue
		}
		s := standing{campaign: id, sealed: st.Statement == payout.Final, payableAfter: t.PayableAfter,
			cents: st.TotalCents, creators: map[string]int{}}
		for _, r := range st.Rows {
			s.creators[r.Status]++
		}
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b standing) int { return cmp.Compare(a.campaign, b.campaign) })
	m.standings.Store(&all)
}

// payoutStatuses are the statuses of a payout row, each written for every
// campaign so that a status that drops to none shows as 0.
var payoutStatuses = []string{payout.StatusPayable, payout.StatusInvited, payout.StatusSuspended, payout.StatusIneligibleCountry}

func (m *flushMetrics) writeStandings(w io.Writer) {
	p := m.standings.Load()
	if p == nil || len(*p) == 0 {
		return
	}
	all := *p
	family := func(name string, value func(s *standing) string) {
		metrics.WriteMetadataIfNeeded(w, name, "gauge")
		for i := range all {
			fmt.Fprintf(w, "%s{campaign=%q} %s\n", name, all[i].campaign, value(&all[i]))
		}
	}
	family("clickgate_campaign_payable", func(s *standing) string {
		if s.sealed {
			return "1"
		}
		return "0"
	})
	family("clickgate_campaign_payable_after_timestamp_seconds", func(s *standing) string {
		return strconv.FormatInt(s.payableAfter.Unix(), 10)
	})
	family("clickgate_campaign_earned_cents", func(s *standing) string { return strconv.FormatInt(s.cents, 10) })
	metrics.WriteMetadataIfNeeded(w, "clickgate_campaign_creators", "gauge")
	for i := range all {
		for _, st := range payoutStatuses {
			fmt.Fprintf(w, "clickgate_campaign_creators{campaign=%q,status=%q} %d\n", all[i].campaign, st, all[i].creators[st])
		}
	}
}

// redisLogger passes go-redis's own messages (dial failures, pool
// errors) to the process's slog logger.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "component", "go-redis")
}

// setRedisLogger makes go-redis log through log. go-redis has one logger
// per process.
func setRedisLogger(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

// storeReady answers /readyz for store: its ping within the check's
// timeout (Redis answers; the embedded store's visit log takes visits).
func storeReady(store counter.Store) func(ctx context.Context) error {
	if p, ok := store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping
	}
	return nil
}

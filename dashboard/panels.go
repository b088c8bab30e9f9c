package dashboard

import (
	"html/template"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
)

// A campaign page's panels beside its figures: the fraud signals, and
// where the campaign stands in this node's ledger.

// fraudRow is one day's refusals of the click-rate rules.
type fraudRow struct {
	Day      counter.Day
	Velocity int64 // clicks of a network over --velocity-max in its window
	Budget   int64 // visits of a network past its daily share
	// Share is the refusals per 1,000 clicks of the day.
	Share int64
}

// fraudPanel is a campaign's velocity and budget refusals, by day, from
// the counters by reason.
type fraudPanel struct {
	Rows             []fraudRow
	Velocity, Budget int64
	Chart            template.HTML
}

// fraudOf returns the fraud panel of a campaign's counts by day: the days
// with any refusal, latest first.
func fraudOf(campaign string, days []counter.DayCounts) fraudPanel {
	var p fraudPanel
	for i := len(days) - 1; i >= 0; i-- {
		d := days[i]
		v, b := d.Counts[counter.Velocity], d.Counts[counter.Budget]
		if v == 0 && b == 0 {
			continue
		}
		r := fraudRow{Day: d.Day, Velocity: v, Budget: b}
		if n := d.Counts.Clicks(); n > 0 {
			r.Share = (v + b) * 1000 / n
		}
		p.Rows = append(p.Rows, r)
		p.Velocity += v
		p.Budget += b
	}
	if len(p.Rows) > 0 {
		ch := Chart{Title: "Velocity and budget refusals per day, campaign " + campaign, Days: dayRange(days)}
		for _, r := range []counter.Reason{counter.Velocity, counter.Budget} {
			s, _ := seriesOf(r, ch.Days, days)
			ch.Series = append(ch.Series, s)
		}
		p.Chart = ch.SVG()
	}
	return p
}

// ledgerPanel is where a campaign stands in this node's ledger.
type ledgerPanel struct {
	// Kept is false when this node keeps no ledger.
	Kept bool
	// LastFlush is the last flush that succeeded, NextFlush the next one
	// due; zero when not known.
	LastFlush, NextFlush time.Time
	// LastRecord is the time of the ledger's last record, LastSeq its
	// number, Head its hash.
	LastRecord time.Time
	LastSeq    uint64
	Head       string
	// InLedger is whether the campaign's terms are in the ledger.
	InLedger bool
	// Statement is the statement's status: sealed, due at the next
	// flush, or not payable before PayableAfter.
	Statement    string
	Sealed       bool
	SealedCents  int64
	SealedRows   int
	SealedHead   string
	PayableAfter time.Time
}

// Flushes is what a ledger that flushes on a schedule tells of it (the
// node's flusher).
type Flushes interface {
	LastFlush() time.Time
	NextFlush() time.Time
}

// ledgerOf returns campaign c's ledger panel from rep, this node's ledger
// as it stands (nil when it keeps none).
func (s *Server) ledgerOf(c counter.Campaign, rep *ledger.Report) ledgerPanel {
	p := ledgerPanel{PayableAfter: c.PayableAfter()}
	if rep == nil {
		p.Statement = "this node keeps no ledger: see the node that flushes"
		return p
	}
	p.Kept = true
	if f, ok := s.o.Ledger.(Flushes); ok {
		p.LastFlush, p.NextFlush = f.LastFlush(), f.NextFlush()
	}
	p.LastRecord, p.LastSeq, p.Head = rep.LastAt, rep.LastSeq, rep.Head
	_, p.InLedger = rep.Campaigns[c.ID]
	now := s.o.Now()
	switch st, ok := rep.Statements[c.ID]; {
	case ok:
		p.Sealed, p.SealedCents, p.SealedRows, p.SealedHead = true, st.TotalCents, len(st.Rows), st.LedgerHead
		p.Statement = "sealed: the final statement, which never changes"
	case !now.After(c.PayableAfter()):
		p.Statement = "not payable yet: sealed at the first flush after " + c.PayableAfter().UTC().Format(time.RFC3339)
	default:
		p.Statement = "payable: sealed at the next flush"
	}
	return p
}

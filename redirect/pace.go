package redirect

import (
	"context"
	"time"
)

// Pacer paces the steps of a bulk import, and the link table's reading of
// its changes, so that the redirects, which share the cores, keep most of
// them (unpaced, an import's decoding, its writes and their refresh took
// 10-50 ms at a time). After each step it waits ImportIdle times as long
// as the step took, but never past the step's slot, PaceSlot after the
// step began: a node busy enough to slow the steps down slows the import
// down only to a step a slot.
//
// A redirect's queueing delay grows as 1/(1-load): with the redirects at
// about three quarters of a core (embedded store, one core, 22,000 req/s,
// imports back to back, alternating runs), imports paced to a quarter of
// the time multiplied the redirects' p99 by 1.8-6.9 (median 3.3), to a
// tenth by 1.2-2.7 (median 1.9). A twentieth alone, without the slot,
// let a node saturated by redirects slow an import of 10,000 links down
// to 13.6 s (make loadtest, Redis).
type Pacer struct{ start time.Time }

const (
	// ImportIdle is how long a Pacer waits after a step, in steps.
	ImportIdle = 19
	// PaceSlot is the longest a step and its wait take together: an
	// import of 10,000 links (79 steps of decoding, 40 of writing and 10
	// of encoding its answer, see admin's decodeChunk, bulkChunk and
	// answerChunk) then takes at most 12.9 s while its steps take less
	// than a slot each; under make loadtest's open loop a call took about
	// 4 to 6.3 s.
	PaceSlot = 100 * time.Millisecond
)

// NewPacer returns a Pacer whose first step begins now.
func NewPacer() *Pacer { return &Pacer{start: time.Now()} }

// Wait waits after the step that began at the last Wait, or until ctx is
// done, and reports whether it waited; the next step begins on its return.
func (p *Pacer) Wait(ctx context.Context) bool {
	t := time.NewTimer(paceWait(time.Since(p.start)))
	defer t.Stop()
	select {
	case <-t.C:
		p.start = time.Now()
		return true
	case <-ctx.Done():
		return false
	}
}

// paceWait is how long a Pacer waits after a step that took step.
func paceWait(step time.Duration) time.Duration {
	return max(0, min(ImportIdle*step, PaceSlot-step))
}

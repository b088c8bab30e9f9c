package counter

// The tally side of the Recorder: clicks that need no dedupe (bots,
// previews, duplicates the local filter knows, visits lost) are counted
// in memory and added to the store every FlushInterval, and before Stats.

import (
	"context"
	"errors"
	"time"
)

// Note tallies one click of reason r that needs no dedupe, on link (a
// code, or "" when the click has none) of creator. It does not allocate
// once the key has been seen in the current flush interval.
func (r *Recorder) Note(campaign, creator, link string, day Day, reason Reason) {
	r.tally.add(tallyKey{campaign, creator, link, day, reason}, 1)
}

// Flush waits until every visit recorded before the call is committed,
// spooled or lost, then adds the tallied counts to the store. Counts that
// fail stay tallied for the next Flush.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	wait := r.inflight
	if len(r.cur.visits) > 0 {
		// The committer takes batches in order: when this one is done,
		// so is the one in flight.
		wait = r.cur
	}
	r.mu.Unlock()
	if wait != nil {
		signal(r.wake)
		select {
		case <-wait.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return r.flushTally(ctx)
}

func (r *Recorder) flushTally(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	counts := r.tally.take()
	if len(counts) == 0 {
		return nil
	}
	err := r.o.Store.AddCounts(ctx, counts)
	if pe, ok := errors.AsType[*PartialAddError](err); ok {
		r.tally.restore(pe.Left)
	} else if err != nil {
		r.tally.restore(counts)
	}
	return err
}

// Stats returns a creator's counters, including every click recorded here
// before the call but the spooled visits not replayed yet. When the store
// cannot take the tallied counts (its disk full), they are added from
// memory, as the flush that writes them will.
func (r *Recorder) Stats(ctx context.Context, campaign, creator string) ([]DayCounts, error) {
	err := r.Flush(ctx)
	if err == nil {
		return r.o.Store.Stats(ctx, campaign, creator)
	}
	if ctx.Err() != nil {
		return nil, err
	}
	// No flush moves counts from the tally to the store between the reads.
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	days, serr := r.o.Store.Stats(ctx, campaign, creator)
	if serr != nil {
		return nil, errors.Join(err, serr)
	}
	return MergeDays(days, r.tally.pending(campaign, creator)), nil
}

func (r *Recorder) flushLoop() {
	defer r.running.Done()
	tick := time.NewTicker(r.o.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), r.o.StoreTimeout)
			if err := r.flushTally(ctx); err != nil {
				r.logError("cannot add tallied counts; will retry", "err", err)
			}
			cancel()
			r.filter.Expire(now.Unix())
		case <-r.stop:
			return
		}
	}
}

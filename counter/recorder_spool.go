package counter

// The spool side of the Recorder: a batch the store did not commit in
// time, or failed, is written to the spool before its people are
// redirected, and replayed into the store once it answers again.

import (
	"context"
	"errors"
	"time"
)

// Spool keeps batches of visits that the store did not commit in time, on
// local disk, until they are replayed into the store. counter/spool
// implements it.
type Spool interface {
	// Append writes visits as one batch and makes it durable; the visits
	// are spooled only once it returns the batch's id. A held batch is not
	// Pending until Release: its commit is still in flight. Append returns
	// an error matching ErrSpoolFull when the batch does not fit.
	Append(visits []Visit, held bool) (id uint64, err error)
	// Release makes a held batch pending.
	Release(id uint64)
	// Ack records that batch id is in the store: it is never replayed
	// again by this process, nor by the next if Ack returns nil.
	Ack(id uint64) error
	// Pending appends the ids of the batches to replay, oldest first.
	Pending(dst []uint64) []uint64
	// Read appends the visits of batch id to dst.
	Read(id uint64, dst []Visit) ([]Visit, error)
}

// ErrSpoolFull is matched by a Spool's Append error when the spool has no
// room for the batch.
var ErrSpoolFull = errors.New("counter: spool full")

// Backoff between attempts on a store that failed. Meanwhile new batches go
// straight to the spool, and replay waits.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
)

// replayMargin: a spooled visit is replayed only while its window's dedupe
// state is sure to still be in the store, at least this long before it
// expires. Replayed later, it would find no state and count a visitor again.
const replayMargin = time.Minute

type spoolState uint8

const (
	notSpooled spoolState = iota
	spoolWriting
	spoolWritten
	spoolFailed
)

// spoolLate spools a batch that the store did not commit within
// CommitTimeout. A batch still queued leaves the queue and is never sent:
// the replayer sends it. A batch in flight is spooled held, and acked if its
// commit succeeds after all. The write runs on its own goroutine, so a
// disk that hangs holds its callers no longer than SpoolTimeout.
func (r *Recorder) spoolLate(b *batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b.released || b.answered || b.spool != notSpooled {
		// Released; or answered, and about to be released by whoever
		// resolves it: spooled now, a batch the store took would be
		// replayed, its visitors duplicates the second time; or
		// spooled by another caller.
		return
	}
	held := b.sent // in flight: acked if its commit succeeds after all
	if !b.sent {
		if r.cur != b {
			panic("BUG: counter: a batch neither sent nor queued")
		}
		r.cur = newBatch()
		b.answered, b.out = true, uncounted(len(b.visits))
	}
	b.spool, b.whole = spoolWriting, true
	r.lateWrites++
	commitsLate.Inc()
	go func() {
		r.writeSpool(b, b.visits, held)
		r.mu.Lock()
		if r.lateWrites--; r.lateWrites == 0 && r.lateIdle != nil {
			close(r.lateIdle)
			r.lateIdle = nil
		}
		r.mu.Unlock()
	}()
}

// writeSpool appends visits of b to the spool, resolves b if the store has
// answered it, and releases b's callers.
func (r *Recorder) writeSpool(b *batch, visits []Visit, held bool) {
	id, err := r.o.Spool.Append(visits, held)
	if err != nil {
		r.logError("cannot spool visits; they are lost unless the store takes them", "err", err)
	} else {
		spooledBatches.Inc()
		visitsSpooled.AddInt64(countVisits(visits))
		if !held {
			signal(r.replayWake)
		}
	}
	r.mu.Lock()
	if err == nil {
		b.spool, b.spoolID = spoolWritten, id
	} else {
		b.spool, b.spoolErr = spoolFailed, err
	}
	resolve := b.answered
	r.mu.Unlock()
	if resolve {
		r.resolve(b)
	}
	r.mu.Lock()
	fate := Spooled
	if err != nil {
		fate = Late // the commit in flight may still take it
		if b.answered {
			fate = Lost
		}
	}
	r.releaseLocked(b, fate)
	r.mu.Unlock()
}

// respool replaces spooled batch id, part of which the store took, by its
// failed visits. If they cannot be spooled, the whole batch stays: replaying
// what the store took only makes duplicates.
func (r *Recorder) respool(id uint64, failed []Visit) {
	if _, err := r.o.Spool.Append(failed, false); err != nil {
		r.logError("cannot spool the failed part of a batch; the whole batch is replayed", "err", err)
		r.o.Spool.Release(id)
	} else if err := r.o.Spool.Ack(id); err != nil {
		r.logError("cannot ack a replaced spooled batch; a restart replays it as duplicates", "err", err)
	}
	signal(r.replayWake)
}

func (r *Recorder) replayLoop() {
	defer r.running.Done()
	var retry <-chan time.Time
	for {
		select {
		case <-r.stop:
			return
		case <-r.replayWake:
		case <-retry:
		}
		retry = nil
		// Not cancelled by Stop: a commit cut short may have run, and
		// would be replayed as duplicates. Stop waits StoreTimeout at most.
		if d := r.replay(context.Background(), r.stop); d > 0 {
			retry = time.After(d)
		}
	}
}

// replay commits the spooled batches, oldest first, until none is left,
// the store fails, ctx ends or quit closes. It returns how long to wait
// before trying again, or 0 when nothing is left to replay. With a quit
// channel (the replayer), it waits while the store is down and its first
// batch probes the store then; without one (Stop), it tries at once.
func (r *Recorder) replay(ctx context.Context, quit <-chan struct{}) time.Duration {
	for _, id := range r.o.Spool.Pending(nil) {
		select {
		case <-quit:
			return 0
		default:
		}
		if ctx.Err() != nil {
			return 0
		}
		if d := r.downFor(time.Now()); d > 0 && quit != nil {
			return d
		}
		if err := r.replayOne(ctx, id); err != nil {
			r.logError("cannot replay spooled visits; will retry", "err", err)
			return max(r.downFor(time.Now()), retryMin)
		}
	}
	return 0
}

// replayOne commits one spooled batch and acks it. It returns the store's
// error when the store took none of it.
func (r *Recorder) replayOne(ctx context.Context, id uint64) error {
	visits, err := r.o.Spool.Read(id, nil)
	if err != nil {
		// Not the store's fault: skip it; it stays for the next pass, and
		// an operator must look at the disk.
		spoolReadErrors.Inc()
		r.logError("cannot read a spooled batch", "err", err)
		return nil
	}
	deadline := time.Now().Add(replayMargin).Unix()
	live := visits[:0:0]
	var expired []Visit
	for _, v := range visits {
		if v.Expires <= deadline {
			expired = append(expired, v)
		} else {
			live = append(live, v)
		}
	}
	var failed []Visit
	replayed := int64(0)
	if len(live) > 0 {
		out := make([]Reason, len(live))
		cctx, cancel := context.WithTimeout(ctx, r.o.StoreTimeout)
		err = r.o.Store.Commit(cctx, live, out)
		cancel()
		r.storeAnswered(err)
		for i := range live {
			if out[i] == Uncounted {
				failed = append(failed, live[i])
				continue
			}
			r.filter.Add(&live[i])
			if !live[i].MarkOnly {
				replayed++
			}
		}
		if len(failed) == len(live) {
			return err
		}
	}
	if len(failed) > 0 {
		if _, err := r.o.Spool.Append(failed, false); err != nil {
			// Replayed whole again later: what the store took becomes
			// duplicates.
			r.logError("cannot spool the failed part of a replayed batch; it is replayed whole", "err", err)
			return nil
		}
		// A batch of its own, after this pass's list: the replayer must
		// come back for it.
		signal(r.replayWake)
	}
	// Counted before the ack, so that an empty spool means the counts
	// are complete. A failed ack forgets the batch all the same; a
	// restart may replay it once more.
	replayedBatches.Inc()
	visitsReplayed.AddInt64(replayed)
	r.lose(lostExpired, "the store was down past the end of their dedupe window", expired...)
	if err := r.o.Spool.Ack(id); err != nil {
		r.logError("cannot ack a replayed batch; a restart replays it as duplicates", "err", err)
	}
	return nil
}

// storeAnswered keeps track of the store's health from a commit's error:
// after a failure nothing is sent to the store for a backoff that doubles
// with each failure in a row, up to retryMax.
func (r *Recorder) storeAnswered(err error) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if err == nil {
		if r.failures > 0 {
			r.failures, r.downUntil = 0, time.Time{}
			signal(r.replayWake) // the store is back
		}
		return
	}
	commitErrors.Inc()
	r.logError("cannot commit visits", "err", err)
	d := retryMax
	if r.failures < 10 {
		d = min(retryMin<<r.failures, retryMax)
	}
	r.failures++
	r.downUntil = time.Now().Add(d)
}

// downFor returns how long the store is still considered down.
func (r *Recorder) downFor(now time.Time) time.Duration {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	return r.downUntil.Sub(now)
}

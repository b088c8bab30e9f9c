package counter

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Outcome is how far a visit had got when Record returned.
type Outcome uint8

const (
	// Committed: the store decided, and the reason says what.
	Committed Outcome = iota
	// Spooled: the store did not decide within CommitTimeout (or failed),
	// and the visit is in the spool: the store decides when it is
	// replayed.
	Spooled
	// Late: neither committed nor spooled yet. The visit commits late, or
	// is tallied uncounted if the store fails (only without a spool, or
	// when the spool did not answer within SpoolTimeout).
	Late
	// Lost: neither committed nor spooled (the queue or the spool was
	// full, the spool could not be written, the Recorder was stopped): the
	// visit is tallied uncounted.
	Lost
)

// Where the visits that leave the hot path go, for /metrics. A visit is a
// click that dedupe decides; the visitor cookie's mark that goes with it is
// not counted here.
var (
	visitsSpooled    = metrics.NewCounter(`clickgate_visits_spooled_total`)
	visitsReplayed   = metrics.NewCounter(`clickgate_visits_replayed_total`)
	visitsUncounted  = metrics.NewCounter(`clickgate_visits_uncounted_total`)
	lostSpoolFull    = metrics.NewCounter(`clickgate_visits_lost_total{reason="spool_full"}`)
	lostSpoolError   = metrics.NewCounter(`clickgate_visits_lost_total{reason="spool_error"}`)
	lostStoreError   = metrics.NewCounter(`clickgate_visits_lost_total{reason="store_error"}`)
	lostQueueFull    = metrics.NewCounter(`clickgate_visits_lost_total{reason="queue_full"}`)
	lostStopped      = metrics.NewCounter(`clickgate_visits_lost_total{reason="stopped"}`)
	lostExpired      = metrics.NewCounter(`clickgate_visits_lost_total{reason="expired"}`)
	commitsLate      = metrics.NewCounter(`clickgate_commits_late_total`)
	commitErrors     = metrics.NewCounter(`clickgate_store_commit_errors_total`)
	spoolReadErrors  = metrics.NewCounter(`clickgate_spool_read_errors_total`)
	commitDuration   = metrics.NewPrometheusHistogramExt(`clickgate_commit_duration_seconds`, DurationBuckets)
	replayedBatches  = metrics.NewCounter(`clickgate_spool_replayed_batches_total`)
	spooledBatches   = metrics.NewCounter(`clickgate_spool_appended_batches_total`)
	lateAckedBatches = metrics.NewCounter(`clickgate_spool_late_acked_batches_total`)
)

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	Store  Store
	Params DedupeParams
	// CommitTimeout bounds how long Record waits for its batch; past it
	// the batch is spooled and the person redirected. default: 250ms
	CommitTimeout time.Duration
	// CommitInterval is the least time from the start of one commit to
	// the start of the next: under load the visits of that time wait for
	// one batch, one round trip to the store, instead of one each as soon
	// as the last returns. A visit after a quieter spell is committed at
	// once. default: 0, no wait
	CommitInterval time.Duration
	// StoreTimeout bounds one batch's round trip to the store. default: 5s
	StoreTimeout time.Duration
	// MaxQueue is how many visits may wait for the store; more are
	// uncounted at once, so a dead store cannot exhaust memory.
	// default: 65536
	MaxQueue int
	// FlushInterval is how often counts tallied in memory (duplicates found
	// by the local filter, uncounted visits) are added to the store.
	// default: 1s
	FlushInterval time.Duration
	// Spool keeps the visits of batches that the store did not commit
	// within CommitTimeout, or failed, until a replayer commits them.
	// default: nil, such visits commit late, or are tallied uncounted when
	// the store fails
	Spool Spool
	// SpoolTimeout bounds how long Record waits for the spool past
	// CommitTimeout: a disk that hangs must not hold redirects. default: 1s
	SpoolTimeout time.Duration
	// Logger receives errors, each message at most once per FlushInterval.
	// default: slog.Default()
	Logger *slog.Logger
}

// Recorder decides and records what became of each click: a local Bloom
// filter answers known visitors, one committer goroutine sends every other
// visit queued meanwhile to the store as one batch (group commit), and
// counts that need no dedupe are tallied in memory and added periodically.
//
// With a Spool, a batch the store has not committed within CommitTimeout,
// or failed, is written to the spool before its callers return, and a
// replayer commits it when the store is back. A batch spooled while its
// commit was in flight is held, and acked if the commit succeeds after all,
// so that it is not sent twice. Even so, the store's dedupe is what makes
// replay safe: a visit committed twice is a duplicate the second time.
type Recorder struct {
	o      RecorderOptions
	filter *LocalFilter

	mu         sync.Mutex
	cur        *batch // queued
	inflight   *batch // being committed; nil when idle
	stopped    bool
	lateWrites int           // spool writes of late batches under way
	lateIdle   chan struct{} // closed when lateWrites drops to 0; set by Stop
	wake       chan struct{}
	stop       chan struct{}
	running    sync.WaitGroup

	healthMu  sync.Mutex
	failures  int       // consecutive store failures
	downUntil time.Time // no commit or replay is tried before, but a probe

	replayWake chan struct{}

	tally *tally
	// flushMu makes a Flush wait for a flush that already took the counts,
	// so Stats after Flush sees them.
	flushMu sync.Mutex

	errMu   sync.Mutex
	lastErr map[string]time.Time // by message
}

type batch struct {
	visits []Visit
	out    []Reason      // final once answered
	done   chan struct{} // closed when the callers may go

	// Under Recorder.mu.
	sent     bool // taken by the committer
	answered bool // out is final: the store answered, or the batch is never sent
	spool    spoolState
	whole    bool // the spool record holds every visit, written before the store answered
	spoolID  uint64
	spoolErr error
	released bool
	// Set before done closes: what became of the visits that out does not
	// decide, and whether out was final then.
	fate  Outcome
	final bool
}

// NewRecorder returns a Recorder; call Start before Record.
func NewRecorder(o RecorderOptions) *Recorder {
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 250 * time.Millisecond
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 5 * time.Second
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 65536
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.SpoolTimeout <= 0 {
		o.SpoolTimeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Recorder{
		o:          o,
		filter:     NewLocalFilter(o.Params),
		cur:        newBatch(),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		replayWake: make(chan struct{}, 1),
		tally:      newTally(),
		lastErr:    make(map[string]time.Time),
	}
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Start starts the committer, the periodic flush of tallied counts and,
// with a spool, the replayer of the batches left in it, each on its own
// goroutine so a slow flush or replay never delays a commit.
func (r *Recorder) Start() {
	r.running.Add(2)
	go r.commitLoop()
	go r.flushLoop()
	if r.o.Spool != nil {
		r.running.Add(1)
		go r.replayLoop()
		signal(r.replayWake) // batches left by the previous run
	}
}

// Stop commits what is queued, replays what is spooled if the store takes
// it, adds the tallied counts to the store and stops, all within ctx. What
// the spool still holds then is replayed by the next Start. Record after
// Stop returns Uncounted.
func (r *Recorder) Stop(ctx context.Context) {
	close(r.stop)
	stopped := make(chan struct{})
	go func() {
		r.running.Wait()
		r.mu.Lock()
		idle := make(chan struct{})
		if r.lateWrites == 0 {
			close(idle)
		} else {
			r.lateIdle = idle
		}
		r.mu.Unlock()
		<-idle
		close(stopped)
	}()
	select {
	case <-stopped:
		if r.o.Spool != nil {
			r.replay(ctx, nil)
			if n := len(r.o.Spool.Pending(nil)); n > 0 {
				r.o.Logger.Warn("the spool still holds batches at stop; the next start replays them", "batches", n)
			}
		}
	case <-ctx.Done():
		r.o.Logger.Error("commits or spool writes still under way at the shutdown deadline; what is spooled is replayed at the next start")
	}
	if err := r.flushTally(ctx); err != nil {
		r.o.Logger.Error("cannot add tallied counts at stop; they are lost", "err", err)
	}
}

// Record sends v to the store, which decides whether it is a qualified
// visit or a duplicate, and records it. Call Known first: a visitor the
// local filter knows needs no store. Record does not test it again, so that
// a visit's second key (HasAlso) is always marked, even when a concurrent
// commit made the first known meanwhile.
//
// It returns once the store has committed the visit (Committed), or after
// CommitTimeout once the visit is in the spool (Spooled) or could not be
// spooled (Lost), and at the latest SpoolTimeout later (Late). The reason
// is Uncounted unless the outcome is Committed.
func (r *Recorder) Record(v *Visit) (Reason, Outcome) {
	r.mu.Lock()
	b := r.cur
	if r.stopped || len(b.visits) >= r.o.MaxQueue {
		c, why := lostQueueFull, "the queue for the store is full"
		if r.stopped {
			c, why = lostStopped, "the recorder is stopped"
		}
		r.mu.Unlock()
		r.lose(c, why, *v)
		return Uncounted, Lost
	}
	i := len(b.visits)
	b.visits = append(b.visits, *v)
	r.mu.Unlock()
	signal(r.wake)

	t := timers.Get().(*time.Timer)
	t.Reset(r.o.CommitTimeout)
	defer func() {
		t.Stop()
		timers.Put(t)
	}()
	select {
	case <-b.done:
		return b.result(i)
	case <-t.C:
	}
	if r.o.Spool == nil {
		return Uncounted, Late
	}
	r.spoolLate(b)
	t.Reset(r.o.SpoolTimeout)
	select {
	case <-b.done:
		return b.result(i)
	case <-t.C:
		return Uncounted, Late
	}
}

// timers are Record's: a click that waits for its commit allocates
// nothing. (Since Go 1.23 a stopped timer delivers no stale tick.)
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// result is what became of visit i; call it once b.done is closed.
func (b *batch) result(i int) (Reason, Outcome) {
	if b.final && b.out[i] != Uncounted {
		return b.out[i], Committed
	}
	return Uncounted, b.fate
}

// Known reports whether the local filter knows v's visitor, and then
// tallies the click as a duplicate, on v's link. It does not allocate.
func (r *Recorder) Known(v *Visit) bool {
	if !r.filter.Test(v) {
		return false
	}
	r.Note(v.Campaign, v.Creator, v.Link, v.Day, Duplicate)
	return true
}

// Learn records that v's visitor is known, as the store says it is (a
// visit another node appended): its next clicks are duplicates without a
// round trip. A visit whose window has expired is ignored.
func (r *Recorder) Learn(v *Visit) {
	if v.Expires > time.Now().Unix() {
		r.filter.Add(v)
	}
}

// lose tallies visits that are neither committed nor spooled as uncounted,
// counts them in c and logs it: a lost visit is a person who may go unpaid.
func (r *Recorder) lose(c *metrics.Counter, why string, visits ...Visit) {
	n := 0
	for i := range visits {
		v := &visits[i]
		if v.MarkOnly {
			continue
		}
		r.Note(v.Campaign, v.Creator, v.Link, v.Day, Uncounted)
		n++
	}
	if n == 0 {
		return
	}
	c.Add(n)
	visitsUncounted.Add(n)
	r.logError("visits lost: neither committed nor spooled; tallied uncounted", "reason", why, "visits", n,
		"lost_total", c.Get())
}

// commitLoop commits what is queued when Record wakes it, but not within
// CommitInterval of the last commit's start, and once more when stopped.
func (r *Recorder) commitLoop() {
	defer r.running.Done()
	finish := func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		r.commitQueued()
	}
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	var last time.Time
	for {
		select {
		case <-r.wake:
		case <-r.stop:
			finish()
			return
		}
		if wait := r.o.CommitInterval - time.Since(last); wait > 0 {
			pause.Reset(wait)
			select {
			case <-pause.C:
			case <-r.stop:
				finish()
				return
			}
		}
		last = time.Now()
		r.commitQueued()
	}
}

// commitQueued sends every queued visit to the store as one batch. Visits
// that arrive meanwhile queue for the next batch. While the store is down
// (it failed moments ago), the batch goes straight to the spool instead:
// its people need not wait CommitTimeout for a store that is not there.
func (r *Recorder) commitQueued() {
	r.mu.Lock()
	b := r.cur
	if len(b.visits) == 0 {
		r.mu.Unlock()
		return
	}
	r.cur = newBatch()
	b.sent = true
	if r.o.Spool != nil && r.downFor(time.Now()) > 0 {
		b.answered, b.out = true, uncounted(len(b.visits))
		b.spool, b.whole = spoolWriting, true
		r.inflight = b
		r.mu.Unlock()
		r.writeSpool(b, b.visits, false)
		r.mu.Lock()
		r.inflight = nil
		r.mu.Unlock()
		return
	}
	r.inflight = b
	r.mu.Unlock()

	out := make([]Reason, len(b.visits))
	ctx, cancel := context.WithTimeout(context.Background(), r.o.StoreTimeout)
	start := time.Now()
	err := r.o.Store.Commit(ctx, b.visits, out)
	cancel()
	commitDuration.UpdateDuration(start)
	r.storeAnswered(err)

	var failed []Visit
	for i := range b.visits {
		if out[i] == Uncounted {
			failed = append(failed, b.visits[i])
		}
	}
	spoolRest, resolve, release := false, false, false
	r.mu.Lock()
	r.inflight = nil
	b.out, b.answered = out, true
	switch {
	case b.spool == spoolWriting:
		// spoolLate's write is under way, and resolves the batch.
	case b.spool != notSpooled:
		resolve = true
	case r.o.Spool != nil && len(failed) > 0:
		// Failed in time: spool what the store did not take, an
		// ambiguous failure included (a reply lost after the script ran):
		// replay makes such a visit a duplicate, never a second payment.
		b.spool, spoolRest = spoolWriting, true
	default:
		resolve, release = true, true
	}
	r.mu.Unlock()
	if spoolRest {
		r.writeSpool(b, failed, false)
		return
	}
	if resolve {
		r.resolve(b)
	}
	if release {
		// After resolve: a visitor redirected is known to the local
		// filter, and a visit lost is tallied, before its caller goes on.
		r.mu.Lock()
		r.releaseLocked(b, Lost)
		r.mu.Unlock()
	}
}

// releaseLocked lets b's callers go, unless they went already.
func (r *Recorder) releaseLocked(b *batch, fate Outcome) {
	if b.released {
		return
	}
	b.released, b.fate, b.final = true, fate, b.answered
	close(b.done)
}

// resolve settles a batch once the store has answered it and its spool
// write, if any, is over: the local filter learns the committed visitors,
// a batch spooled whole is acked, released or cut down to what the store
// did not take, and visits neither committed nor spooled are tallied
// uncounted.
func (r *Recorder) resolve(b *batch) {
	var failed []Visit
	for i := range b.visits {
		if b.out[i] == Uncounted {
			failed = append(failed, b.visits[i])
			continue
		}
		r.filter.Add(&b.visits[i])
	}
	switch b.spool {
	case notSpooled:
		r.lose(lostStoreError, "the store failed and there is no spool", failed...)
	case spoolFailed:
		c := lostSpoolError
		if errors.Is(b.spoolErr, ErrSpoolFull) {
			c = lostSpoolFull
		}
		r.lose(c, b.spoolErr.Error(), failed...)
	case spoolWritten:
		switch {
		case !b.whole:
			// The spool holds exactly the visits the store did not take.
		case len(failed) == 0:
			lateAckedBatches.Inc()
			if err := r.o.Spool.Ack(b.spoolID); err != nil {
				r.logError("cannot ack a spooled batch that committed late; a restart replays it as duplicates", "err", err)
			}
		case len(failed) == len(b.visits):
			r.o.Spool.Release(b.spoolID)
			signal(r.replayWake)
		default:
			r.respool(b.spoolID, failed)
		}
	default:
		panic("BUG: counter: resolve of a batch being spooled")
	}
}

// logError logs at most one error per message per FlushInterval, so that
// a failing store cannot flood the log, nor hide that visits are lost.
func (r *Recorder) logError(msg string, args ...any) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if now := time.Now(); now.Sub(r.lastErr[msg]) >= r.o.FlushInterval {
		r.lastErr[msg] = now
		r.o.Logger.Error(msg, args...)
	}
}

// signal wakes the goroutine that waits on c, unless it is already due to
// wake.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func uncounted(n int) []Reason {
	out := make([]Reason, n)
	for i := range out {
		out[i] = Uncounted
	}
	return out
}

func countVisits(visits []Visit) int64 {
	var n int64
	for i := range visits {
		if !visits[i].MarkOnly {
			n++
		}
	}
	return n
}

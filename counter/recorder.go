package counter

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	Store  Store
	Params DedupeParams
	// CommitTimeout bounds how long Record waits for its batch; past it the
	// person is redirected and the visit commits late. default: 250ms
	CommitTimeout time.Duration
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
	// Logger receives errors, at most one per FlushInterval. default: slog.Default()
	Logger *slog.Logger
}

// Recorder decides and records what became of each click: a local Bloom
// filter answers known visitors, one committer goroutine sends every other
// visit queued meanwhile to the store as one batch (group commit), and
// counts that need no dedupe are tallied in memory and added periodically.
type Recorder struct {
	o      RecorderOptions
	filter *LocalFilter

	mu       sync.Mutex
	cur      *batch // queued
	inflight *batch // being committed; nil when idle
	stopped  bool
	wake     chan struct{}
	stop     chan struct{}
	running  sync.WaitGroup

	tallyMu sync.Mutex
	tally   map[tallyKey]int64
	// flushMu makes a Flush wait for a flush that already took the counts,
	// so Stats after Flush sees them.
	flushMu sync.Mutex

	errMu   sync.Mutex
	lastErr time.Time
}

type batch struct {
	visits []Visit
	out    []Reason
	done   chan struct{}
}

type tallyKey struct {
	campaign, creator string
	day               Day
	reason            Reason
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Recorder{
		o:      o,
		filter: NewLocalFilter(o.Params),
		cur:    newBatch(),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		tally:  make(map[tallyKey]int64),
	}
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Start starts the committer and the periodic flush of tallied counts,
// each on its own goroutine so a slow flush never delays a commit.
func (r *Recorder) Start() {
	r.running.Add(2)
	go r.commitLoop()
	go r.flushLoop()
}

// Stop commits what is queued, adds the tallied counts to the store and
// stops. Record after Stop returns Uncounted.
func (r *Recorder) Stop() {
	close(r.stop)
	r.running.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), r.o.StoreTimeout)
	defer cancel()
	if err := r.flushTally(ctx); err != nil {
		r.o.Logger.Error("cannot add tallied counts at stop; they are lost", "err", err)
	}
}

// Record sends v to the store, which decides whether it is a qualified
// visit or a duplicate, and records it. Call Known first: a visitor the
// local filter knows needs no store. Record does not test it again, so that
// a visit's second key (HasAlso) is always marked, even when a concurrent
// commit made the first known meanwhile. It returns once the store has
// committed the visit, with ok true, or after CommitTimeout with ok false:
// the visit then commits late (or is tallied as uncounted if the store
// fails).
func (r *Recorder) Record(v *Visit) (reason Reason, ok bool) {
	r.mu.Lock()
	b := r.cur
	if r.stopped || len(b.visits) >= r.o.MaxQueue {
		r.mu.Unlock()
		r.Note(v.Campaign, v.Creator, v.Day, Uncounted)
		return Uncounted, true
	}
	i := len(b.visits)
	b.visits = append(b.visits, *v)
	if v.HasAlso {
		m := *v
		m.Key, m.MarkOnly, m.HasAlso = v.Also, true, false
		b.visits = append(b.visits, m)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}

	t := time.NewTimer(r.o.CommitTimeout)
	defer t.Stop()
	select {
	case <-b.done:
		return b.out[i], true
	case <-t.C:
		return Uncounted, false
	}
}

// Known reports whether the local filter knows v's visitor, and then
// tallies the click as a duplicate. It does not allocate.
func (r *Recorder) Known(v *Visit) bool {
	if !r.filter.Test(v) {
		return false
	}
	r.Note(v.Campaign, v.Creator, v.Day, Duplicate)
	return true
}

// Note tallies one click of reason r that needs no dedupe. It does not
// allocate once the key has been seen in the current flush interval.
func (r *Recorder) Note(campaign, creator string, day Day, reason Reason) {
	r.tallyMu.Lock()
	r.tally[tallyKey{campaign, creator, day, reason}]++
	r.tallyMu.Unlock()
}

// Flush waits until every visit recorded before the call is committed, then
// adds the tallied counts to the store. Counts that fail stay tallied for the
// next Flush.
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
		select {
		case r.wake <- struct{}{}:
		default:
		}
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
	var counts []Count
	r.tallyMu.Lock()
	for k, n := range r.tally {
		if n == 0 {
			// Idle for a whole interval: drop the key.
			delete(r.tally, k)
			continue
		}
		counts = append(counts, Count{Campaign: k.campaign, Creator: k.creator, Day: k.day, Reason: k.reason, N: n})
		r.tally[k] = 0
	}
	r.tallyMu.Unlock()
	if len(counts) == 0 {
		return nil
	}
	err := r.o.Store.AddCounts(ctx, counts)
	if err != nil {
		r.tallyMu.Lock()
		for _, c := range counts {
			r.tally[tallyKey{c.Campaign, c.Creator, c.Day, c.Reason}] += c.N
		}
		r.tallyMu.Unlock()
	}
	return err
}

// Stats returns a creator's counters, including every click recorded here
// before the call.
func (r *Recorder) Stats(ctx context.Context, campaign, creator string) ([]DayCounts, error) {
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	return r.o.Store.Stats(ctx, campaign, creator)
}

func (r *Recorder) commitLoop() {
	defer r.running.Done()
	for {
		select {
		case <-r.wake:
			r.commitQueued()
		case <-r.stop:
			r.mu.Lock()
			r.stopped = true
			r.mu.Unlock()
			r.commitQueued()
			return
		}
	}
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
				r.logError("cannot add tallied counts; will retry", err)
			}
			cancel()
			r.filter.Expire(now.Unix())
		case <-r.stop:
			return
		}
	}
}

// commitQueued sends every queued visit to the store as one batch. Visits
// that arrive meanwhile queue for the next batch.
func (r *Recorder) commitQueued() {
	r.mu.Lock()
	b := r.cur
	if len(b.visits) == 0 {
		r.mu.Unlock()
		return
	}
	r.cur, r.inflight = newBatch(), b
	r.mu.Unlock()
	b.out = make([]Reason, len(b.visits))
	ctx, cancel := context.WithTimeout(context.Background(), r.o.StoreTimeout)
	err := r.o.Store.Commit(ctx, b.visits, b.out)
	cancel()
	if err != nil {
		r.logError("cannot commit visits", err)
	}
	for i := range b.visits {
		v := &b.visits[i]
		if b.out[i] == Uncounted {
			if !v.MarkOnly {
				r.Note(v.Campaign, v.Creator, v.Day, Uncounted)
			}
			continue
		}
		r.filter.Add(v)
	}
	r.mu.Lock()
	r.inflight = nil
	r.mu.Unlock()
	close(b.done)
}

func (r *Recorder) logError(msg string, err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if now := time.Now(); now.Sub(r.lastErr) >= r.o.FlushInterval {
		r.lastErr = now
		r.o.Logger.Error(msg, "err", err)
	}
}

package counter_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/spool"
	"github.com/clickgate/clickgate/counter/storetest"
)

// spooled is a Recorder with a spool over a faultyStore on a real embedded
// store, and its log.
type spooled struct {
	*counter.Recorder
	store *faultyStore
	spool *spool.Spool
	dir   string
	log   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newSpooled starts a Recorder on s (whose Store is opened if nil) with a
// spool in dir (a new one if empty).
func newSpooled(t *testing.T, s *faultyStore, dir string, o counter.RecorderOptions, so spool.Options) *spooled {
	t.Helper()
	p := storetest.Params(t)
	if s.Store == nil {
		bs, err := boltstore.Open(t.TempDir(), p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bs.Close() })
		s.Store = bs
	}
	if dir == "" {
		dir = t.TempDir()
	}
	so.Dir = dir
	sp, err := spool.Open(so)
	if err != nil {
		t.Fatalf("cannot open spool: %s", err)
	}
	t.Cleanup(func() { sp.Close() })
	log := &syncBuffer{}
	o.Store, o.Params, o.Spool = s, p, sp
	o.Logger = slog.New(slog.NewTextHandler(log, nil))
	r := counter.NewRecorder(o)
	r.Start()
	return &spooled{Recorder: r, store: s, spool: sp, dir: dir, log: log}
}

// waitFor polls cond: the replayer works on its own goroutine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *spooled) drained(t *testing.T) {
	t.Helper()
	waitFor(t, "the spool to drain", func() bool { return r.spool.Len() == 0 })
}

func wantTotals(t *testing.T, r *counter.Recorder, qualified, duplicates, uncounted int64) {
	t.Helper()
	got := totals(t, r)
	if got[counter.Qualified] != qualified || got[counter.Duplicate] != duplicates || got[counter.Uncounted] != uncounted {
		t.Fatalf("unexpected totals; got %+v; want qualified=%d duplicates=%d uncounted=%d", got, qualified, duplicates, uncounted)
	}
}

// TestRecorderSpoolsLateCommit: a batch not committed within CommitTimeout
// is spooled before Record returns; its commit, still in flight, succeeds
// later and acks it, so it is never sent again.
func TestRecorderSpoolsLateCommit(t *testing.T) {
	s := &faultyStore{hold: make(chan struct{})}
	const ct = 20 * time.Millisecond
	r := newSpooled(t, s, "", counter.RecorderOptions{CommitTimeout: ct}, spool.Options{})
	defer r.Stop(context.Background())
	v := visit(1)
	start := time.Now()
	if reason, o := record(r.Recorder, &v); reason != counter.Uncounted || o != counter.Spooled {
		t.Fatalf("unexpected result while the store is held; got %v, %v; want uncounted, spooled", reason, o)
	}
	if d := time.Since(start); d > ct+time.Second {
		t.Fatalf("Record took %s with a commit timeout of %s", d, ct)
	}
	if n, pending := r.spool.Len(), r.spool.Pending(nil); n != 1 || len(pending) != 0 {
		t.Fatalf("unexpected spool; got %d batches, pending %v; want 1 held batch", n, pending)
	}
	close(s.hold)
	r.drained(t)
	wantTotals(t, r.Recorder, 1, 0, 0)
	if n := s.sentOf(v.Key); n != 1 {
		t.Fatalf("unexpected sends of the late visit; got %d; want 1: the ack must stop a replay", n)
	}
}

// TestRecorderSpoolsQueuedBatch: a batch still queued behind a commit that
// hangs leaves the queue at its deadline; the replayer, not the committer,
// sends it, once.
func TestRecorderSpoolsQueuedBatch(t *testing.T) {
	s := &faultyStore{hold: make(chan struct{})}
	r := newSpooled(t, s, "", counter.RecorderOptions{CommitTimeout: 20 * time.Millisecond}, spool.Options{})
	defer r.Stop(context.Background())
	first := make(chan counter.Outcome)
	go func() {
		v := visit(1)
		_, o := record(r.Recorder, &v)
		first <- o
	}()
	waitFor(t, "the first commit", func() bool { return s.commits.Load() == 1 })
	v := visit(2)
	if _, o := record(r.Recorder, &v); o != counter.Spooled {
		t.Fatalf("unexpected outcome of a queued visit; got %v; want spooled", o)
	}
	if o := <-first; o != counter.Spooled {
		t.Fatalf("unexpected outcome of the visit in flight; got %v; want spooled", o)
	}
	close(s.hold)
	r.drained(t)
	wantTotals(t, r.Recorder, 2, 0, 0)
	if a, b := s.sentOf(storetest.Key(1)), s.sentOf(storetest.Key(2)); a != 1 || b != 1 {
		t.Fatalf("unexpected sends; got %d and %d; want 1 each", a, b)
	}
}

// TestRecorderSpoolsFailedBatch: while the store fails, visits are spooled,
// not uncounted, and the replayer commits them once it is back.
func TestRecorderSpoolsFailedBatch(t *testing.T) {
	s := &faultyStore{}
	s.fail.Store(true)
	const ct = time.Second
	r := newSpooled(t, s, "", counter.RecorderOptions{CommitTimeout: ct}, spool.Options{})
	defer r.Stop(context.Background())
	for i := range 20 {
		v := visit(i)
		start := time.Now()
		if reason, o := record(r.Recorder, &v); reason != counter.Uncounted || o != counter.Spooled {
			t.Fatalf("unexpected result while the store fails; got %v, %v; want uncounted, spooled", reason, o)
		}
		// A failure is known at once: nobody waits for the timeout.
		if d := time.Since(start); d >= ct {
			t.Fatalf("Record of a failing store took %s, the whole commit timeout", d)
		}
	}
	commits := s.commits.Load()
	if commits >= 20 {
		t.Fatalf("unexpected commits while the store is down; got %d for 20 visits: batches must go straight to the spool", commits)
	}
	s.fail.Store(false)
	r.drained(t)
	wantTotals(t, r.Recorder, 20, 0, 0)
}

// TestRecorderLostReply: the store ran the commit but its reply was lost.
// The visit is spooled, not tallied uncounted, and its replay finds it a
// duplicate: one qualified visit, never two.
func TestRecorderLostReply(t *testing.T) {
	s := &faultyStore{}
	s.lostReply.Store(true)
	r := newSpooled(t, s, "", counter.RecorderOptions{}, spool.Options{})
	defer r.Stop(context.Background())
	v := visit(1)
	if _, o := record(r.Recorder, &v); o != counter.Spooled {
		t.Fatalf("unexpected outcome after a lost reply; got %v; want spooled", o)
	}
	s.lostReply.Store(false)
	r.drained(t)
	// The replay counts a duplicate: clicks are one too many, the money
	// is right.
	wantTotals(t, r.Recorder, 1, 1, 0)
}

// TestRecorderPartialFailure: the store takes part of a batch. In time,
// the rest is spooled; late (the batch was spooled whole), the spooled
// batch is replaced by the rest. Either way what the store took is not
// sent again, and the rest is replayed until the store takes it.
func TestRecorderPartialFailure(t *testing.T) {
	for _, late := range []bool{false, true} {
		s := &faultyStore{hold: make(chan struct{})}
		timeout := time.Minute
		if late {
			timeout = 20 * time.Millisecond
		}
		r := newSpooled(t, s, "", counter.RecorderOptions{CommitTimeout: timeout}, spool.Options{})
		// A first visit holds the committer, so that the next two queue
		// as one batch, of which the store takes the first and fails the
		// second. (Should they queue apart, the sends are the same.)
		done := make(chan counter.Outcome, 3)
		rec := func(key int) {
			v := visit(key)
			v.Also, v.HasAlso = storetest.Key(100+key), true
			_, o := record(r.Recorder, &v)
			done <- o
		}
		go rec(0)
		waitFor(t, "the first commit", func() bool { return s.commits.Load() == 1 })
		s.failKey.Store(new(storetest.Key(2)))
		go rec(1)
		go rec(2)
		time.Sleep(50 * time.Millisecond)
		close(s.hold)
		for range 3 {
			if o := <-done; o == counter.Lost || o == counter.Late {
				t.Fatalf("unexpected outcome (late %v); got %v; want committed or spooled", late, o)
			}
		}
		waitFor(t, "the store to fail a visit", func() bool { return s.failed.Load() >= 1 })
		s.failKey.Store(nil)
		r.drained(t)
		// What the store took is never sent again; what it failed is sent
		// until it takes it.
		if a, b := s.sentOf(storetest.Key(1)), s.sentOf(storetest.Key(2)); a != 1 || b < 2 {
			t.Fatalf("unexpected sends (late %v); got %d and %d; want 1 and at least 2", late, a, b)
		}
		// The cookie's key, marked with each visit, is known.
		w := visit(102)
		if reason, _ := record(r.Recorder, &w); reason != counter.Duplicate {
			t.Fatalf("unexpected reason for a marked key (late %v); got %v; want duplicates", late, reason)
		}
		wantTotals(t, r.Recorder, 3, 1, 0)
		r.Stop(context.Background())
	}
}

// uncounted and logged.
func TestRecorderSpoolFull(t *testing.T) {
	s := &faultyStore{}
	s.fail.Store(true)
	r := newSpooled(t, s, "", counter.RecorderOptions{}, spool.Options{MaxBytes: 16})
	defer r.Stop(context.Background())
	v := visit(1)
	if reason, o := record(r.Recorder, &v); reason != counter.Uncounted || o != counter.Lost {
		t.Fatalf("unexpected result with a full spool; got %v, %v; want uncounted, lost", reason, o)
	}
	s.fail.Store(false)
	wantTotals(t, r.Recorder, 0, 0, 1)
	if log := r.log.String(); !strings.Contains(log, "visits lost") || !strings.Contains(log, "spool full") {
		t.Fatalf("the loss was not logged:\n%s", log)
	}
}

// TestRecorderReplaysAfterRestart: batches spooled by a Recorder that
// stops while the store is down are replayed by the next one.
func TestRecorderReplaysAfterRestart(t *testing.T) {
	s := &faultyStore{}
	s.fail.Store(true)
	r := newSpooled(t, s, "", counter.RecorderOptions{}, spool.Options{})
	for i := range 5 {
		v := visit(i)
		if _, o := record(r.Recorder, &v); o != counter.Spooled {
			t.Fatalf("unexpected outcome; got %v; want spooled", o)
		}
	}
	r.Stop(context.Background())
	if r.spool.Len() == 0 {
		t.Fatalf("the spool was emptied into a store that fails")
	}
	r.spool.Close()
	s.fail.Store(false)
	r = newSpooled(t, s, r.dir, counter.RecorderOptions{}, spool.Options{})
	defer r.Stop(context.Background())
	r.drained(t)
	wantTotals(t, r.Recorder, 5, 0, 0)
}

// TestRecorderStopReplays: Stop replays the spool into a store that is
// back, without waiting for the backoff.
func TestRecorderStopReplays(t *testing.T) {
	s := &faultyStore{}
	s.fail.Store(true)
	r := newSpooled(t, s, "", counter.RecorderOptions{}, spool.Options{})
	for i := range 5 {
		v := visit(i)
		record(r.Recorder, &v)
	}
	s.fail.Store(false)
	r.Stop(context.Background())
	if n := r.spool.Len(); n != 0 {
		t.Fatalf("unexpected batches left in the spool after Stop; got %d; want 0", n)
	}
	days, err := s.Store.Stats(context.Background(), "c1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := counter.Total(days); got[counter.Qualified] != 5 {
		t.Fatalf("unexpected qualified after Stop; got %+v; want 5", got)
	}
}

// TestRecorderStopDeadline: Stop returns by its deadline even when the
// store hangs, and leaves the spool for the next start.
func TestRecorderStopDeadline(t *testing.T) {
	s := &faultyStore{hold: make(chan struct{})}
	defer close(s.hold)
	r := newSpooled(t, s, "", counter.RecorderOptions{CommitTimeout: 10 * time.Millisecond}, spool.Options{})
	v := visit(1)
	if _, o := record(r.Recorder, &v); o != counter.Spooled {
		t.Fatalf("unexpected outcome; got %v; want spooled", o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r.Stop(ctx)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop took %s with a deadline of 100ms", d)
	}
	if r.spool.Len() != 1 {
		t.Fatalf("unexpected spool after Stop; got %d batches; want 1", r.spool.Len())
	}
}

// TestRecorderReplayExpired: a spooled visit whose dedupe window has ended
// is not replayed (its visitor may be counted there no more), but tallied
// uncounted.
func TestRecorderReplayExpired(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	old := counter.Visit{Campaign: "c1", Creator: "alice", Key: storetest.Key(1)}
	old.SetWindow(time.Now().Add(-49*time.Hour), 24*time.Hour)
	if _, err := sp.Append([]counter.Visit{old, visit(2)}, false); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	s := &faultyStore{}
	r := newSpooled(t, s, dir, counter.RecorderOptions{}, spool.Options{})
	defer r.Stop(context.Background())
	r.drained(t)
	wantTotals(t, r.Recorder, 1, 0, 1)
	if n := s.sentOf(old.Key); n != 0 {
		t.Fatalf("an expired visit was sent to the store %d times", n)
	}
}

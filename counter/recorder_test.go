package counter_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/storetest"
)

// faultyStore is a real store whose Commit can be held or made to fail.
type faultyStore struct {
	counter.Store
	commits atomic.Int64
	visits  atomic.Int64
	hold    chan struct{} // when non-nil, Commit waits for it to close
	fail    atomic.Bool
	// lostReply makes Commit commit, then fail as if the reply was lost.
	lostReply atomic.Bool
	// failKey, when set, fails the visits of that key and commits the
	// others, and answers an error if it failed any.
	failKey atomic.Pointer[counter.VisitorKey]
	failed  atomic.Int64 // visits failed by failKey
	// partialAdd makes AddCounts add only its first count, and fail with
	// the others left.
	partialAdd atomic.Bool
	// failAdd makes AddCounts fail, adding nothing.
	failAdd atomic.Bool
	mu      sync.Mutex
	sent    map[counter.VisitorKey]int // visits sent per key
}

var errInjected = errors.New("injected failure")

func (s *faultyStore) Commit(ctx context.Context, v []counter.Visit, out []counter.Reason) error {
	s.commits.Add(1)
	s.visits.Add(int64(len(v)))
	s.mu.Lock()
	if s.sent == nil {
		s.sent = make(map[counter.VisitorKey]int)
	}
	for i := range v {
		s.sent[v[i].Key]++
	}
	s.mu.Unlock()
	if s.hold != nil {
		<-s.hold
	}
	if s.fail.Load() {
		for i := range out {
			out[i] = counter.Uncounted
		}
		return errInjected
	}
	if k := s.failKey.Load(); k != nil {
		var err error
		for i := range v {
			out[i] = counter.Uncounted
			if v[i].Key == *k {
				err = errInjected
				s.failed.Add(1)
			} else if err := s.Store.Commit(ctx, v[i:i+1], out[i:i+1]); err != nil {
				return err
			}
		}
		return err
	}
	err := s.Store.Commit(ctx, v, out)
	if err == nil && s.lostReply.Load() {
		for i := range out {
			out[i] = counter.Uncounted
		}
		return errInjected
	}
	return err
}

func (s *faultyStore) AddCounts(ctx context.Context, c []counter.Count) error {
	if s.failAdd.Load() {
		return errInjected
	}
	if len(c) > 1 && s.partialAdd.Load() {
		if err := s.Store.AddCounts(ctx, c[:1]); err != nil {
			return err
		}
		return &counter.PartialAddError{Left: slices.Clone(c[1:]), Err: errInjected}
	}
	return s.Store.AddCounts(ctx, c)
}

// sentOf returns how many times the visits of key were sent to the store.
func (s *faultyStore) sentOf(key counter.VisitorKey) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[key]
}

func newRecorder(t *testing.T, s *faultyStore, o counter.RecorderOptions) *counter.Recorder {
	t.Helper()
	p := storetest.Params(t)
	bs, err := boltstore.Open(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	s.Store = bs
	o.Store, o.Params = s, p
	r := counter.NewRecorder(o)
	r.Start()
	return r
}

// record is what the handler does: the local filter, then the store.
func record(r *counter.Recorder, v *counter.Visit) (counter.Reason, counter.Outcome) {
	if r.Known(v) {
		return counter.Duplicate, counter.Committed
	}
	return r.Record(v)
}

func visit(key int) counter.Visit {
	v := counter.Visit{Campaign: "c1", Creator: "alice", Key: storetest.Key(key)}
	v.SetWindow(time.Now(), 24*time.Hour)
	return v
}

func totals(t *testing.T, r *counter.Recorder) counter.Counts {
	t.Helper()
	days, err := r.Stats(context.Background(), "c1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	return counter.Total(days)
}

func TestRecorderGroupCommit(t *testing.T) {
	s := &faultyStore{}
	r := newRecorder(t, s, counter.RecorderOptions{})
	defer r.Stop(context.Background())
	const clients, distinct, each = 64, 200, 20
	var wg sync.WaitGroup
	var late atomic.Int64
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v := visit((c*each + i) % distinct)
				if _, o := record(r, &v); o != counter.Committed {
					late.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	got := totals(t, r)
	if got[counter.Qualified] != distinct || got.Clicks() != clients*each {
		t.Fatalf("unexpected totals; got %+v; want qualified=%d clicks=%d", got, distinct, clients*each)
	}
	if c, v := s.commits.Load(), s.visits.Load(); c >= v && late.Load() == 0 {
		t.Fatalf("no group commit: %d commits for %d visits", c, v)
	}
	// Every visitor is now known locally: clicking again costs no store call.
	sent := s.visits.Load()
	for i := range distinct {
		v := visit(i)
		if reason, o := record(r, &v); reason != counter.Duplicate || o != counter.Committed {
			t.Fatalf("unexpected result for known visitor %d; got %v, %v; want duplicates", i, reason, o)
		}
	}
	if n := s.visits.Load() - sent; n != 0 {
		t.Fatalf("unexpected visits sent to the store for known visitors; got %d; want 0", n)
	}
	if got := totals(t, r); got[counter.Duplicate] != clients*each-distinct+distinct {
		t.Fatalf("unexpected duplicates; got %+v", got)
	}
}

// TestRecorderCommitInterval: a visit after a quiet spell commits at
// once; a visit within CommitInterval of that commit waits for the next,
// here past CommitTimeout; Stop commits it without waiting; and clients
// that keep recording share batches an interval apart. CommitTimeout is a
// second: the first commit, which creates the visit log's first segment
// (fsyncs of the file and its directory), took over 50 ms in CI beside
// the rest of the suite.
func TestRecorderCommitInterval(t *testing.T) {
	s := &faultyStore{}
	r := newRecorder(t, s, counter.RecorderOptions{CommitInterval: time.Hour, CommitTimeout: time.Second})
	v := visit(1)
	if reason, o := record(r, &v); reason != counter.Pending || o != counter.Committed {
		t.Fatalf("unexpected result of the first visit; got %v, %v; want pending (the judge decides it), committed", reason, o)
	}
	v = visit(2)
	if _, o := record(r, &v); o != counter.Late {
		t.Fatalf("unexpected outcome of a visit within the commit interval; got %v; want late", o)
	}
	stopped := make(chan struct{})
	go func() { r.Stop(context.Background()); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop waited for the commit interval")
	}
	if c := s.commits.Load(); c != 2 {
		t.Fatalf("unexpected commits; got %d; want 2", c)
	}
	days, err := s.Store.Stats(context.Background(), "c1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := counter.Total(days); got[counter.Qualified] != 2 {
		t.Fatalf("unexpected totals after Stop; got %+v; want qualified=2", got)
	}

	const interval, clients, each = 20 * time.Millisecond, 8, 10
	s = &faultyStore{}
	r = newRecorder(t, s, counter.RecorderOptions{CommitInterval: interval})
	defer r.Stop(context.Background())
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				v := visit(c*each + i)
				record(r, &v)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	// Commits start an interval apart at least, so there are at most
	// took/interval + 1 of them, whatever the machine's speed.
	if c, most := s.commits.Load(), int64(took/interval)+1; c > most {
		t.Fatalf("%d commits in %s; want at most %d, one per %s", c, took, most, interval)
	}
	if got := totals(t, r); got[counter.Qualified] != clients*each {
		t.Fatalf("unexpected totals; got %+v; want qualified=%d", got, clients*each)
	}
}

func TestRecorderCommitTimeout(t *testing.T) {
	s := &faultyStore{hold: make(chan struct{})}
	r := newRecorder(t, s, counter.RecorderOptions{CommitTimeout: 20 * time.Millisecond})
	defer r.Stop(context.Background())
	v := visit(1)
	if _, o := record(r, &v); o != counter.Late {
		t.Fatalf("unexpected outcome from Record while the store is held; got %v; want late", o)
	}
	// The visit was not dropped: it commits once the store answers.
	close(s.hold)
	got := totals(t, r)
	if got[counter.Qualified] != 1 || got[counter.Uncounted] != 0 {
		t.Fatalf("unexpected totals after a late commit; got %+v; want qualified=1", got)
	}
}

func TestRecorderStoreFailure(t *testing.T) {
	s := &faultyStore{}
	s.fail.Store(true)
	// A commit slower than the default timeout (a loaded disk) would be
	// late, not committed: this test is about failures, not time.
	r := newRecorder(t, s, counter.RecorderOptions{CommitTimeout: time.Minute})
	defer r.Stop(context.Background())
	for i := range 5 {
		v := visit(i)
		if reason, o := record(r, &v); o != counter.Lost || reason != counter.Uncounted {
			t.Fatalf("unexpected result while the store fails without a spool; got %v, %v; want uncounted, lost", reason, o)
		}
	}
	// A failed visit never enters the local filter: once the store is back,
	// the same visitor is asked about again and counted.
	s.fail.Store(false)
	v := visit(0)
	if reason, o := record(r, &v); reason != counter.Pending || o != counter.Committed {
		t.Fatalf("unexpected result after recovery; got %v, %v; want pending, committed", reason, o)
	}
	got := totals(t, r)
	if got[counter.Uncounted] != 5 || got[counter.Qualified] != 1 {
		t.Fatalf("unexpected totals; got %+v; want uncounted=5 qualified=1", got)
	}
}

func TestRecorderQueueBound(t *testing.T) {
	s := &faultyStore{hold: make(chan struct{})}
	r := newRecorder(t, s, counter.RecorderOptions{MaxQueue: 2, CommitTimeout: time.Millisecond})
	defer r.Stop(context.Background())
	v := visit(0)
	record(r, &v) // taken by the committer, which is now held
	for s.commits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 2; i++ {
		v := visit(i)
		if _, o := record(r, &v); o != counter.Late {
			t.Fatalf("unexpected outcome for queued visit %d; got %v; want late", i, o)
		}
	}
	v = visit(3)
	if reason, o := record(r, &v); reason != counter.Uncounted || o != counter.Lost {
		t.Fatalf("unexpected result with a full queue; got %v, %v; want uncounted, lost", reason, o)
	}
	close(s.hold)
	got := totals(t, r)
	if got[counter.Qualified] != 3 || got[counter.Uncounted] != 1 {
		t.Fatalf("unexpected totals; got %+v; want qualified=3 uncounted=1", got)
	}
}

func TestRecorderStopDrains(t *testing.T) {
	s := &faultyStore{hold: make(chan struct{})}
	r := newRecorder(t, s, counter.RecorderOptions{CommitTimeout: time.Millisecond})
	for i := range 3 {
		v := visit(i)
		record(r, &v)
	}
	stopped := make(chan struct{})
	go func() { r.Stop(context.Background()); close(stopped) }()
	close(s.hold)
	<-stopped
	v := visit(9)
	if reason, o := record(r, &v); reason != counter.Uncounted || o != counter.Lost {
		t.Fatalf("unexpected result after Stop; got %v, %v; want uncounted, lost", reason, o)
	}
	days, err := s.Store.Stats(context.Background(), "c1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	got := counter.Total(days)
	if got[counter.Qualified] != 3 {
		t.Fatalf("unexpected qualified after Stop; got %+v; want 3: Stop must commit what is queued", got)
	}
}

func TestRecorderAlsoKey(t *testing.T) {
	s := &faultyStore{}
	r := newRecorder(t, s, counter.RecorderOptions{})
	defer r.Stop(context.Background())
	v := visit(1)
	v.Also, v.HasAlso = storetest.Key(2), true
	if reason, o := record(r, &v); reason != counter.Pending || o != counter.Committed {
		t.Fatalf("unexpected result; got %v, %v; want pending, committed", reason, o)
	}
	// The next click keyed by the second key (the cookie) is a duplicate,
	// and so is one keyed by the first.
	for _, k := range []int{2, 1} {
		w := visit(k)
		if reason, _ := record(r, &w); reason != counter.Duplicate {
			t.Fatalf("unexpected reason for key %d; got %v; want duplicates", k, reason)
		}
	}
	if got := totals(t, r); got[counter.Qualified] != 1 || got.Clicks() != 3 {
		t.Fatalf("unexpected totals; got %+v; want qualified=1 clicks=3", got)
	}
}

// TestRecorderPartialAdd: counts the store added before it failed are not
// added again; the rest are, at the next flush.
func TestRecorderPartialAdd(t *testing.T) {
	s := &faultyStore{}
	r := newRecorder(t, s, counter.RecorderOptions{FlushInterval: time.Hour})
	defer r.Stop(context.Background())
	d := counter.DayOf(time.Now())
	for _, reason := range []counter.Reason{counter.Bot, counter.Preview, counter.Prefetch} {
		r.Note("c1", "alice", "", d, reason)
	}
	s.partialAdd.Store(true)
	if err := r.Flush(context.Background()); !errors.Is(err, errInjected) {
		t.Fatalf("unexpected error of a flush the store took part of; got %v", err)
	}
	s.partialAdd.Store(false)
	got := totals(t, r)
	if got[counter.Bot] != 1 || got[counter.Preview] != 1 || got[counter.Prefetch] != 1 || got.Clicks() != 3 {
		t.Fatalf("unexpected counts after a partial add and a flush; got %+v; want one of each", got)
	}
}

// TestRecorderStatsStoreRefuses: while the store cannot take the tallied
// counts (its disk full), Stats answers them from memory, by day, each
// once, whether the store took none of a flush or part of it; once it
// takes them again, the store has each once.
func TestRecorderStatsStoreRefuses(t *testing.T) {
	s := &faultyStore{}
	r := newRecorder(t, s, counter.RecorderOptions{FlushInterval: time.Hour})
	defer r.Stop(context.Background())
	today := counter.DayOf(time.Now())
	r.Note("c1", "alice", "", today-1, counter.Bot)
	r.Note("c1", "alice", "TIKTOK01", today, counter.Bot)
	r.Note("c1", "alice", "", today, counter.Preview)
	r.Note("c1", "bob", "", today, counter.Bot)   // another creator's
	r.Note("c2", "alice", "", today, counter.Bot) // another campaign's
	want := []counter.DayCounts{{Day: today - 1}, {Day: today}}
	want[0].Counts[counter.Bot] = 1
	want[1].Counts[counter.Bot], want[1].Counts[counter.Preview] = 1, 1
	check := func(when string) {
		t.Helper()
		got, err := r.Stats(context.Background(), "c1", "alice")
		if err != nil {
			t.Fatalf("%s: unexpected Stats error: %v", when, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: unexpected stats; got %+v; want %+v", when, got, want)
		}
	}
	s.failAdd.Store(true)
	check("the store refusing every count")
	s.failAdd.Store(false)
	s.partialAdd.Store(true)
	check("the store taking part of the counts")
	s.partialAdd.Store(false)
	check("the store taking the counts")
	days, err := s.Store.Stats(context.Background(), "c1", "alice")
	if err != nil || !reflect.DeepEqual(days, want) {
		t.Fatalf("unexpected counts in the store; got %+v, %v; want %+v", days, err, want)
	}
}

// TestRecorderLinks: what the recorder tallies itself (Note, the local
// filter's duplicates, visits lost) counts for the link clicked too.
func TestRecorderLinks(t *testing.T) {
	s := &faultyStore{}
	r := newRecorder(t, s, counter.RecorderOptions{FlushInterval: time.Hour})
	defer r.Stop(context.Background())
	d := counter.DayOf(time.Now())
	r.Note("c1", "alice", "TIKTOK01", d, counter.Bot)
	r.Note("c1", "alice", "", d, counter.Preview)
	onLink := func(key int, code string) counter.Visit {
		v := visit(key)
		v.Link = code
		return v
	}
	// The second is the first visitor again, on the other link: the
	// local filter knows them.
	for i, v := range []counter.Visit{onLink(1, "TIKTOK01"), onLink(1, "YOUTUBE1")} {
		if reason, _ := record(r, &v); reason != []counter.Reason{counter.Pending, counter.Duplicate}[i] {
			t.Fatalf("unexpected reason of visit %d; got %v", i, reason)
		}
	}
	s.fail.Store(true)
	v := onLink(2, "YOUTUBE1")
	if _, o := record(r, &v); o != counter.Lost {
		t.Fatalf("unexpected outcome of a visit while the store fails without a spool; got %v; want lost", o)
	}
	s.fail.Store(false)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := func(code string, want counter.Counts) {
		t.Helper()
		days, err := s.LinkStats(context.Background(), "c1", "alice", code)
		if got := counter.Total(days); err != nil || got != want {
			t.Fatalf("unexpected counts of link %q; got %v, %v; want %v", code, got, err, want)
		}
	}
	f("TIKTOK01", counter.Counts{counter.Qualified: 1, counter.Bot: 1})
	f("YOUTUBE1", counter.Counts{counter.Duplicate: 1, counter.Uncounted: 1})
	if got := totals(t, r); got != (counter.Counts{counter.Qualified: 1, counter.Duplicate: 1, counter.Uncounted: 1, counter.Bot: 1, counter.Preview: 1}) {
		t.Fatalf("unexpected counts of alice; got %v", got)
	}
}

package boltstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/disk"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// The counting core of the embedded store (DESIGN.md, "Counting: one
// deterministic judge per partition"): Commit appends the batch to the
// visit log under DIR/visits, one fsync per group commit, and answers
// counter.Pending; the judge, a goroutine of this process, decides the
// batches behind it, in the log's order, from copies handed over in
// memory. So a commit never waits for the judge, nor for its checkpoints:
// copying the judge under its lock for one took 25-55 ms at 400,000
// networks (a filled node under load), which every new visitor waited
// for when the commit judged too. Stats wait until the judge has decided
// every commit that returned before them.
//
// The judge's checkpoint (counters, filters, the log offset) is
// DIR/judge.checkpoint, written aside and renamed into place every
// checkpointInterval; the one before it is kept as judge.checkpoint.prev,
// and the log is trimmed below that. Open loads the checkpoint and judges
// the log after it again: the same log from the same checkpoint gives the
// same decisions, so a crash loses nothing that was fsynced and counts
// nothing twice. A damaged checkpoint (its checksum fails) is moved aside
// and the one before it loaded instead, the log judged again from there:
// the same counts, one interval later.
//
// The judge's sizing (--dedupe-expected, --dedupe-fp, the click secret)
// is fixed for the data directory, but its policy (the budgets and the
// velocity rule) may change from one open to the next: Open judges the
// log after the checkpoint under the checkpoint's own policy, as the judge
// that wrote both did before a crash, then adopts the policy it is given,
// logs the change and takes a checkpoint at once. So every visit is
// judged once, under the policy of the checkpoint before it, and the
// change applies to the visits committed from this open on. A clean close
// takes a last checkpoint, so then nothing is judged under the old policy
// again. An open without a velocity rule (p.VelocityWindow 0: a command
// that judges nothing) keeps the checkpoint's.
//
// One node is the whole store, so one judge of one partition decides every
// visit, its filters sized for every visitor of a campaign window: split by
// creator, a partition would have to be sized for all of them anyway, since
// one creator may bring most of a campaign's visitors. Velocity is the
// judge's too, exact and kept across restarts in its checkpoint; the edge's
// sketch only stops floods far past it.
const checkpointInterval = 30 * time.Second

// logSegmentBytes is the visit log's segment size; 0 is visitlog's
// default. Tests make it small, to see segments trimmed.
var logSegmentBytes int64

type core struct {
	dir string
	log *visitlog.Log
	ids *visitlog.BatchIDs

	amu sync.Mutex // appends, in the order they are queued for the judge
	buf []byte

	qmu    sync.Mutex
	queued sync.Cond       // on qmu: the judge took the queue
	queue  []judgeBatch    // appended, not yet taken by the judge, in log order
	most   int             // the longest queue before a commit waits
	last   visitlog.Offset // the offset after the last batch queued
	wake   chan struct{}   // a batch was queued
	stop   chan struct{}   // closed by close: judge what is queued, then end
	done   chan struct{}   // closed when judgeLoop ends
	// stopOnce closes stop: a store may be closed twice.
	stopOnce sync.Once

	mu     sync.Mutex      // the judge
	judged sync.Cond       // on mu: at moved
	at     visitlog.Offset // the offset after the last batch judged
	judge  *judge.Judge
	out    []counter.Reason
	dec    visitlog.Decoder
	batch  visitlog.Batch
	saved  time.Time // when the last checkpoint was taken
	// What checkFill reported: the layers of each window, the windows
	// that have all theirs, and the judge's LayersAdded.
	layers map[windowID]int
	full   map[windowID]bool
	added  uint64

	saving  sync.Mutex      // one checkpoint written at a time
	savedAt visitlog.Offset // the offset of the last one written
	pending sync.WaitGroup  // checkpoints being written off the judge's lock
	logger  *slog.Logger
}

// openCore opens the log and the judge, judges what the log holds after
// the checkpoint, and adopts the policy of p (see above).
func openCore(dir string, p counter.DedupeParams, logger *slog.Logger) (*core, error) {
	c := &core{dir: dir, saved: time.Now(), most: maxJudgeQueue, layers: map[windowID]int{}, full: map[windowID]bool{}, logger: logger}
	want := judge.FromDedupe(p, 1)
	j, cpWant, from, fellBack, err := pickCheckpoint(dir, p, want)
	switch {
	case errors.Is(fellBack, judge.ErrCorrupt):
		logger.Error("the judge's checkpoint is damaged; it is moved aside, and the log is judged again from the checkpoint before it",
			"err", fellBack, "moved_to", damagedName, "from", from.String())
		if err := os.Rename(filepath.Join(dir, checkpointName), filepath.Join(dir, damagedName)); err != nil {
			return nil, fmt.Errorf("cannot move the damaged checkpoint aside: %w", err)
		}
	case fellBack != nil:
		logger.Warn("the judge's checkpoint is missing, as a crash while it was saved leaves it; the log is judged again from the checkpoint before it",
			"err", fellBack, "from", from.String())
	case errors.Is(err, fs.ErrNotExist): // a new store
		if j, err = judge.New(want); err != nil {
			err = fmt.Errorf("cannot size the judge: %w", err)
		}
		cpWant = want
	}
	if err != nil {
		return nil, err
	}
	c.judge, want = j, cpWant
	c.savedAt, c.at = from, from
	// From the checkpoint on: what was judged before it waits only for
	// Trim, and damage to it must not keep the store from opening.
	if c.log, err = visitlog.Open(visitlog.Options{Dir: filepath.Join(dir, "visits"), From: from, SegmentBytes: logSegmentBytes}); err != nil {
		return nil, err
	}
	// A disk that fills up from now on leaves the first appends room; a
	// disk full already is for /readyz to report (Ping).
	_ = c.log.Reserve()
	var replayed int
	if c.ids, err = visitlog.NewBatchIDs(0); err == nil {
		replayed, err = c.replay(from)
	}
	if err == nil && c.judge.Params() != want {
		err = c.adopt(want.Policy(), replayed)
	}
	if err != nil {
		c.log.Close()
		return nil, err
	}
	c.checkFill(true)
	c.queued.L, c.judged.L = &c.qmu, &c.mu
	c.wake, c.stop, c.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go c.judgeLoop()
	return c, nil
}

// adopt makes the judge, which has judged the whole log, decide the
// visits committed from now on by policy q, and takes a checkpoint that
// records it at once: were the process to crash before the next one, the
// visits judged under q would be judged again under the old policy.
func (c *core) adopt(q judge.Policy, replayed int) error {
	old := c.judge.Params().Policy()
	if err := c.judge.SetPolicy(q); err != nil {
		return err
	}
	start := time.Now()
	cp, err := c.judge.MarshalBinary()
	if err == nil {
		err = c.save(cp, c.log.End(), start)
	}
	if err == nil {
		// The previous checkpoint too: a start that falls back on it
		// must not judge the visits after this one under the old policy.
		err = disk.WriteFile(filepath.Join(c.dir, prevName), cp)
	}
	if err != nil {
		return fmt.Errorf("cannot take the judge's checkpoint with its new policy %s: %w", q, err)
	}
	c.logger.Info("the judge's policy changed; it applies to the visits judged from now on",
		"old", old.String(), "new", q.String(), "replayed", replayed)
	return nil
}

// replay judges the log from from to its end and returns how many visits
// it judged.
func (c *core) replay(from visitlog.Offset) (int, error) {
	var out []counter.Reason
	n := 0
	err := c.log.Read(from, func(at, next visitlog.Offset, b []byte) error {
		if err := c.dec.Decode(b, &c.batch); err != nil {
			return fmt.Errorf("cannot decode the visit log at %s: %w", at, err)
		}
		out = slices.Grow(out[:0], len(c.batch.Visits))[:len(c.batch.Visits)]
		c.apply(c.batch.Visits, out, next)
		n += len(c.batch.Visits)
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("cannot judge the visit log after the checkpoint: %w", err)
	}
	return n, nil
}

func (c *core) apply(visits []counter.Visit, out []counter.Reason, next visitlog.Offset) {
	c.judge.Apply(visits, out)
	var o [16]byte
	b, _ := next.AppendBinary(o[:0])
	c.judge.SetOffset(b)
	c.at = next
}

// judgeBatch is a batch appended to the log, for the judge: a copy of its
// visits, and the log offset after it.
type judgeBatch struct {
	visits []counter.Visit
	next   visitlog.Offset
}

// maxJudgeQueue is how many batches may wait for the judge, besides those
// it is deciding, before a commit waits for it: a bound on memory, never
// reached unless the judge stalls (it decides a visit in about a
// microsecond).
const maxJudgeQueue = 4096

// commit appends visits to the log, fsynced, and queues them for the
// judge: out[i] is Pending.
func (c *core) commit(visits []counter.Visit, out []counter.Reason) error {
	c.amu.Lock()
	defer c.amu.Unlock()
	c.buf = visitlog.AppendBatch(c.buf[:0], &visitlog.Batch{ID: c.ids.Next(), Visits: visits})
	next, err := c.log.Append(c.buf)
	if err != nil {
		return fmt.Errorf("%w: %w", counter.ErrUnavailable, err)
	}
	c.qmu.Lock()
	for len(c.queue) >= c.most {
		c.queued.Wait()
	}
	c.queue = append(c.queue, judgeBatch{slices.Clone(visits), next})
	c.last = next
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	for i := range visits {
		out[i] = counter.Pending
	}
	return nil
}

// judgeLoop judges the queued batches until stop, then what is left.
func (c *core) judgeLoop() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
			c.judgeQueued()
		case <-c.stop:
			c.judgeQueued()
			return
		}
	}
}

// judgeQueued judges the batches queued and takes a checkpoint when one
// is due.
func (c *core) judgeQueued() {
	c.qmu.Lock()
	batches := c.queue
	c.queue = nil
	c.queued.Broadcast()
	c.qmu.Unlock()
	if len(batches) == 0 {
		return
	}
	c.mu.Lock()
	for _, b := range batches {
		c.out = slices.Grow(c.out[:0], len(b.visits))[:len(b.visits)]
		c.apply(b.visits, c.out, b.next)
	}
	if time.Since(c.saved) >= checkpointInterval {
		c.saved = time.Now()
		// A copy, not the checkpoint: marshalling takes milliseconds
		// (every filter word, every network of the day) that the judge,
		// and Stats, would wait for. Marshalled and written outside the
		// judge's lock: a failure only means a longer replay at the
		// next start.
		start := time.Now()
		snap, at := c.judge.Clone(), c.at
		c.pending.Go(func() {
			cp, err := snap.MarshalBinary()
			if err == nil {
				err = c.save(cp, at, start)
			}
			if err != nil {
				c.logger.Error("cannot save the judge's checkpoint; the next start judges more of the log again", "err", err)
			}
		})
		c.checkFill(false)
	} else if c.judge.LayersAdded() != c.added {
		c.checkFill(false)
	}
	c.judged.Broadcast()
	c.mu.Unlock()
}

// caughtUp waits until the judge has decided every batch queued before
// the call. The caller holds c.mu.
func (c *core) caughtUp() {
	c.qmu.Lock()
	last := c.last
	c.qmu.Unlock()
	for c.at.Less(last) {
		c.judged.Wait()
	}
}

type windowID struct {
	campaign string
	start    int64
}

var (
	// Got, not made: a process has one store, but both stores report them.
	layersAdded = metrics.GetOrCreateCounter(`clickgate_dedupe_layers_added_total`)
	layersMost  = metrics.GetOrCreateGauge(`clickgate_dedupe_window_layers`, nil)
	falseRate   = metrics.GetOrCreateGauge(`clickgate_dedupe_false_positive_rate`, nil)
)

// checkFill reports the dedupe windows' layers, at a checkpoint and after
// a commit in which the judge added one: it counts the layers added, sets
// the most layers of a window and the highest rate of false duplicates,
// and logs, once each, a window that grew a layer (more visitors than
// --dedupe-expected: a flood, or a campaign larger than it was sized for)
// and one that has all its layers (false duplicates rise above
// --dedupe-fp). At open it says which windows have layers already.
// The caller holds c.mu.
func (c *core) checkFill(open bool) {
	fills := c.judge.Fill()
	if n := c.judge.LayersAdded(); n != c.added {
		layersAdded.AddInt64(int64(n - c.added))
		c.added = n
	}
	most, rate := 0, 0.0
	live := make(map[windowID]bool, len(fills))
	for _, f := range fills {
		id := windowID{f.Campaign, f.Start}
		live[id] = true
		most, rate = max(most, f.Layers), max(rate, f.Rate)
		if f.Layers > max(1, c.layers[id]) {
			c.layers[id] = f.Layers
			msg := "a dedupe window grew a layer: more visitors than --dedupe-expected; false duplicates stay within twice --dedupe-fp"
			if open {
				msg = "a dedupe window has grown layers: more visitors than --dedupe-expected; false duplicates stay within twice --dedupe-fp"
			}
			c.logger.Warn(msg, "campaign", f.Campaign, "window", time.Unix(f.Start, 0).UTC(), "layers", f.Layers,
				"max_layers", judge.MaxLayers, "bytes", f.Bytes, "rate", f.Rate)
		}
		if f.Full && !c.full[id] {
			c.full[id] = true
			c.logger.Error("a dedupe window has all its layers: false duplicates rise above --dedupe-fp; raise --dedupe-expected",
				"campaign", f.Campaign, "window", time.Unix(f.Start, 0).UTC(), "layers", f.Layers, "bytes", f.Bytes, "rate", f.Rate)
		}
	}
	maps.DeleteFunc(c.layers, func(id windowID, _ int) bool { return !live[id] })
	maps.DeleteFunc(c.full, func(id windowID, _ bool) bool { return !live[id] })
	layersMost.Set(float64(most))
	falseRate.Set(rate)
}

// stats returns what the judge decided of one creator.
func (c *core) stats(campaign, creator string) []counter.DayCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.caughtUp()
	return c.judge.Creator(campaign, creator)
}

// close lets the judge decide what is queued, takes a last checkpoint,
// so that the next start replays nothing, and closes the log. Call it
// once no commit runs.
func (c *core) close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
	c.pending.Wait()
	c.mu.Lock()
	start := time.Now()
	cp, err := c.judge.MarshalBinary()
	end := c.at
	c.mu.Unlock()
	if err == nil {
		err = c.save(cp, end, start)
	}
	if e := c.log.Close(); err == nil {
		err = e
	}
	return err
}

package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/storetest"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// TestCoreCrash: a crash (the log closed without a last checkpoint) loses
// nothing that Commit returned: the next open judges the log after the
// last checkpoint again and reaches the same counts and the same dedupe
// state, whether a checkpoint was taken in between or not.
func TestCoreCrash(t *testing.T) {
	dir := t.TempDir()
	p := storetest.Params(t)
	day := time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	batch := func(from, n int) []counter.Visit {
		vs := make([]counter.Visit, n)
		for i := range vs {
			vs[i] = counter.Visit{Campaign: "spring", Creator: "alice", Key: storetest.Key(from + i%(n/2+1)), At: day.UnixMilli()}
			vs[i].SetWindow(day, 24*time.Hour)
		}
		return vs
	}
	commit := func(c *core, vs []counter.Visit) {
		t.Helper()
		if err := c.commit(vs, make([]counter.Reason, len(vs))); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *core {
		t.Helper()
		c, err := openCore(dir, p, slog.Default())
		if err != nil {
			t.Fatalf("cannot open after a crash: %s", err)
		}
		return c
	}

	c := open()
	commit(c, batch(0, 100))
	settle(c)
	checkpointNext(c)
	commit(c, batch(1000, 100))
	commit(c, batch(2000, 100))
	want := c.stats("spring", "alice")
	if q := counter.Total(want)[counter.Qualified]; q != 153 {
		t.Fatalf("unexpected qualified before the crash; got %d; want 153", q)
	}
	crash(t, c)

	c = open()
	if got := c.stats("spring", "alice"); !slices.Equal(got, want) {
		t.Fatalf("unexpected counts after the crash; got %+v; want %+v", got, want)
	}
	// The dedupe state came back too: the same visitors are duplicates.
	if got := judged(t, c, batch(2000, 100)); got[counter.Duplicate] != 100 || got.Clicks() != 100 {
		t.Fatalf("unexpected decisions of 100 visits seen before the crash; got %+v; want 100 duplicates", got)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	// A clean close leaves a checkpoint at the end: nothing to judge again.
	c = open()
	defer c.close()
	if got := counter.Total(c.stats("spring", "alice")); got[counter.Qualified] != 153 || got[counter.Duplicate] != 247 {
		t.Fatalf("unexpected counts after a clean close; got %+v; want 153 qualified, 247 duplicates", got)
	}
}

// TestCoreFillWarning: a window that grows layers (more visitors than its
// filters were sized for) is said by the commit that grew them, and
// counted; one that has all its layers is said once; a restart says which
// windows have layers.
func TestCoreFillWarning(t *testing.T) {
	p, err := counter.NewDedupeParams(500, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var log bytes.Buffer
	c, err := openCore(dir, p, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.close() }()
	day := time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	commit := func(from, n int, checkpoint bool) {
		vs := make([]counter.Visit, n)
		for i := range vs {
			vs[i] = counter.Visit{Campaign: "spring", Creator: "alice", At: day.UnixMilli(), HasAlso: true}
			binary.LittleEndian.PutUint64(vs[i].Key[:], uint64(from+i)*0x9e3779b97f4a7c15)
			binary.LittleEndian.PutUint64(vs[i].Also[:], uint64(from+i)*0xc2b2ae3d27d4eb4f)
			vs[i].SetWindow(day, 24*time.Hour)
		}
		if checkpoint {
			checkpointNext(c)
		}
		if err := c.commit(vs, make([]counter.Reason, n)); err != nil {
			t.Fatal(err)
		}
		settle(c)
	}
	want := func(when, msg string, n int) {
		t.Helper()
		if got := strings.Count(log.String(), msg); got != n {
			t.Fatalf("unexpected log %s; got %d %q; want %d:\n%s", when, got, msg, n, log.String())
		}
	}
	const grew, full = "grew a layer", "has all its layers"
	added := layersAdded.Get()
	commit(0, 400, true) // within the 500 visitors it was sized for
	want("within capacity", grew, 0)
	commit(400, 600, false)
	want("past capacity", grew, 1)
	if !strings.Contains(log.String(), "layers=2") || layersAdded.Get() != added+1 || layersMost.Get() != 2 {
		t.Fatalf("unexpected report of a second layer; got %d layers added, most %v:\n%s", layersAdded.Get()-added, layersMost.Get(), log.String())
	}
	commit(1000, 100, true)
	want("with no layer added", grew, 1)
	// 31 times the keys it was sized for fill its five layers.
	commit(1100, 20_000, false)
	want("with layers added", grew, 2)
	want("with all layers", full, 1)
	commit(21_100, 100, true)
	commit(21_200, 100, true)
	want("at checkpoints after", full, 1)
	if layersAdded.Get() != added+judge.MaxLayers-1 || layersMost.Get() != judge.MaxLayers || falseRate.Get() <= 0.01 {
		t.Fatalf("unexpected metrics of a window with all its layers; got %d layers added, most %v, rate %v", layersAdded.Get()-added, layersMost.Get(), falseRate.Get())
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	logger := slog.New(slog.NewTextHandler(&log, nil))
	if c, err = openCore(dir, p, logger); err != nil {
		t.Fatal(err)
	}
	want("at open", "has grown layers", 1)
	want("at open", grew, 0)
	want("at open", full, 1)
}

// The fixtures in testdata were written by the build before budgets
// (judge checkpoint version 1) with fixtureParams and budgets 0, from
// fixtureVisits: v1-clean holds the 30 visits of keys 0 to 29 and 5
// duplicates of keys 0 to 4, closed cleanly (nothing to judge again);
// v1-crash a checkpoint after keys 0 to 9 and keys 10 to 29 in the log
// after it, left by a crash.
func fixtureParams(t *testing.T, network, block int) counter.DedupeParams {
	t.Helper()
	p, err := counter.NewDedupeParams(1000, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	p.Keying, p.BudgetNetwork, p.BudgetBlock = "v1-fixture", network, block
	return p
}

// fixtureVisits returns n visits of one network and block on 2026-05-11,
// of keys from to from+n-1, as the fixtures hold them.
func fixtureVisits(from, n int) []counter.Visit {
	day := time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	vs := make([]counter.Visit, n)
	for i := range vs {
		k := from + i
		vs[i] = counter.Visit{Campaign: "spring", Creator: "alice", Key: storetest.Key(k), At: day.UnixMilli() + int64(k), Network: 0x1111, Block: 0xb10c}
		vs[i].SetWindow(day, 24*time.Hour)
	}
	return vs
}

// fixture returns a copy of the data directory testdata/name.
func fixture(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// policyCore opens the core of dir with p, its log in log.
func policyCore(t *testing.T, dir string, p counter.DedupeParams, log *bytes.Buffer) *core {
	t.Helper()
	log.Reset()
	c, err := openCore(dir, p, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatalf("cannot open %s with %s and budgets %d, %d: %s", dir, p, p.BudgetNetwork, p.BudgetBlock, err)
	}
	return c
}

// wantPolicyLog checks that the open logged a change of policy from one
// policy to another, or none (from "").
func wantPolicyLog(t *testing.T, log, from, to string, replayed int) {
	t.Helper()
	if from == "" {
		if strings.Contains(log, "policy changed") {
			t.Fatalf("unexpected change of policy logged:\n%s", log)
		}
		return
	}
	for _, s := range []string{"policy changed", `old="` + from + `"`, `new="` + to + `"`, "replayed=" + strconv.Itoa(replayed)} {
		if !strings.Contains(log, s) {
			t.Fatalf("unexpected log of a change of policy; got:\n%s\nwant %s", log, s)
		}
	}
}

// wantCheckpoint checks the params the checkpoint in dir records.
func wantCheckpoint(t *testing.T, dir string, p counter.DedupeParams) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, checkpointName))
	if err != nil {
		t.Fatal(err)
	}
	got, err := judge.CheckpointParams(b)
	if want := judge.FromDedupe(p, 1); err != nil || got != want {
		t.Fatalf("unexpected params of the checkpoint; got %s (%v); want %s", got, err, want)
	}
}

func policy(network, block int) string {
	return judge.Policy{VelocityWindow: time.Second, BudgetNetwork: network, BudgetBlock: block}.String()
}

// wantReasons commits vs and checks how many are qualified and budget.
func wantReasons(t *testing.T, c *core, vs []counter.Visit, qualified, budget int) {
	t.Helper()
	wantDecided(t, c, vs, qualified, counter.Budget, budget)
}

// wantDecided commits vs and checks how many are qualified and how many r.
func wantDecided(t *testing.T, c *core, vs []counter.Visit, qualified int, r counter.Reason, n int) {
	t.Helper()
	if got := judged(t, c, vs); got[counter.Qualified] != int64(qualified) || got[r] != int64(n) || got.Clicks() != int64(len(vs)) {
		t.Fatalf("unexpected decisions of %d visits; got %+v; want %d qualified and %d %s", len(vs), got, qualified, n, r)
	}
}

// judged commits vs, every one alice's of campaign spring, and returns
// what the judge decided of them: the change in her counts.
func judged(t *testing.T, c *core, vs []counter.Visit) counter.Counts {
	t.Helper()
	before := counter.Total(c.stats("spring", "alice"))
	out := make([]counter.Reason, len(vs))
	if err := c.commit(vs, out); err != nil {
		t.Fatal(err)
	}
	for i, r := range out {
		if r != counter.Pending {
			t.Fatalf("unexpected answer of the commit for visit %d; got %v; want pending", i, r)
		}
	}
	got := counter.Total(c.stats("spring", "alice"))
	for r := range got {
		got[r] -= before[r]
	}
	return got
}

// settle waits until the judge has decided every commit that returned.
func settle(c *core) {
	c.mu.Lock()
	c.caughtUp()
	c.mu.Unlock()
}

// checkpointNext makes the judge take a checkpoint after the next
// batches it decides.
func checkpointNext(c *core) {
	c.mu.Lock()
	c.saved = time.Time{}
	c.mu.Unlock()
}

// crash leaves c as a crash would, once its judge has decided what was
// committed and the checkpoints under way are written: its log closed
// without a last checkpoint.
func crash(t *testing.T, c *core) {
	t.Helper()
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
	c.pending.Wait()
	if err := c.log.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointMetrics: each checkpoint the judge takes, in the
// background, at close, or when it adopts a new policy at an open, is
// recorded with its size.
func TestCheckpointMetrics(t *testing.T) {
	dir := t.TempDir()
	p := storetest.Params(t)
	p.VelocityMax, p.VelocityWindow = 3, time.Minute
	open := func(p counter.DedupeParams) *core {
		t.Helper()
		c, err := openCore(dir, p, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	check := func(what string, count, bytes int64) {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, checkpointName))
		if err != nil {
			t.Fatal(err)
		}
		if n, b := storetest.CheckpointMetrics(t); n != count+1 || b != bytes+fi.Size() {
			t.Fatalf("unexpected checkpoint metrics after %s; got %d, %d bytes; want %d, %d bytes", what, n, b, count+1, bytes+fi.Size())
		}
	}
	c := open(p)
	day := time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	v := counter.Visit{Campaign: "spring", Creator: "alice", Key: storetest.Key(1), At: day.UnixMilli()}
	v.SetWindow(day, 24*time.Hour)
	count, bytes := storetest.CheckpointMetrics(t)
	checkpointNext(c)
	if err := c.commit([]counter.Visit{v}, make([]counter.Reason, 1)); err != nil {
		t.Fatal(err)
	}
	settle(c)
	c.pending.Wait()
	check("a checkpoint in the background", count, bytes)

	count, bytes = storetest.CheckpointMetrics(t)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	check("close", count, bytes)

	count, bytes = storetest.CheckpointMetrics(t)
	p.VelocityMax = 5
	c = open(p)
	defer c.close()
	check("adopting a new policy", count, bytes)
}

func wantTotals(t *testing.T, c *core, qualified, duplicates, budget int) {
	t.Helper()
	got := counter.Total(c.stats("spring", "alice"))
	if got[counter.Qualified] != int64(qualified) || got[counter.Duplicate] != int64(duplicates) || got[counter.Budget] != int64(budget) {
		t.Fatalf("unexpected counts; got %+v; want %d qualified, %d duplicates, %d budget", got, qualified, duplicates, budget)
	}
}

// TestCorePolicyUpgrade opens a data directory of the build before
// budgets, cleanly closed, with the default budgets: it opens, keeps its
// counts, logs the change, rewrites the checkpoint with the budgets, and
// the budgets apply to the visits after, counted from the change. A later
// open with other budgets adopts them the same way, the day's counts
// carried over.
func TestCorePolicyUpgrade(t *testing.T) {
	dir := fixture(t, "v1-clean")
	var log bytes.Buffer
	p := fixtureParams(t, counter.DefaultBudgetNetwork, counter.DefaultBudgetBlock)
	c := policyCore(t, dir, p, &log)
	wantPolicyLog(t, log.String(), policy(0, 0), policy(20, 300), 0)
	wantCheckpoint(t, dir, p)
	wantTotals(t, c, 30, 5, 0)
	// The network's 30 qualified visits of the day were judged without
	// budgets: its 20 count from the change.
	wantReasons(t, c, fixtureVisits(100, 25), 20, 5)
	wantReasons(t, c, fixtureVisits(0, 5), 0, 0) // duplicates still
	if err := c.close(); err != nil {
		t.Fatal(err)
	}

	// The same budgets: nothing changes.
	c = policyCore(t, dir, p, &log)
	wantPolicyLog(t, log.String(), "", "", 0)
	wantTotals(t, c, 50, 10, 5)
	wantReasons(t, c, fixtureVisits(200, 1), 0, 1)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}

	// Other budgets: the network has spent 20 of its 25 today.
	p = fixtureParams(t, 25, 300)
	c = policyCore(t, dir, p, &log)
	defer c.close()
	wantPolicyLog(t, log.String(), policy(20, 300), policy(25, 300), 0)
	wantCheckpoint(t, dir, p)
	wantTotals(t, c, 50, 10, 6)
	wantReasons(t, c, fixtureVisits(300, 7), 5, 2)
}

// TestCorePolicyAfterCrash opens a data directory of the build before
// budgets, left by a crash, with budgets: the log after the checkpoint is
// judged as that build judged it, without budgets, and only then are the
// budgets adopted, for the visits after.
func TestCorePolicyAfterCrash(t *testing.T) {
	dir := fixture(t, "v1-crash")
	var log bytes.Buffer
	p := fixtureParams(t, 5, 8)
	c := policyCore(t, dir, p, &log)
	defer c.close()
	wantPolicyLog(t, log.String(), policy(0, 0), policy(5, 8), 20)
	wantCheckpoint(t, dir, p)
	wantTotals(t, c, 30, 0, 0)
	wantReasons(t, c, fixtureVisits(100, 8), 5, 3)
	// The checkpoint was taken after the replay: the log before it is
	// trimmed, and a crash now judges nothing again under budgets 0.
	crash(t, c)
	c = policyCore(t, dir, p, &log)
	wantPolicyLog(t, log.String(), "", "", 0)
	wantTotals(t, c, 35, 0, 3)
}

// TestCorePolicyCrash: a crash leaves visits judged under budgets of 3
// after the last checkpoint; the open with budgets of 10 judges them
// again under 3, as they were judged, then adopts 10.
func TestCorePolicyCrash(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	p := fixtureParams(t, 3, 300)
	c := policyCore(t, dir, p, &log)
	checkpointNext(c)
	wantReasons(t, c, fixtureVisits(0, 2), 2, 0)
	wantReasons(t, c, fixtureVisits(2, 4), 1, 3)
	crash(t, c)
	p = fixtureParams(t, 10, 300)
	c = policyCore(t, dir, p, &log)
	defer c.close()
	wantPolicyLog(t, log.String(), policy(3, 300), policy(10, 300), 4)
	wantCheckpoint(t, dir, p)
	wantTotals(t, c, 3, 0, 3)
	wantReasons(t, c, fixtureVisits(6, 9), 7, 2)
}

// TestCoreOtherSizing: a checkpoint of another sizing is still refused.
func TestCoreOtherSizing(t *testing.T) {
	dir := fixture(t, "v1-clean")
	p := fixtureParams(t, 0, 0)
	p.Keying = "another-secret"
	_, err := openCore(dir, p, slog.Default())
	if !errors.Is(err, judge.ErrParams) {
		t.Fatalf("unexpected error opening a checkpoint of another keying; got %v; want %v", err, judge.ErrParams)
	}
}

// TestCoreVelocity: the embedded judge applies the velocity rule it is
// opened with; an open that judges nothing (VelocityWindow 0) keeps the
// checkpoint's rule and its counts, and another rule is adopted with the
// network's counts kept, over-the-limit visits included.
func TestCoreVelocity(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	p := fixtureParams(t, 0, 0)
	p.VelocityMax, p.VelocityWindow = 3, time.Minute
	c := policyCore(t, dir, p, &log)
	wantDecided(t, c, fixtureVisits(0, 5), 3, counter.Velocity, 2)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}

	keep := p
	keep.VelocityMax, keep.VelocityWindow = 0, 0
	c = policyCore(t, dir, keep, &log)
	wantPolicyLog(t, log.String(), "", "", 0)
	wantDecided(t, c, fixtureVisits(5, 1), 0, counter.Velocity, 1)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}

	p.VelocityMax = 10
	c = policyCore(t, dir, p, &log)
	defer c.close()
	if !strings.Contains(log.String(), "policy changed") {
		t.Fatalf("a new velocity rule was not logged:\n%s", log.String())
	}
	wantCheckpoint(t, dir, p)
	wantDecided(t, c, fixtureVisits(6, 5), 4, counter.Velocity, 1)
}

// TestCommitBehindJudge: a commit waits for its append alone, not for the
// judge, here held by its lock as a checkpoint's copy holds it; Stats then
// wait until the judge has decided it.
func TestCommitBehindJudge(t *testing.T) {
	c, err := openCore(t.TempDir(), storetest.Params(t), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.mu.Lock()
	committed := make(chan error, 1)
	go func() { committed <- c.commit(fixtureVisits(0, 3), make([]counter.Reason, 3)) }()
	select {
	case err = <-committed:
	case <-time.After(10 * time.Second):
		err = errors.New("a commit waited for the judge's lock")
	}
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := counter.Total(c.stats("spring", "alice")); got[counter.Qualified] != 3 {
		t.Fatalf("unexpected counts after the commit; got %+v; want 3 qualified", got)
	}
}

// TestCommitWaitsForFullQueue: a stalled judge makes a commit wait once
// c.most batches wait for it, besides those it took before it stalled
// (one queue's worth at most), so that they stay bounded in memory.
func TestCommitWaitsForFullQueue(t *testing.T) {
	c, err := openCore(t.TempDir(), storetest.Params(t), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.most = 2
	c.mu.Lock()
	const n = 5 // past twice c.most
	var returned atomic.Int32
	committed := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.commit(fixtureVisits(i, 1), make([]counter.Reason, 1)); err != nil {
				committed <- err
				return
			}
			returned.Add(1)
		}
		committed <- nil
	}()
	time.Sleep(200 * time.Millisecond)
	got := returned.Load()
	c.mu.Unlock()
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if got < 3 || got >= n {
		t.Fatalf("unexpected commits returned while the judge stalled; got %d; want 3 or 4 (2 waiting, 1 or 2 taken)", got)
	}
	if got := counter.Total(c.stats("spring", "alice")); got[counter.Qualified] != n {
		t.Fatalf("unexpected counts; got %+v; want %d qualified", got, n)
	}
}

// TestCoreDamageJudged: damage to the visit log before the judge's
// checkpoint, to visits judged already, does not keep the store from
// opening, with the same counts; damage after it, to visits still to be
// judged, is refused, until Salvage drops the damaged batch.
func TestCoreDamageJudged(t *testing.T) {
	dir := t.TempDir()
	p := storetest.Params(t)
	seg := filepath.Join(dir, "visits", "0000000000000001.seg")
	damage := func(off int64) {
		t.Helper()
		f, err := os.OpenFile(seg, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := []byte{0}
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{b[0] ^ 0xff}, off); err != nil {
			t.Fatal(err)
		}
	}
	c, err := openCore(dir, p, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		judged(t, c, fixtureVisits(i*10, 10))
	}
	want := c.stats("spring", "alice")
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	damage(16 + 16) // the first record's payload: past its header and frame
	if c, err = openCore(dir, p, slog.Default()); err != nil {
		t.Fatalf("cannot open a store whose judged visits are damaged: %s", err)
	}
	if got := c.stats("spring", "alice"); !slices.Equal(got, want) {
		t.Fatalf("unexpected counts after damage to judged visits; got %+v; want %+v", got, want)
	}
	at := c.log.End()
	judged(t, c, fixtureVisits(100, 10))
	judged(t, c, fixtureVisits(200, 10)) // damage to the last append is a torn one
	total := counter.Total(c.stats("spring", "alice"))
	before := total.Clicks()
	crash(t, c)
	damage(at.Pos + 16)
	if _, err := openCore(dir, p, slog.Default()); !errors.Is(err, visitlog.ErrCorrupt) {
		t.Fatalf("unexpected open of a store whose visits to judge are damaged; got %v; want ErrCorrupt", err)
	}
	// Salvaged, it opens without the damaged batch's 10 visits.
	done, err := Salvage(dir)
	if err != nil || len(done) != 1 || done[0].Damage != at.Pos || done[0].Kept != 1 {
		t.Fatalf("unexpected salvage; got %+v, %v; want the damaged batch dropped, the one after it kept", done, err)
	}
	if c, err = openCore(dir, p, slog.Default()); err != nil {
		t.Fatalf("cannot open a salvaged store: %s", err)
	}
	defer c.close()
	if total = counter.Total(c.stats("spring", "alice")); total.Clicks() != before-10 {
		t.Fatalf("unexpected clicks after the salvage; got %d; want %d, the damaged batch's 10 fewer", total.Clicks(), before-10)
	}
}

// TestCoreCheckpointDamaged: a damaged checkpoint is moved aside and the
// previous one loaded, the log judged again from there: the same counts
// and the same dedupe state. A checkpoint missing (a crash between the two
// renames of a save) falls back the same way; with both damaged the store
// does not open.
func TestCoreCheckpointDamaged(t *testing.T) {
	dir := t.TempDir()
	p := storetest.Params(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	open := func() *core {
		t.Helper()
		c, err := openCore(dir, p, logger)
		if err != nil {
			t.Fatalf("cannot open: %s", err)
		}
		return c
	}
	closeCore := func(c *core) {
		t.Helper()
		if err := c.close(); err != nil {
			t.Fatal(err)
		}
	}
	cur, prev := filepath.Join(dir, checkpointName), filepath.Join(dir, prevName)
	damage := func(path string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logSegmentBytes = 4096 // a segment every few batches, to see what is trimmed
	t.Cleanup(func() { logSegmentBytes = 0 })
	c := open()
	judged(t, c, fixtureVisits(0, 10))
	closeCore(c)
	c = open()
	for i := range 30 {
		judged(t, c, fixtureVisits(10+10*i, 10))
	}
	want := c.stats("spring", "alice")
	closeCore(c)
	if segs, _ := filepath.Glob(filepath.Join(dir, "visits", "*.seg")); len(segs) < 3 {
		t.Fatalf("unexpected visit log of %d segments; want several", len(segs))
	}
	good, err := os.ReadFile(cur)
	if err != nil {
		t.Fatal(err)
	}

	damage(cur)
	// Salvage reads the log from the checkpoint a start would load.
	if done, err := Salvage(dir); err != nil || len(done) != 0 {
		t.Fatalf("unexpected salvage with the checkpoint damaged; got %+v, %v; want nothing to do", done, err)
	}
	c = open()
	if got := c.stats("spring", "alice"); !slices.Equal(got, want) {
		t.Fatalf("unexpected counts from the previous checkpoint; got %+v; want %+v", got, want)
	}
	if !strings.Contains(logs.String(), "the judge's checkpoint is damaged") {
		t.Fatalf("the fallback was not logged:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, damagedName)); err != nil {
		t.Fatalf("the damaged checkpoint was not moved aside: %s", err)
	}
	// The visits judged again are known as they were.
	if got := judged(t, c, fixtureVisits(300, 10)); got[counter.Duplicate] != 10 {
		t.Fatalf("unexpected decisions of visitors judged before the damage; got %+v; want 10 duplicates", got)
	}
	want = c.stats("spring", "alice")
	closeCore(c)

	// A crash between the renames of a save: no checkpoint, the previous one.
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	c = open()
	if got := c.stats("spring", "alice"); !slices.Equal(got, want) {
		t.Fatalf("unexpected counts with the checkpoint missing; got %+v; want %+v", got, want)
	}
	if !strings.Contains(logs.String(), "the judge's checkpoint is missing") {
		t.Fatalf("the fallback on a missing checkpoint was not logged:\n%s", logs.String())
	}
	closeCore(c)

	// Both damaged: nothing to fall back on.
	if err := os.WriteFile(cur, good, 0o600); err != nil {
		t.Fatal(err)
	}
	closeCore(open()) // the current again, then the previous one the same
	damage(cur)
	damage(prev)
	if _, err := openCore(dir, p, logger); !errors.Is(err, judge.ErrCorrupt) {
		t.Fatalf("unexpected open with both checkpoints damaged; got %v; want judge.ErrCorrupt", err)
	}
}

package boltstore

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/storetest"
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
	commit := func(c *core, vs []counter.Visit) []counter.Reason {
		t.Helper()
		out := make([]counter.Reason, len(vs))
		if err := c.commit(vs, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	crash := func(c *core) {
		c.pending.Wait()
		if err := c.log.Close(); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *core {
		t.Helper()
		c, err := openCore(dir, p)
		if err != nil {
			t.Fatalf("cannot open after a crash: %s", err)
		}
		return c
	}

	c := open()
	commit(c, batch(0, 100))
	c.saved = time.Time{} // the next commit takes a checkpoint
	commit(c, batch(1000, 100))
	commit(c, batch(2000, 100))
	want := c.stats("spring", "alice")
	if q := counter.Total(want)[counter.Qualified]; q != 153 {
		t.Fatalf("unexpected qualified before the crash; got %d; want 153", q)
	}
	crash(c)

	c = open()
	if got := c.stats("spring", "alice"); !slices.Equal(got, want) {
		t.Fatalf("unexpected counts after the crash; got %+v; want %+v", got, want)
	}
	// The dedupe state came back too: the same visitors are duplicates.
	for i, r := range commit(c, batch(2000, 100)) {
		if r != counter.Duplicate {
			t.Fatalf("unexpected reason for visit %d seen before the crash; got %v; want duplicate", i, r)
		}
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

// TestCoreFillWarning: more visitors in a window than the filters were
// sized for is said once, at a checkpoint.
func TestCoreFillWarning(t *testing.T) {
	p, err := counter.NewDedupeParams(500, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	c, err := openCore(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var log bytes.Buffer
	c.logger = slog.New(slog.NewTextHandler(&log, nil))
	day := time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	commit := func(from, n int) {
		vs := make([]counter.Visit, n)
		for i := range vs {
			vs[i] = counter.Visit{Campaign: "spring", Creator: "alice", At: day.UnixMilli(), HasAlso: true}
			binary.LittleEndian.PutUint64(vs[i].Key[:], uint64(from+i)*0x9e3779b97f4a7c15)
			binary.LittleEndian.PutUint64(vs[i].Also[:], uint64(from+i)*0xc2b2ae3d27d4eb4f)
			vs[i].SetWindow(day, 24*time.Hour)
		}
		c.saved = time.Time{} // a checkpoint with this commit
		if err := c.commit(vs, make([]counter.Reason, n)); err != nil {
			t.Fatal(err)
		}
	}
	commit(0, 400) // within the 500 visitors it was sized for
	if strings.Contains(log.String(), "past its capacity") {
		t.Fatalf("unexpected warning within capacity:\n%s", log.String())
	}
	commit(400, 600)
	commit(1000, 100)
	if n := strings.Count(log.String(), "past its capacity"); n != 1 {
		t.Fatalf("unexpected warnings past capacity; got %d; want 1:\n%s", n, log.String())
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/spool"
)

// TestDataDamaged: an embedded node whose data directory was damaged while
// it was stopped, a byte of the judge's checkpoint and a byte of the
// visits it had judged, starts, redirects, and has the counts it had: it
// falls back on the checkpoint before the damaged one and judges the log
// again from there, and does not read the visits judged before that.
// Damage to visits still to be judged stops the start until `clickgate
// store salvage`, which loses those alone.
func TestDataDamaged(t *testing.T) {
	data := t.TempDir()
	store := filepath.Join(data, "store")
	p := startServe(t, data, "--flush-interval", "0")
	code := p.setup(t)
	people := clickers(25)
	click := func(cs []*clicker) {
		t.Helper()
		for _, c := range cs {
			if err := c.click(p, code); err != nil {
				t.Fatal(err)
			}
		}
	}
	click(people[:20])
	p.stop(t) // a checkpoint: the previous one at the next stop
	p = startServe(t, data, "--flush-interval", "0")
	click(people[:5])  // duplicates
	click(people[20:]) // new
	want := p.stats(t)
	wantStats(t, want, 30, 25, 5)
	p.stop(t)

	flip(t, filepath.Join(store, "judge.checkpoint"), -1)
	flip(t, filepath.Join(store, "visits", "0000000000000001.seg"), 16+16+8) // the first visits' record

	p = startServe(t, data, "--flush-interval", "0")
	if got := p.stats(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("unexpected stats after the damage; got %v; want %v", got, want)
	}
	if logs := p.logs(); !strings.Contains(logs, "the judge's checkpoint is damaged") {
		t.Fatalf("the node did not log the damaged checkpoint:\n%s", logs)
	}
	click(people[20:21])
	click(clickers(26)[25:])
	wantStats(t, p.stats(t), 32, 26, 6)

	// Damage to visits not yet judged, which a kill -9 leaves after the
	// checkpoint, stops the start, until `clickgate store salvage` drops
	// the damaged batch: one visit of three.
	seg := filepath.Join(store, "visits", "0000000000000001.seg")
	before, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	click(clickers(29)[26:]) // three appends
	p.cmd.Process.Kill()
	<-p.exited
	after, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	first := 0 // where the three appends begin: they overwrite zeros
	for first < len(before) && before[first] == after[first] {
		first++
	}
	flip(t, seg, int64(first)+16+8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "serve", "--data", data, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "visitlog: corrupt") {
		t.Fatalf("unexpected start with damaged visits to judge; got %v; want a refusal naming the damage\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, binary, "store", "salvage", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("damaged at byte offset %d; kept 2 whole records after it", first)) {
		t.Fatalf("unexpected salvage; got %v; want the damaged append dropped and the two after it kept\n%s", err, out)
	}
	p = startServe(t, data, "--flush-interval", "0")
	wantStats(t, p.stats(t), 34, 28, 6)
	out, err = exec.CommandContext(ctx, binary, "store", "salvage", "--data", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("unexpected salvage of a running node's store; got %v; want it refused\n%s", err, out)
	}
}

// TestSpoolSalvage: `clickgate store salvage` rewrites a damaged spool
// segment too, in a data directory without an embedded store (a node on
// Redis), and the spool then opens with the batches that were whole.
func TestSpoolSalvage(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "spool")
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 3 {
		v := counter.Visit{Campaign: "spring", Creator: "alice", Key: counter.VisitorKey{byte(i + 1)}, At: now.UnixMilli()}
		v.SetWindow(now, 24*time.Hour)
		if _, err := sp.Append([]counter.Visit{v}, false); err != nil {
			t.Fatal(err)
		}
	}
	sp.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("unexpected spool segments %v", segs)
	}
	flip(t, segs[0], 8+12+4) // the first batch's payload
	if _, err := spool.Open(spool.Options{Dir: dir}); !errors.Is(err, spool.ErrCorrupt) {
		t.Fatalf("unexpected open of a damaged spool; got %v; want ErrCorrupt", err)
	}
	out, err := exec.Command(binary, "store", "salvage", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), segs[0]+": damaged at byte offset 8; kept 2 whole records after it") {
		t.Fatalf("unexpected salvage of the spool: %v\n%s", err, out)
	}
	sp, err = spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatalf("cannot open the salvaged spool: %s", err)
	}
	defer sp.Close()
	if n := len(sp.Pending(nil)); n != 2 {
		t.Fatalf("unexpected batches in the salvaged spool; got %d; want 2", n)
	}
}

// flip flips the byte at off of the file at path; -1: its middle one.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off = int64(len(b)) / 2
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

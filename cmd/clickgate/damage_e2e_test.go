package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
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

	flip := func(path string, off int64) {
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
	flip(filepath.Join(store, "judge.checkpoint"), -1)
	flip(filepath.Join(store, "visits", "0000000000000001.seg"), 16+16+8) // the first visits' record

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
	flip(seg, int64(first)+16+8)
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

package ledger

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashChildEnv switches the test binary into crashChild: the ledger
// directory it appends to.
const crashChildEnv = "CLICKGATE_LEDGER_CRASH_CHILD"

// crashChild appends batches to the ledger in dir until it is killed,
// printing "ready" once open and "acked <seq>" after each Append returns.
func crashChild(dir string) {
	l, err := Open(dir, testKey)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// The first child writes the first record; a kill may tear it, and
	// then the next child writes it again.
	if err := l.Init(testStore, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// SIGKILL rarely tears a single write(2) of a few KB, so write each
	// record in small pieces with pauses: most kills then land inside a
	// record, which is what a crash before a whole record reached the disk
	// leaves.
	l.write = func(f *os.File, p []byte) (n int, err error) {
		for len(p) > 0 {
			k := min(len(p), 256)
			m, err := f.Write(p[:k])
			n += m
			if err != nil {
				return n, err
			}
			p = p[k:]
			time.Sleep(20 * time.Microsecond)
		}
		return n, nil
	}
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		totals := l.Totals()
		var entries []Entry
		for c := range 2 {
			for i := range 30 {
				if rng.IntN(2) == 0 {
					continue
				}
				k := Key{fmt.Sprint("campaign-", c), fmt.Sprintf("creator-%02d", i)}
				e := totals[k]
				e.Campaign, e.Creator = k.Campaign, k.Creator
				e.Qualified += 1 + rng.Int64N(100)
				e.Signups += rng.Int64N(2)
				entries = append(entries, e)
			}
		}
		b, err := l.Append(Batch{At: time.Now(), Entries: entries})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Println("acked", b.Seq)
	}
	os.Exit(0)
}

// TestCrash kills a process appending to the ledger at random moments:
// after every kill the ledger opens (truncating a torn tail), verifies,
// holds every acknowledged batch, and no creator's totals went down.
func TestCrash(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	dir := t.TempDir()
	var (
		kills, torn int
		lastSeq     uint64
		ledgerID    string // once written, the first record stays
		last        = map[Key]Entry{}
		start       = time.Now()
	)
	for kills < 40 && time.Since(start) < 18*time.Second {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		acked := make(chan uint64, 1)
		go func() {
			var once sync.Once
			defer once.Do(func() { close(ready) })
			var maxSeq uint64
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					once.Do(func() { close(ready) })
				} else if s, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
					maxSeq, _ = strconv.ParseUint(s, 10, 64)
				}
			}
			acked <- maxSeq
		}()
		<-ready
		time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond)))) // the random moment of the crash
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		maxAcked := <-acked
		if err := cmd.Wait(); cmd.ProcessState.ExitCode() != -1 {
			t.Fatalf("the child was not killed: %v; stderr: %s", err, stderr.Bytes())
		}
		kills++

		l, err := Open(dir, testKey)
		if err != nil {
			t.Fatalf("cannot open the ledger after kill %d: %s", kills, err)
		}
		if l.Recovered() > 0 {
			torn++
		}
		seq, totals := l.LastSeq(), l.Totals()
		mustClose(t, l)
		r := mustVerify(t, dir)
		if r.Records != int(seq) || r.LastSeq != seq || len(r.Totals) != len(totals) {
			t.Fatalf("unexpected report after kill %d: %d records, seq %d; want %d", kills, r.Records, r.LastSeq, seq)
		}
		if seq < maxAcked || seq < lastSeq {
			t.Fatalf("lost batches at kill %d: last seq %d; acknowledged %d, seen before %d", kills, seq, maxAcked, lastSeq)
		}
		for k, old := range last {
			if e := totals[k]; e.Qualified < old.Qualified || e.Signups < old.Signups {
				t.Fatalf("totals of %v went down at kill %d: %+v -> %+v", k, kills, old, e)
			}
		}
		if ledgerID != "" && r.Ledger != ledgerID {
			t.Fatalf("unexpected ledger id after kill %d; got %q; want %q", kills, r.Ledger, ledgerID)
		}
		lastSeq, last, ledgerID = seq, totals, r.Ledger
	}
	t.Logf("%d kills in %s, %d torn tails truncated, %d batches written", kills, time.Since(start).Round(time.Millisecond), torn, lastSeq)
	if kills < 30 {
		t.Fatalf("unexpected number of kills in the time allowed; got %d; want at least 30", kills)
	}
	if torn == 0 {
		t.Fatalf("no kill left a torn tail in %d kills", kills)
	}
}

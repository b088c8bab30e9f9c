package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestEmbeddedKilled: the embedded store's node is SIGKILLed 50 times at
// random points under load and restarted each time. Each visitor keeps
// clicking until it gets its 302, so every visitor tried did get one; at
// the end qualified equals the distinct visitors exactly, and repeating
// every visitor once more qualifies nobody. The visit log and the judge's
// checkpoint lose nothing that was redirected and count nothing twice.
func TestEmbeddedKilled(t *testing.T) {
	data := t.TempDir()
	killLoop(t, func() *proc { return startServe(t, data, "--flush-interval", "0") }, nil)
}

// TestRedisJudgeKilled: the same on Redis (appendfsync always), where the
// node killed owns the judge of the campaign's partition: each restart,
// under the same data directory, takes its lease back at once and judges
// on from the last checkpoint; the visits appended to the log in between
// are judged once.
func TestRedisJudgeKilled(t *testing.T) {
	srv := faultRedis(t)
	data := t.TempDir()
	killLoop(t, func() *proc { return faultServe(t, srv, data) }, func() { judgedAll(t, srv, "spring", 1) })
}

// killLoop kills the node that start starts 50 times at random points under
// load, restarting it each time, then checks that every visitor who got a
// 302 is counted once. settle, if not nil, waits until the store has
// decided every visit committed.
func killLoop(t *testing.T, start func() *proc, settle func()) {
	const kills = 50
	p := start()
	code := p.setup(t)

	var mu sync.Mutex
	cur := p // the running node, swapped at each restart
	node := func() *proc {
		mu.Lock()
		defer mu.Unlock()
		return cur
	}
	const workers = 8
	var done sync.WaitGroup
	stop := make(chan struct{})
	var visitors [workers]int
	for w := range workers {
		done.Add(1)
		go func() {
			defer done.Done()
			for i := 0; ; {
				// The same visitor again until it has its 302, stop or
				// not: a click lost with the node may have been counted.
				if err := newClicker(fmt.Sprintf("127.6.%d.%d", w*30+i/250, 1+i%250)).click(node(), code); err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				i++
				visitors[w] = i
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	for range kills {
		time.Sleep(time.Duration(30+rand.IntN(70)) * time.Millisecond)
		p := node()
		p.cmd.Process.Kill()
		<-p.exited
		np := start()
		mu.Lock()
		cur = np
		mu.Unlock()
	}
	close(stop)
	done.Wait()
	p = node()
	p.drained(t)
	if settle != nil {
		settle()
	}
	total := 0
	for _, n := range visitors {
		total += n
	}
	st := p.stats(t)
	if q := statInt(t, st, "qualified"); q != total {
		t.Fatalf("unexpected qualified after %d kills; got %d; want %d, the distinct visitors who got a 302 (stats %v)", kills, q, total, st)
	}
	if total < 100 {
		t.Fatalf("only %d visitors got through: the test proved little", total)
	}
	// Every one of them is known: clicking again qualifies nobody.
	for w := range workers {
		for i := range visitors[w] {
			if err := newClicker(fmt.Sprintf("127.6.%d.%d", w*30+i/250, 1+i%250)).click(p, code); err != nil {
				t.Fatal(err)
			}
		}
	}
	if q := statInt(t, p.stats(t), "qualified"); q != total {
		t.Fatalf("%d visitors counted before were counted again after the kills", q-total)
	}
	if settle != nil {
		settle()
		if q := statInt(t, p.stats(t), "qualified"); q != total {
			t.Fatalf("%d visitors counted before were counted again after the kills", q-total)
		}
	}
	t.Logf("%d visitors over %d kills", total, kills)
}

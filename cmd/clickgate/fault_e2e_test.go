package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

// The fault tests run the real binary on a real redis-server and inject the
// fault: Redis stalled (SIGSTOP) or killed (SIGKILL), clickgate killed
// (SIGKILL), the spool's file system full. Each visitor clicks once from its
// own loopback address as a person, so a visitor counted twice would show as
// more qualified visits than visitors.

const faultCommitTimeout = 200 * time.Millisecond

// visitorIP is visitor i's own loopback address.
func visitorIP(i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 20+i/62500, i/250%250, 1+i%250)
}

// load clicks a link as new visitors until halted and records who got a
// 302.
type load struct {
	p       *proc
	code    string
	next    atomic.Int64
	stop    chan struct{}
	done    sync.WaitGroup
	mu      sync.Mutex
	got     map[int]bool // visitor → got its 302
	errs    []string     // anything but a 302 with a valid click id
	slowest time.Duration
	slow    string // when the slowest click started, for its failure message
	start   time.Time
}

func startLoad(p *proc, code string, workers int) *load {
	l := &load{p: p, code: code, stop: make(chan struct{}), got: map[int]bool{}, start: time.Now()}
	for range workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				i := int(l.next.Add(1) - 1)
				c := newClicker(visitorIP(i))
				// From the request written to the answer's first byte:
				// a SYN the kernel drops and retries is not clickgate's.
				var sent, answered time.Time
				trace := &httptrace.ClientTrace{
					WroteRequest:         func(httptrace.WroteRequestInfo) { sent = time.Now() },
					GotFirstResponseByte: func() { answered = time.Now() },
				}
				start := time.Now()
				err := c.clickContext(httptrace.WithClientTrace(context.Background(), trace), l.p, l.code)
				d := answered.Sub(sent)
				c.client.CloseIdleConnections()
				l.mu.Lock()
				l.got[i] = err == nil
				if err != nil {
					l.errs = append(l.errs, err.Error())
				}
				if d > l.slowest {
					l.slowest = d
					l.slow = fmt.Sprintf("visitor %d at +%s", i, start.Sub(l.start).Round(time.Millisecond))
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// halt stops the load and returns the visitors that got their 302 and how
// many tried.
func (l *load) halt() (got []int, tried int) {
	close(l.stop)
	l.done.Wait()
	for i, ok := range l.got {
		if ok {
			got = append(got, i)
		}
	}
	return got, len(l.got)
}

// metrics reads the admin listener's /metrics.
func (p *proc) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("cannot read /metrics: %s", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("unexpected /metrics answer %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("unexpected /metrics line %q", line)
		}
		m[line[:i]] = v
	}
	return m
}

func lost(m map[string]float64) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, "clickgate_visits_lost_total") {
			n += v
		}
	}
	return n
}

// drained waits until the spool holds nothing, and returns the metrics.
func (p *proc) drained(t *testing.T) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := p.metrics(t)
		if m["clickgate_spool_pending_batches"] == 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spool did not drain within 20s: %v batches\n%s", m["clickgate_spool_pending_batches"], p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statsAfterRestart reads alice's stats as a client that follows a 503's
// "try again" would, for up to 5 s, right after Redis restarted; each 503
// is logged with the node's log, which says which store call failed.
func (p *proc) statsAfterRestart(t *testing.T) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		status, st := p.call(t, "GET", "/v1/creators/alice/stats?campaign=spring", p.token, nil)
		switch {
		case status == 200:
			return st
		case status != 503 || time.Now().After(deadline):
			t.Fatalf("unexpected status of the stats after Redis restarted; got %d %v; want 200\n%s", status, st, p.logs())
		}
		t.Logf("stats after Redis restarted: 503 %v; trying again. The node's log:\n%s", st, p.logs())
	}
}

func statInt(t *testing.T, st map[string]any, name string) int {
	t.Helper()
	v, ok := st[name].(float64)
	if !ok {
		t.Fatalf("no %q in stats %v", name, st)
	}
	return int(v)
}

// faultRedis starts redis-server with appendonly yes and appendfsync
// always. Under everysec, Redis postpones its write of the append-only file
// for up to 2 s while a background fsync runs, answering meanwhile, so a
// SIGKILL can lose what it acknowledged; with always, an acknowledged write
// is on disk, and one fsync covers a whole group-committed batch.
func faultRedis(t *testing.T) *redistest.Server {
	t.Helper()
	return redistest.StartWith(t, redistest.Options{Args: []string{"--appendfsync", "always"}})
}

func faultServe(t *testing.T, srv *redistest.Server, data string, args ...string) *proc {
	t.Helper()
	return startServe(t, data, append([]string{"--redis", srv.URL(0), "--click-secret", e2eSecret,
		"--commit-timeout", faultCommitTimeout.String(), "--flush-interval", "0"}, args...)...)
}

// TestRedisPaused: Redis stalls for 5 s under load. Every click still gets
// its 302 within the commit timeout and a margin (its batch is spooled); once
// Redis is back and the spool replayed, every visitor is counted once.
func TestRedisPaused(t *testing.T) {
	srv := faultRedis(t)
	p := faultServe(t, srv, t.TempDir())
	code := p.setup(t)
	l := startLoad(p, code, 16)
	time.Sleep(500 * time.Millisecond)
	srv.Pause(t)
	paused := time.Now()
	time.Sleep(5 * time.Second)
	srv.Resume(t)
	time.Sleep(500 * time.Millisecond)
	got, tried := l.halt()
	if len(l.errs) > 0 || len(got) != tried {
		t.Fatalf("%d of %d clicks got no 302 while Redis was paused: %v", tried-len(got), tried, l.errs[:min(5, len(l.errs))])
	}
	// A margin for the spool's fsync, a new connection per click and the
	// race detector.
	const margin = 400 * time.Millisecond
	if l.slowest > faultCommitTimeout+margin {
		t.Fatalf("slowest click (%s; Redis paused at +%s) took %s; want at most %s + %s\n%s", l.slow,
			paused.Sub(l.start).Round(time.Millisecond), l.slowest, faultCommitTimeout, margin, p.logs())
	}
	m := p.drained(t)
	st := p.stats(t)
	t.Logf("%d visitors, slowest 302 %s; %v spooled, %v replayed, %v late commits; stats %v",
		len(got), l.slowest, m["clickgate_visits_spooled_total"], m["clickgate_visits_replayed_total"], m["clickgate_commits_late_total"], st)
	if m["clickgate_visits_spooled_total"] == 0 || m["clickgate_commits_late_total"] == 0 {
		t.Fatalf("nothing was spooled: the test proved nothing")
	}
	if q := statInt(t, st, "qualified"); q != len(got) || statInt(t, st, "uncounted") != 0 || lost(m) != 0 {
		t.Fatalf("unexpected counts after the pause; got qualified %d, uncounted %d, lost %v; want qualified %d, none lost",
			q, statInt(t, st, "uncounted"), lost(m), len(got))
	}
	// A visit whose commit reply was lost in the stall is replayed as a
	// duplicate: clicks may exceed visitors by those, never qualified.
	if c := statInt(t, st, "clicks"); c < len(got) || c-len(got) > int(m["clickgate_visits_spooled_total"]) {
		t.Fatalf("unexpected clicks %d for %d visitors and %v spooled visits", c, len(got), m["clickgate_visits_spooled_total"])
	}
}

// TestRedisKilled: redis-server is killed under load and restarted.
// Everything acknowledged with a 302 is in Redis once the spool is
// replayed, nothing twice. Redis runs with appendonly yes and appendfsync
// always (see faultRedis): what it acknowledged survives the kill, and
// what it did not was spooled.
func TestRedisKilled(t *testing.T) {
	srv := faultRedis(t)
	p := faultServe(t, srv, t.TempDir())
	code := p.setup(t)
	l := startLoad(p, code, 16)
	time.Sleep(500 * time.Millisecond)
	srv.Stop() // SIGKILL
	time.Sleep(1500 * time.Millisecond)
	srv.Restart(t)
	time.Sleep(500 * time.Millisecond)
	got, tried := l.halt()
	if len(l.errs) > 0 || len(got) != tried {
		t.Fatalf("%d of %d clicks got no 302 while Redis was down: %v", tried-len(got), tried, l.errs[:min(5, len(l.errs))])
	}
	m := p.drained(t)
	st := p.stats(t)
	t.Logf("%d visitors, slowest 302 %s; %v spooled, %v replayed; stats %v",
		len(got), l.slowest, m["clickgate_visits_spooled_total"], m["clickgate_visits_replayed_total"], st)
	if m["clickgate_visits_spooled_total"] == 0 || m["clickgate_visits_replayed_total"] == 0 {
		t.Fatalf("nothing was spooled and replayed: the test proved nothing")
	}
	if q := statInt(t, st, "qualified"); q != len(got) || statInt(t, st, "uncounted") != 0 || lost(m) != 0 {
		t.Fatalf("unexpected counts after the kill; got qualified %d, uncounted %d, lost %v; want qualified %d, none lost",
			q, statInt(t, st, "uncounted"), lost(m), len(got))
	}
}

// TestClickgateKilled: clickgate is killed with SIGKILL under load while
// Redis stalls, so batches are in its spool, some maybe half written. The
// next start truncates a torn tail and replays the spool: every visitor
// who got a 302 is counted (clicking again is a duplicate), and none twice
// (no more qualified visits than visitors who tried).
func TestClickgateKilled(t *testing.T) {
	srv := faultRedis(t)
	data := t.TempDir()
	p := faultServe(t, srv, data)
	code := p.setup(t)
	l := startLoad(p, code, 16)
	time.Sleep(500 * time.Millisecond)
	srv.Pause(t)
	time.Sleep(700 * time.Millisecond)
	p.cmd.Process.Kill()
	<-p.exited
	got, tried := l.halt()
	srv.Resume(t)
	p = faultServe(t, srv, data)
	if !strings.Contains(p.logs(), "spool holds batches from a previous run") {
		t.Fatalf("the restart found nothing to replay: the test proved nothing\n%s", p.logs())
	}
	m := p.drained(t)
	st := p.stats(t)
	q := statInt(t, st, "qualified")
	t.Logf("%d of %d visitors got a 302 before the kill; %v replayed after it; stats %v", len(got), tried, m["clickgate_visits_replayed_total"], st)
	if m["clickgate_visits_replayed_total"] == 0 {
		t.Fatalf("nothing was replayed after the restart")
	}
	if q < len(got) || q > tried {
		t.Fatalf("unexpected qualified %d; want between %d (302s received) and %d (visitors who tried)", q, len(got), tried)
	}
	// Every visitor who got a 302 is in the store: again, a duplicate.
	cs := make([]*clicker, len(got))
	for i, v := range got {
		cs[i] = newClicker(visitorIP(v))
	}
	clickAll(t, p, code, cs, 1)
	st = p.stats(t)
	if q2 := statInt(t, st, "qualified"); q2 != q {
		t.Fatalf("%d visitors who had their 302 were not counted: clicking again qualified them", q2-q)
	}
}

// TestSpoolFull: Redis is down and the spool's file system fills up (a
// 32 KiB tmpfs; where mount is not allowed, a spool capped by
// --spool-max-bytes). People are still redirected, the loss is counted in
// clickgate_visits_lost_total and logged, and every visitor is either
// counted once Redis is back or tallied uncounted.
func TestSpoolFull(t *testing.T) {
	srv := faultRedis(t)
	data := t.TempDir()
	dir := filepath.Join(data, "spool")
	args := []string{"--spool", dir}
	how := "a 32 KiB tmpfs"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("cannot mount a tmpfs (%s: %s); capping the spool instead", err, strings.TrimSpace(string(out)))
		args = append(args, "--spool-max-bytes", "32768")
		how = "--spool-max-bytes 32768"
	} else {
		t.Cleanup(func() {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("cannot unmount %s: %s", dir, err)
			}
		})
	}
	p := faultServe(t, srv, data, args...)
	code := p.setup(t)
	if status, _ := p.call(t, "GET", "/metrics", "", nil); status != 401 {
		t.Fatalf("unexpected status of /metrics without the admin token; got %d; want 401", status)
	}
	srv.Stop()
	l := startLoad(p, code, 16)
	deadline := time.Now().Add(15 * time.Second)
	for lost(p.metrics(t)) < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the spool (%s) did not fill up within 15s: %v", how, p.metrics(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, tried := l.halt()
	if len(l.errs) > 0 || len(got) != tried {
		t.Fatalf("%d of %d clicks got no 302 with a full spool: %v", tried-len(got), tried, l.errs[:min(5, len(l.errs))])
	}
	if !strings.Contains(p.logs(), "visits lost: neither committed nor spooled") {
		t.Fatalf("the loss was not logged:\n%s", p.logs())
	}
	srv.Restart(t)
	m := p.drained(t)
	st := p.statsAfterRestart(t)
	q, u := statInt(t, st, "qualified"), statInt(t, st, "uncounted")
	t.Logf("%s: %d visitors, %v spooled, %v lost; stats %v", how, len(got), m["clickgate_visits_spooled_total"], lost(m), st)
	if q == 0 || u == 0 || q+u != len(got) || float64(u) != lost(m) {
		t.Fatalf("unexpected counts; got qualified %d + uncounted %d (lost %v); want them to add up to %d visitors, each non-zero",
			q, u, lost(m), len(got))
	}
}

// TestShutdown: SIGTERM exits 0 within --shutdown-timeout even while Redis
// stalls, leaving the spool for the next start, which replays it; with
// Redis back, SIGTERM replays the spool itself before exiting.
func TestShutdown(t *testing.T) {
	srv := faultRedis(t)
	data := t.TempDir()
	p := faultServe(t, srv, data, "--shutdown-timeout", "3s")
	code := p.setup(t)
	cs := make([]*clicker, 50)
	for i := range cs {
		cs[i] = newClicker(visitorIP(i))
	}
	srv.Pause(t)
	clickAll(t, p, code, cs, 1)
	start := time.Now()
	p.stop(t) // SIGTERM, exit 0
	// A margin for the process's exit: the race detector's runtime alone
	// sleeps a second (GORACE atexit_sleep_ms).
	if d := time.Since(start); d > 3*time.Second+1500*time.Millisecond {
		t.Fatalf("shutdown took %s with --shutdown-timeout 3s\n%s", d, p.logs())
	}
	segs, _ := filepath.Glob(filepath.Join(data, "spool", "*.seg"))
	if len(segs) == 0 {
		t.Fatalf("no spool left after a shutdown with Redis stalled")
	}
	srv.Resume(t)

	p = faultServe(t, srv, data, "--shutdown-timeout", "3s")
	p.drained(t)
	if st := p.stats(t); statInt(t, st, "qualified") != len(cs) {
		t.Fatalf("unexpected qualified after the restart; got %v; want %d", st, len(cs))
	}
	// Redis down: visits are spooled; back up: SIGTERM does not wait for
	// the replayer's backoff.
	srv.Stop()
	more := make([]*clicker, 50)
	for i := range more {
		more[i] = newClicker(visitorIP(len(cs) + i))
	}
	clickAll(t, p, code, more, 1)
	srv.Restart(t)
	p.stop(t)
	if segs, _ := filepath.Glob(filepath.Join(data, "spool", "*.seg")); len(segs) != 0 {
		t.Fatalf("the spool was not replayed at shutdown: %v\n%s", segs, p.logs())
	}
	p = faultServe(t, srv, data)
	if st := p.stats(t); statInt(t, st, "qualified") != len(cs)+len(more) {
		t.Fatalf("unexpected qualified after the second restart; got %v; want %d", st, len(cs)+len(more))
	}
}

// TestDiskFull: an embedded node whose data directory's file system is
// full (a 16 MiB tmpfs, filled up) still redirects every click, and a
// creator's stats still answer every click, with those it tallied itself
// (here bots), which the store cannot write meanwhile, added from memory;
// once there is room, the store takes them, each once, and a restart finds
// the same.
func TestDiskFull(t *testing.T) {
	data := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("cannot mount a tmpfs as the data directory (it takes root): %s: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(data, syscall.MNT_DETACH); err != nil {
			t.Errorf("cannot unmount %s: %s", data, err)
		}
	})
	p := startServe(t, data, "--flush-interval", "0")
	code := p.setup(t)
	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := make([]byte, 64<<10); err == nil; {
		_, err = f.Write(chunk)
	}
	if f.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("unexpected error filling the data directory's file system; got %v; want ENOSPC", err)
	}
	if free := p.metrics(t)["clickgate_data_free_bytes"]; free >= 64<<10 {
		t.Fatalf("unexpected clickgate_data_free_bytes of a full disk; got %v; want less than the 64 KiB that did not fit", free)
	}
	clickAll(t, p, code, clickers(5), 1)
	bot := newClicker("127.0.30.1")
	for range 3 {
		if resp, err := bot.request(p, "GET", code, "User-Agent", "curl/8.5.0"); err != nil || resp.StatusCode != 302 {
			t.Fatalf("a bot's click on a full disk was not redirected: %v, %v", resp, err)
		}
	}
	want := func(when string, st map[string]any) {
		t.Helper()
		if statInt(t, st, "clicks") != 8 || statInt(t, st, "qualified") != 5 || statInt(t, st, "bots") != 3 {
			t.Fatalf("%s: unexpected stats; got %v; want 8 clicks, 5 qualified, 3 bots", when, st)
		}
	}
	want("the disk full", p.stats(t))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	want("room again", p.stats(t))
	p.stop(t)
	p = startServe(t, data, "--flush-interval", "0")
	want("after a restart", p.stats(t))
}

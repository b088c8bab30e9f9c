package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

// traffic keeps clicking the links and converting some clicks into signups
// until stop is closed; it tolerates a node that is down.
type traffic struct {
	stop   chan struct{}
	done   sync.WaitGroup
	clicks atomic.Int64
	signup atomic.Int64
}

// traffics numbers the traffics of a test run, so that each signs up users
// of its own: a user signed up before is a duplicate, not a signup.
var traffics atomic.Int64

func startTraffic(p *proc, codes []string, appKey string) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	n := traffics.Add(1)
	for w := range 4 {
		tr.done.Add(1)
		go func() {
			defer tr.done.Done()
			for i := 0; ; i++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				c := newClicker(fmt.Sprintf("127.1.%d.%d", w, 1+i%250))
				resp, err := c.request(p, "GET", codes[i%len(codes)], "User-Agent", e2eChrome)
				if err != nil || resp.StatusCode != 302 {
					time.Sleep(5 * time.Millisecond) // the node is restarting
					continue
				}
				tr.clicks.Add(1)
				if i%7 != 0 {
					continue
				}
				loc, _ := url.Parse(resp.Header.Get("Location"))
				body, _ := json.Marshal(map[string]any{"click_id": loc.Query().Get("cg_click"),
					"user_id": fmt.Sprintf("user-%d-%d-%d", n, w, i), "occurred_at": time.Now().UTC()})
				req, _ := http.NewRequest("POST", "http://"+p.admin+"/v1/conversions", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+appKey)
				if r, err := http.DefaultClient.Do(req); err == nil {
					if r.StatusCode == 201 {
						tr.signup.Add(1)
					}
					r.Body.Close()
				}
			}
		}()
	}
	return tr
}

func (tr *traffic) halt() {
	close(tr.stop)
	tr.done.Wait()
}

// ledgerRecords reads the ledger's records as JSON.
func ledgerRecords(t *testing.T, dir string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("ledger line is not JSON: %s", err)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkLedger verifies the ledger with the binary, checks that no batch
// appears twice (seqs contiguous, and a creator's totals strictly rise from
// one batch that names it to the next), and that its final totals equal the
// store's for every creator.
func checkLedger(t *testing.T, dir string, p *proc, creators []string) {
	t.Helper()
	out, err := exec.Command(binary, "ledger", "verify", "--ledger", dir, "--click-secret", string(p.secret)).CombinedOutput()
	if err != nil {
		t.Fatalf("ledger verify failed: %s\n%s", err, out)
	}
	var rep struct {
		Records int
		Totals  []struct {
			Campaign, Creator  string
			Qualified, Signups int64
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("cannot read ledger verify output %q: %s", out, err)
	}
	last := map[string]map[string]any{}
	for i, r := range ledgerRecords(t, dir) {
		if r["seq"] != float64(i+1) {
			t.Fatalf("unexpected seq %v at record %d", r["seq"], i+1)
		}
		entries, _ := r["entries"].([]any)
		for _, e := range entries {
			e := e.(map[string]any)
			k := e["campaign"].(string) + "/" + e["creator"].(string)
			if prev, ok := last[k]; ok && (e["qualified"].(float64) < prev["qualified"].(float64) ||
				e["signups"].(float64) < prev["signups"].(float64) || fmt.Sprint(e) == fmt.Sprint(prev)) {
				t.Fatalf("record %d repeats or lowers %s: %v after %v", i+1, k, e, prev)
			}
			last[k] = e
		}
	}
	if rep.Records == 0 {
		t.Fatalf("empty ledger")
	}
	for _, cr := range creators {
		st := p.mustCall(t, "GET", "/v1/creators/"+cr+"/stats?campaign=spring", nil, 200)
		var got [2]int64
		for _, tot := range rep.Totals {
			if tot.Campaign == "spring" && tot.Creator == cr {
				got = [2]int64{tot.Qualified, tot.Signups}
			}
		}
		if want := [2]int64{int64(st["qualified"].(float64)), int64(st["signups"].(float64))}; got != want {
			t.Fatalf("ledger totals of %s differ from the store; got qualified, signups %v; want %v", cr, got, want)
		}
		if got[0] == 0 {
			t.Fatalf("creator %s has no qualified visits: the test proved nothing", cr)
		}
	}
}

// seedCreators adds bob with a link next to setup's alice.
func seedCreators(t *testing.T, p *proc) []string {
	codes := []string{p.setup(t)}
	p.mustCall(t, "PUT", "/v1/creators/bob", map[string]any{"campaign": "spring", "country": "US"}, 201)
	out := p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": "bob",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	return append(codes, out["code"].(string))
}

func TestFlushCrashRedis(t *testing.T) {
	srv := redistest.Start(t)
	data := t.TempDir()
	p := startServe(t, data, "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "0")
	codes := seedCreators(t, p)
	tr := startTraffic(p, codes, readFile(t, filepath.Join(data, "app-key")))
	ledgerDir := t.TempDir()
	flush := func() *exec.Cmd {
		return exec.Command(binary, "flush", "--redis", srv.URL(0), "--click-secret", e2eSecret, "--ledger", ledgerDir, "--data", data)
	}
	for i := range 60 {
		cmd := flush()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Random points: before the store is read, during, while writing.
		time.Sleep(time.Duration(rand.IntN(40_000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		if i%10 == 9 {
			// Some flushes complete, so there is a chain to tear.
			if out, err := flush().CombinedOutput(); err != nil {
				t.Fatalf("flush after %d kills failed: %s\n%s", i+1, err, out)
			}
		}
	}
	tr.halt()
	if out, err := flush().CombinedOutput(); err != nil {
		t.Fatalf("clean flush failed: %s\n%s", err, out)
	}
	t.Logf("%d clicks, %d signups during 60 kills", tr.clicks.Load(), tr.signup.Load())
	if tr.signup.Load() == 0 {
		t.Fatalf("no signups were attributed: the test proved nothing about them")
	}
	checkLedger(t, ledgerDir, p, []string{"alice", "bob"})
}

func TestFlushCrashEmbedded(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data, "--flush-interval", "10ms")
	codes := seedCreators(t, p)
	app := readFile(t, filepath.Join(data, "app-key"))
	var signups int64
	for range 50 {
		tr := startTraffic(p, codes, app)
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
		p.cmd.Process.Kill()
		<-p.exited
		tr.halt()
		signups += tr.signup.Load()
		p = startServe(t, data, "--flush-interval", "10ms")
	}
	if signups == 0 {
		t.Fatalf("no signups were attributed: the test proved nothing about them")
	}
	// Stats first (they flush the tallies), then a clean stop: its last
	// flush writes the final totals.
	want := map[string]map[string]any{}
	for _, cr := range []string{"alice", "bob"} {
		want[cr] = p.mustCall(t, "GET", "/v1/creators/"+cr+"/stats?campaign=spring", nil, 200)
	}
	p.stop(t)
	p = startServe(t, data, "--flush-interval", "0")
	checkLedger(t, filepath.Join(data, "ledger"), p, []string{"alice", "bob"})
	for _, cr := range []string{"alice", "bob"} {
		got := p.mustCall(t, "GET", "/v1/creators/"+cr+"/stats?campaign=spring", nil, 200)
		if got["qualified"] != want[cr]["qualified"] || got["signups"] != want[cr]["signups"] {
			t.Fatalf("unexpected stats of %s after the clean stop; got %v; want %v", cr, got, want[cr])
		}
	}
}

func TestTornLedgerTail(t *testing.T) {
	srv := redistest.Start(t)
	data := t.TempDir()
	p := startServe(t, data, "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "0")
	codes := seedCreators(t, p)
	ledgerDir := t.TempDir()
	flush := func() (string, error) {
		out, err := exec.Command(binary, "flush", "--redis", srv.URL(0), "--click-secret", e2eSecret, "--ledger", ledgerDir, "--data", data).CombinedOutput()
		return string(out), err
	}
	for round := range 3 {
		for i := range 5 {
			if err := newClicker(fmt.Sprintf("127.2.%d.%d", round, i+1)).click(p, codes[0]); err != nil {
				t.Fatal(err)
			}
		}
		// The node's stats wait for the judge to decide the round: the
		// flush reads what the judge has published.
		p.stats(t)
		if out, err := flush(); err != nil {
			t.Fatalf("flush failed: %s\n%s", err, out)
		}
	}
	path := filepath.Join(ledgerDir, "ledger.jsonl")
	before := ledgerRecords(t, ledgerDir)
	fi, _ := os.Stat(path)
	if err := os.Truncate(path, fi.Size()-7); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary, "ledger", "verify", "--ledger", ledgerDir, "--click-secret", e2eSecret).CombinedOutput(); err == nil {
		t.Fatalf("ledger verify passed a torn tail:\n%s", out)
	}
	out, err := flush()
	if err != nil || !strings.Contains(out, "torn tail") {
		t.Fatalf("flush did not repair the torn tail: %v\n%s", err, out)
	}
	after := ledgerRecords(t, ledgerDir)
	// The torn batch is written again, once, with the same seq.
	if len(after) != len(before) || after[len(after)-1]["seq"] != before[len(before)-1]["seq"] {
		t.Fatalf("unexpected records after repair; got %d, last seq %v; want %d, last seq %v",
			len(after), after[len(after)-1]["seq"], len(before), before[len(before)-1]["seq"])
	}
	checkLedger(t, ledgerDir, p, []string{"alice"})
}

// TestLedgerOwnership: one ledger per store, both ways. A node flushes on
// demand through its admin API; another store's node pointed at the
// ledger is refused by name; a lost ledger stops the start with the way
// out, which --reclaim-ledger then takes.
func TestLedgerOwnership(t *testing.T) {
	a := t.TempDir()
	p := startServe(t, a, "--flush-interval", "1h")
	code := p.setup(t)
	if err := newClicker("127.4.0.1").click(p, code); err != nil {
		t.Fatal(err)
	}
	// The node holds the ledger: clickgate flush asks it to flush.
	out, err := exec.Command(binary, "flush", "--data", a, "--admin-url", "http://"+p.admin).CombinedOutput()
	var res struct {
		Seq, Creators int
		LastSeq       int `json:"last_seq"`
		Sealed        []string
		Head          string
	}
	if err != nil || json.Unmarshal(out, &res) != nil || res.Seq != 2 || res.Creators != 1 || res.LastSeq != 2 || res.Sealed == nil {
		t.Fatalf("unexpected clickgate flush through the admin API: %v\n%s", err, out)
	}
	if !strings.Contains(p.logs(), "msg=flushed seq=2 creators=1") {
		t.Fatalf("the flush was not logged:\n%s", p.logs())
	}
	p.stop(t)

	// Whole records cut off the end leave a valid chain; --head catches it.
	verify := func() ([]byte, error) {
		return exec.Command(binary, "ledger", "verify", "--data", a, "--head", res.Head).CombinedOutput()
	}
	if out, err := verify(); err != nil {
		t.Fatalf("ledger verify --head of the last flush failed: %v\n%s", err, out)
	}
	path := filepath.Join(a, "ledger", "ledger.jsonl")
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.LastIndexByte(whole[:len(whole)-1], '\n') + 1
	if err := os.WriteFile(path, whole[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary, "ledger", "verify", "--data", a).CombinedOutput(); err != nil {
		t.Fatalf("ledger verify of a ledger cut at a record failed: %v\n%s", err, out)
	}
	if out, err := verify(); err == nil || !strings.Contains(string(out), "does not extend head "+res.Head) {
		t.Fatalf("ledger verify --head passed a ledger cut before that head: %v\n%s", err, out)
	}
	if err := os.WriteFile(path, whole, 0o600); err != nil {
		t.Fatal(err)
	}

	// Another store, with the same key, pointed at a's ledger.
	msg := serveFails(t, "--data", t.TempDir(), "--ledger", filepath.Join(a, "ledger"), "--click-secret", string(p.secret))
	if !strings.Contains(msg, "was created for store") || !strings.Contains(msg, "point --ledger at this store's own ledger") {
		t.Fatalf("a ledger of another store was not refused by name:\n%s", msg)
	}
	// The node's ledger is lost.
	if err := os.Rename(filepath.Join(a, "ledger"), filepath.Join(a, "ledger.lost")); err != nil {
		t.Fatal(err)
	}
	msg = serveFails(t, "--data", a)
	if !strings.Contains(msg, "is flushed into ledger") || !strings.Contains(msg, "--reclaim-ledger") || !strings.Contains(msg, "--flush-interval 0") {
		t.Fatalf("a lost ledger did not stop the start with the way out:\n%s", msg)
	}
	p = startServe(t, a, "--flush-interval", "1h", "--reclaim-ledger")
	if !strings.Contains(p.logs(), "reclaimed the store for this ledger") {
		t.Fatalf("the reclaim was not logged:\n%s", p.logs())
	}
	p.stop(t)
	p = startServe(t, a, "--flush-interval", "0")
	checkLedger(t, filepath.Join(a, "ledger"), p, []string{"alice"})
	p.stop(t)
	// And the old ledger, restored, no longer flushes the store.
	if err := os.Rename(filepath.Join(a, "ledger"), filepath.Join(a, "ledger.new")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a, "ledger.lost"), filepath.Join(a, "ledger")); err != nil {
		t.Fatal(err)
	}
	if out := serveFails(t, "--data", a); !strings.Contains(out, "is flushed into ledger") {
		t.Fatalf("the old ledger flushed a store reclaimed from it:\n%s", out)
	}
}

// serveFails runs clickgate serve, which must exit non-zero within 30 s,
// and returns its output.
func serveFails(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, args...)
	out, err := exec.CommandContext(ctx, binary, all...).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("clickgate serve %v did not fail: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestLedgerWriteFails: a flush whose ledger write fails partway through
// its record (here the file size limit, lowered with prlimit: a real EFBIG
// from the kernel, as a full disk gives ENOSPC) fails, and the node goes
// on serving. Once the limit is lifted, the next flush cuts the half
// record off before it writes: the ledger verifies, and the record takes
// the failed one's seq.
func TestLedgerWriteFails(t *testing.T) {
	srv := redistest.Start(t)
	data := t.TempDir()
	// On Redis, the ledger is the only file the node writes meanwhile.
	p := startServe(t, data, "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "1h")
	code := p.setup(t)
	type result struct{ Seq int }
	flush := func() (result, []byte, error) {
		out, err := exec.Command(binary, "flush", "--data", data, "--admin-url", "http://"+p.admin).CombinedOutput()
		var res result
		if err == nil {
			err = json.Unmarshal(out, &res)
		}
		return res, out, err
	}
	fsize := func(limit string) {
		t.Helper()
		if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(p.cmd.Process.Pid), "--fsize="+limit).CombinedOutput(); err != nil {
			t.Fatalf("cannot set the node's file size limit: %s\n%s", err, out)
		}
	}
	people := clickers(3)
	if err := people[0].click(p, code); err != nil {
		t.Fatal(err)
	}
	if res, out, err := flush(); err != nil || res.Seq != 2 {
		t.Fatalf("unexpected first flush: %v\n%s", err, out)
	}
	path := filepath.Join(data, "ledger", "ledger.jsonl")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fsize(strconv.FormatInt(fi.Size()+20, 10) + ":") // the soft limit only
	if err := people[1].click(p, code); err != nil {
		t.Fatal(err)
	}
	failed := func() float64 { return p.metrics(t)[`clickgate_ledger_flushes_total{result="error"}`] }
	failed0 := failed()
	if _, out, err := flush(); err == nil || !strings.Contains(string(out), "503") || !strings.Contains(string(out), "file too large") {
		t.Fatalf("unexpected flush past the file size limit; got %v; want a 503 with the cause\n%s", err, out)
	}
	if d := failed() - failed0; d != 1 {
		t.Fatalf("unexpected clickgate_ledger_flushes_total{result=\"error\"} after a failed flush; got %+v; want +1", d)
	}
	if b, err := os.ReadFile(path); err != nil || len(b) != int(fi.Size())+20 {
		t.Fatalf("unexpected ledger after the failed write: %d bytes, %v; want the half record the limit let through", len(b), err)
	}
	if err := people[2].click(p, code); err != nil {
		t.Fatalf("a click was not redirected after the ledger broke: %s", err)
	}
	wantStats(t, p.stats(t), 3, 3, 0) // counting goes on
	fsize("unlimited")
	if res, out, err := flush(); err != nil || res.Seq != 3 {
		t.Fatalf("unexpected flush once the ledger can be written; got %v; want seq 3, the failed record's\n%s", err, out)
	}
	if out, err := exec.Command(binary, "ledger", "verify", "--data", data, "--click-secret", e2eSecret).CombinedOutput(); err != nil {
		t.Fatalf("the repaired ledger does not verify: %v\n%s", err, out)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/bench"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// startBaseline runs `clickbench baseline args...` and returns its address.
func startBaseline(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"baseline", "--listen", "127.0.0.1:0"}, args...), io.Discard, pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("baseline exited %d", code)
		}
	})
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`listen=(\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, pr)
			return m[1]
		}
	}
	t.Fatal("baseline did not start")
	return ""
}

func TestBaselineCommand(t *testing.T) {
	addr := startBaseline(t, "--links", "10")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/L0000009")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://app.example.com/join?l=9" {
		t.Fatalf("unexpected answer; got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, err := c.Get("http://" + addr + "/L0000010"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("unexpected answer for an unknown code: %v %v", resp, err)
	}
}

func TestRunCommand(t *testing.T) {
	addr := startBaseline(t)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"run", "--target", addr, "--requests", "500", "--connections", "8", "--json", "--quiet"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep struct {
		Result struct {
			Requests int64                       `json:"requests"`
			Kinds    map[string]map[string]int64 `json:"kinds"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json wrote no JSON: %s\n%s", err, out.String())
	}
	if p := rep.Result.Kinds["person"]; rep.Result.Requests != 500 || p["sent"] == 0 || p["ok"] != p["sent"] {
		t.Fatalf("unexpected report: %+v", rep.Result)
	}
	out.Reset()
	if code := run(context.Background(), []string{"run", "--target", addr, "--rate", "400", "--duration", "500ms"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "open loop at 400 req/s") || !strings.Contains(out.String(), "send lag") {
		t.Fatalf("open loop: exit %d\n%s", code, out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"fly"},
		{"baseline", "--links", "0"},
		{"run", "--duration", "0"},
		{"run", "--connections", "0"},
		{"run", "--audit"},
		{"run", "--crawlers", "0.9", "--previews", "0.2"},
		{"run", "--address-base", "70000"},
		{"run", "stray"},
		{"seed"},
		{"seed", "--visitors-per-address", "99", "--admin-token", "x"},
		{"run", "--addresses-per-block", "0"},
		{"run", "--addresses-per-block", "255"},
		{"run", "--fraud", "-0.1"},
		{"run", "--fraud", "0.9"},
		{"run", "--budget-block", "-1"},
		{"loadtest", "--open-share", "0"},
		{"loadtest", "--new-visitors"},
		{"baseline", "--redis", "redis://127.0.0.1:1", "--durable", "floor.log"},
	} {
		var errb bytes.Buffer
		if code := run(context.Background(), args, io.Discard, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}

func TestVerdicts(t *testing.T) {
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("unexpected verdict; got %q; want %q", got, want)
		}
	}
	f(atLeast(0.83, 0.8, "%.2f×"), "met")
	f(atLeast(0.67, 0.8, "%.2f×"), "**missed** by 0.13×")
	f(atMost(0.4, 1, "%.2f µs"), "met")
	f(atMost(3.5, 1, "%.2f µs"), "**missed** by 2.50 µs")
	f(atLeast(1.5, 2.1, "%.2f×"), "**missed** by 0.60×")
	f(atLeast(0.648, 0.65, "%.2f×"), "**missed** by 0.002×")
	f(atMost(1.0004, 1, "%.2f s"), "**missed** by 0.0004 s")
}

// TestRoundRatio: the median of the rounds' ratios pairs each round with
// the other design's round of the same turn, so a slow turn that halved
// both moves it not at all, where it moves the ratio of the totals.
func TestRoundRatio(t *testing.T) {
	phaseOf := func(tps ...float64) *phase {
		p := &phase{}
		for _, tp := range tps {
			p.rounds = append(p.rounds, &bench.Result{Throughput: tp})
		}
		return p
	}
	bare := phaseOf(100, 50, 100, 100, 100)
	gate := phaseOf(60, 30, 60, 60, 20)
	if got := roundRatio(gate, bare); got != 0.6 {
		t.Fatalf("unexpected median of the rounds' ratios; got %v; want 0.6", got)
	}
	if got := roundRatio(phaseOf(80), phaseOf(100)); got != 0.8 {
		t.Fatalf("unexpected ratio of one round; got %v; want 0.8", got)
	}
}

// TestRewritten: settling a design waits for its redis-server's rewrite
// of the append-only file, made slow here by rdb-key-save-delay.
func TestRewritten(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Args: []string{"--appendonly", "yes", "--rdb-key-save-delay", "100000"}})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	for i := range 5 {
		rdb.Set(ctx, fmt.Sprint("k", i), i, 0)
	}
	if err := rdb.BgRewriteAOF(ctx).Err(); err != nil {
		t.Fatalf("cannot start a rewrite: %s", err)
	}
	l := &loadtester{ctx: ctx}
	start := time.Now()
	l.rewritten(&row{nodes: []*redis.Client{rdb}})
	if n := redisInfo(ctx, rdb, "aof_rewrite_in_progress") + redisInfo(ctx, rdb, "aof_rewrite_scheduled"); n != 0 {
		t.Fatalf("rewritten returned during a rewrite")
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("rewritten returned after %s; the rewrite of 5 keys at 100 ms a key takes longer", took)
	}
}

// TestCheckpointsOf reads the checkpoints' histograms as two nodes'
// scrapes summed give them: the longest is the first bucket that holds
// every checkpoint.
func TestCheckpointsOf(t *testing.T) {
	m := map[string]float64{
		"clickgate_judge_checkpoint_seconds_count":                    5,
		"clickgate_judge_checkpoint_seconds_sum":                      0.9,
		`clickgate_judge_checkpoint_seconds_bucket{le="0.05"}`:        2,
		`clickgate_judge_checkpoint_seconds_bucket{le="0.1"}`:         4,
		`clickgate_judge_checkpoint_seconds_bucket{le="0.25"}`:        4,
		`clickgate_judge_checkpoint_seconds_bucket{le="0.5"}`:         5,
		`clickgate_judge_checkpoint_seconds_bucket{le="1"}`:           5,
		`clickgate_judge_checkpoint_seconds_bucket{le="+Inf"}`:        5,
		"clickgate_judge_checkpoint_bytes_sum":                        5e7,
		"clickgate_judge_checkpoint_bytes_count":                      5,
		`clickgate_judge_checkpoint_bytes_bucket{le="1.6777216e+07"}`: 5,
	}
	want := checkpoints{count: 5, seconds: 0.9, bytes: 5e7, longest: 0.5}
	if got := checkpointsOf(m); got != want {
		t.Fatalf("unexpected checkpoints; got %+v; want %+v", got, want)
	}
	if got := checkpointsOf(map[string]float64{}); got.count != 0 {
		t.Fatalf("unexpected checkpoints of an empty scrape; got %+v", got)
	}
}

// TestDatasetText: a used_memory_dataset Redis reported wrapped below zero
// is said unknown, not printed as 18 million terabytes.
func TestDatasetText(t *testing.T) {
	if got, want := datasetText(5e6, 1_000_000), "5000000 bytes, 5.00 per visitor"; got != want {
		t.Fatalf("unexpected text; got %q; want %q", got, want)
	}
	if got := datasetText(math.NaN(), 1_000_000); !strings.HasPrefix(got, "unknown") {
		t.Fatalf("unexpected text of an unknown dataset; got %q", got)
	}
}

// TestCPULines: the --server-cpu lists whose steal time the report sums.
func TestCPULines(t *testing.T) {
	for _, tc := range []struct {
		cpus string
		want []string
	}{
		{"0", []string{"cpu0"}},
		{"0,2", []string{"cpu0", "cpu2"}},
		{"1-3", []string{"cpu1", "cpu2", "cpu3"}},
		{"0,4-5", []string{"cpu0", "cpu4", "cpu5"}},
		{"", []string{"cpu"}},
		{"x", []string{"cpu"}},
	} {
		got := slices.Sorted(maps.Keys(cpuLines(tc.cpus)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("unexpected lines of %q; got %v; want %v", tc.cpus, got, tc.want)
		}
	}
	// Counters only grow: every CPU's, read after CPU 0's, holds it.
	if s0 := stealCPU("0"); s0 < 0 || stealCPU("") < s0 {
		t.Fatalf("unexpected steal: CPU 0's %v, every CPU's after it %v", s0, stealCPU(""))
	}
}

func TestCallTimes(t *testing.T) {
	var c callTimes
	before := time.Now()
	if c.busy(before) {
		t.Fatal("busy before any call")
	}
	c.begin()
	during := time.Now()
	if !c.busy(during) {
		t.Fatal("not busy while a call is in flight")
	}
	time.Sleep(time.Millisecond)
	took := c.end()
	between := time.Now()
	time.Sleep(time.Millisecond)
	c.begin()
	c.end()
	after := time.Now()
	switch {
	case took <= 0:
		t.Fatalf("a call took %s", took)
	case c.busy(before), c.busy(between), c.busy(after):
		t.Fatal("busy outside the calls")
	case !c.busy(during):
		t.Fatal("not busy during the first call, once it ended")
	}
}

// TestImportCall: the bulk import test's client finds the count and the
// last code in an answer of many links without decoding it, and refuses
// an answer that did not create them all.
func TestImportCall(t *testing.T) {
	const n = 5000
	status := http.StatusCreated
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if req.Header.Get("Authorization") != "Bearer "+loadtestToken || req.URL.Path != "/v1/links:bulk" || bytes.Count(body, []byte("\n")) != n {
			http.Error(w, "bad request", 400)
			return
		}
		type link struct {
			Line int    `json:"line"`
			Code string `json:"code"`
			URL  string `json:"url"`
		}
		ans := struct {
			Created int    `json:"created"`
			Links   []link `json:"links"`
		}{Created: n}
		for i := range n {
			ans.Links = append(ans.Links, link{i + 1, fmt.Sprintf("c%07d", i), fmt.Sprintf("https://go.example.com/c%07d", i)})
		}
		b, _ := json.MarshalIndent(ans, "", "  ")
		w.WriteHeader(status)
		w.Write(append(b, '\n'))
	}))
	defer srv.Close()
	l := &loadtester{ctx: context.Background(), importBatch: n}
	r := &row{admin: &adminclient.Client{URL: srv.URL}}
	body := bytes.Repeat([]byte("{}\n"), n)
	if last, err := l.importCall(r, body); err != nil || last != fmt.Sprintf("c%07d", n-1) {
		t.Fatalf("got %q, %v; want the last code", last, err)
	}
	status = http.StatusOK // a dry run's, say: nothing created
	if _, err := l.importCall(r, body); err == nil {
		t.Fatal("an answer other than 201 taken for an import")
	}
	l.importBatch = n + 1
	if _, err := l.importCall(r, bytes.Repeat([]byte("{}\n"), n+1)); err == nil {
		t.Fatal("a refused import taken for one")
	}
}

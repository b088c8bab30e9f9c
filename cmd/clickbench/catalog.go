package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clickgate/clickgate/bench"
	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/redisstore"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// importRounds are the rounds of the bulk import test for each design,
// taking turns with the others; each lasts importRoundLen open-loop
// durations, long enough for bulk calls and pauses to alternate in it.
const (
	importRounds   = 4
	importRoundLen = 1.5
)

// importShare bounds the bulk import test's rate: at most this share of
// the slowest clickgate design's closed-loop maximum. Above a design's
// capacity its queue grows for as long as the round lasts, and its p99
// measures that, whatever the import does. The import's own work comes
// on top, and so does the time the hypervisor takes from the core (the
// stolen column): at 0.6, in a run where it took 0.18-0.30 of the core,
// every round's p99 was 0.5-1.2 s, with an import or without.
const importShare = 0.4

// importCreator owns the imported links; importDestination is short, so
// that 10,000 lines fit in the admin listener's 1 MiB.
const (
	importCreator     = "importer"
	importDestination = "https://a.example/i"
)

// importResult is what a design's bulk imports took while the open loop
// ran.
type importResult struct {
	links int
	calls []time.Duration // each POST /v1/links:bulk, to its answer
	// slow are the edges' commits over slowCommit in the rounds, and
	// slowDuring those of them that ended while a call was in flight.
	slow, slowDuring float64
	// served is, for each call, how long after its answer every other
	// edge served its last link (a cluster's edges only).
	served []time.Duration
}

// importUnderLoad runs the open loop again on every clickgate design, in
// rounds that take turns with the others, while bulk calls of
// l.importBatch links on the first edge alternate with pauses as long: the
// latency of each request goes to its result's Busy when a call was in
// flight at its due time, and to its Quiet otherwise. Both sides share every slow spell
// of the machine, as they alternate every few seconds in every round.
func (l *loadtester) importUnderLoad(rows []*row) error {
	round := time.Duration(importRoundLen * float64(l.duration))
	l.importRate = l.openRate
	for _, r := range rows {
		if r.clickgate {
			l.importRate = min(l.importRate, importShare*r.max.res.Throughput)
		}
	}
	line, err := adminclient.JSONLines(adminclient.NewLink{Campaign: bench.CampaignID(0), Creator: importCreator,
		Destinations: counter.Destinations{Default: importDestination}})
	if err != nil {
		return err
	}
	body := bytes.Repeat(line, l.importBatch)
	for i := range importRounds {
		for _, r := range rows {
			if !r.clickgate {
				continue
			}
			if r.imp == nil {
				r.imp = &importResult{}
			}
			calls := &callTimes{}
			slow0 := slowCommits(r.scrape())
			done := make(chan error, 1)
			go func() { done <- l.importLoop(r, body, calls, time.Now().Add(round)) }()
			res, err := l.round(r, &r.importing, l.model, bench.LoadOptions{Rate: l.importRate, Duration: round, Busy: calls.busy}, nil)
			if ierr := <-done; err == nil && ierr != nil {
				err = fmt.Errorf("%s: bulk import: %w", r.name, ierr)
			}
			if err != nil {
				return err
			}
			r.imp.slow += slowCommits(r.scrape()) - slow0
			fmt.Fprintf(l.stderr, "import round %d/%d, %s at %.0f req/s, %d links so far: p99 %s without a call in flight, %s with; commits over %s so far: %.0f, %.0f of them during calls\n",
				i+1, importRounds, r.name, res.Rate, r.imp.links, res.Quiet.Latency.P99, res.Busy.Latency.P99, slowCommit, r.imp.slow, r.imp.slowDuring)
		}
	}
	for _, r := range rows {
		if r.clickgate {
			r.merge(&r.importing)
		}
	}
	return nil
}

// importLoop posts body, l.importBatch links of importCreator, to r's
// first edge until end, each call followed by a pause of about its length
// (0.5 to 1.5 times, so that the calls do not fall in step with anything
// periodic); after each call it waits until every other edge serves the
// call's last link. A call that would run past end is not made.
// importCreator's counters (the checks' HEADs) are not audited.
func (l *loadtester) importLoop(r *row, body []byte, calls *callTimes, end time.Time) error {
	var took time.Duration
	for time.Now().Add(took).Before(end) {
		slow0 := slowCommits(r.scrape())
		calls.begin()
		last, err := l.importCall(r, body)
		took = calls.end()
		if err != nil {
			return err
		}
		r.imp.slowDuring += slowCommits(r.scrape()) - slow0
		r.imp.calls = append(r.imp.calls, took)
		r.imp.links += l.importBatch
		answered := time.Now()
		for _, t := range r.targets[1:] {
			if _, err := l.waitServed(t, last, 10*time.Second); err != nil {
				return err
			}
		}
		if len(r.targets) > 1 {
			r.imp.served = append(r.imp.served, time.Since(answered))
		}
		pause := time.Duration(float64(took) * (0.5 + rand.Float64()))
		select {
		case <-time.After(min(pause, time.Until(end))):
		case <-l.ctx.Done():
			return l.ctx.Err()
		}
	}
	return nil
}

// importCall posts body to r's first edge, one POST /v1/links:bulk, and
// returns the code of the last link created once the answer has arrived.
// It reads the answer, which lists every link, a buffer at a time and
// keeps only its head and its end: decoding it whole would allocate
// megabytes, and run the collector of the load generator, which shares
// this process.
func (l *loadtester) importCall(r *row, body []byte) (last string, err error) {
	req, err := http.NewRequestWithContext(l.ctx, "POST", r.admin.URL+"/v1/links:bulk", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+loadtestToken)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("bulk import: %w", err)
	}
	defer resp.Body.Close()
	// The answer's first 64 bytes and last 256, in buffers that never grow.
	head, tail, buf := make([]byte, 0, 64), make([]byte, 0, 512), make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		head = append(head, buf[:min(n, cap(head)-len(head))]...)
		tail = append(tail, buf[max(0, n-256):n]...)
		if len(tail) > 256 {
			tail = append(tail[:0], tail[len(tail)-256:]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("bulk import: %w", err)
		}
	}
	m := createdRE.FindSubmatch(head)
	i := bytes.LastIndex(tail, []byte(`"code": "`))
	if resp.StatusCode != http.StatusCreated || m == nil || string(m[1]) != strconv.Itoa(l.importBatch) || i < 0 {
		return "", fmt.Errorf("bulk import of %d links: %s, %.200s", l.importBatch, resp.Status, head)
	}
	last, _, _ = strings.Cut(string(tail[i+len(`"code": "`):]), `"`)
	return last, nil
}

// slowCommit is how long a commit takes to count as slow: at the import
// test's rates, every connection of the open loop waits for one so long
// (a new visitor's redirect waits for the commit of its visit), and the
// requests due meanwhile leave late.
const slowCommit = 50 * time.Millisecond

// slowCommits returns the commits over slowCommit in metrics, an edge's
// or the sum of several (clickgate_commit_duration_seconds).
func slowCommits(metrics map[string]float64) float64 {
	const h = "clickgate_commit_duration_seconds"
	return metrics[h+"_count"] - metrics[h+`_bucket{le="0.05"}`]
}

// createdRE finds how many links a bulk import's answer says it created.
var createdRE = regexp.MustCompile(`^\{\s*"created": (\d+)`)

// callTimes are when bulk calls were in flight, one at a time.
type callTimes struct {
	mu    sync.Mutex
	spans [][2]time.Time // start, end; end zero while in flight
}

// begin records a call starting now.
func (c *callTimes) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spans = append(c.spans, [2]time.Time{time.Now()})
}

// end records the call in flight ending now, and returns its length.
func (c *callTimes) end() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.spans[len(c.spans)-1]
	s[1] = time.Now()
	return s[1].Sub(s[0])
}

// busy reports whether a call was in flight at t, which is not in the
// future: the last call that began at t or before had not ended by then.
func (c *callTimes) busy(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.spans) - 1; i >= 0; i-- {
		if s := c.spans[i]; !t.Before(s[0]) {
			return s[1].IsZero() || t.Before(s[1])
		}
	}
	return false
}

// catalogResult is a server's start with many links in its store.
type catalogResult struct {
	links  int
	stores []catalogStore
}

// catalogStore is one store's figures: a server started on an empty
// catalog (but for a campaign and its creator), then on links more.
type catalogStore struct {
	name          string
	fill          time.Duration // links written through the store's CreateLinks, 1000 a call
	start, start0 time.Duration // from exec to serving, with the links and without
	rss, rss0     float64       // VmRSS after start, bytes
	heap, heap0   float64       // go_memstats_heap_inuse_bytes after a GC, bytes
	redis, redis0 float64       // used_memory_dataset of Redis, bytes
	servedLinks   int           // the table's links, from the serving line
	perLinkHeap   float64
	perLinkRSS    float64
	perLinkRedis  float64
}

var linksRE = regexp.MustCompile(`public=(\S+) admin=(\S+).* links=(\d+)`)

// catalogStart measures the start of a clickgate server with n links in
// its store, on Redis and on the embedded store: the links are written
// through the store's own CreateLinks from this process (the bulk API's
// path without HTTP), then the server starts, reads them all and builds
// its table; memory per link is the server's heap and RSS over an empty
// catalog's.
func (l *loadtester) catalogStart(n int) (*catalogResult, error) {
	out := &catalogResult{links: n}
	params, err := counter.NewDedupeParams(1_000_000, l.limits.FP)
	if err != nil {
		return nil, err
	}
	params.Keying = redirect.KeyingFingerprint([]byte(loadtestToken))
	flags := []string{"--dedupe-expected", "1000000"}

	// Redis.
	rp, rdb, err := l.redis()
	if err != nil {
		return nil, err
	}
	defer rp.stop()
	defer rdb.Close()
	url := "redis://" + rdb.Options().Addr
	rs := catalogStore{name: "Redis"}
	// One data directory for both starts: its ledger is the store's.
	rdata, err := os.MkdirTemp(l.tmp, "catalog")
	if err != nil {
		return nil, err
	}
	err = l.catalogRun(&rs, n, append(flags, "--redis", url, "--click-secret", loadtestToken, "--data", rdata), func() float64 {
		return redisInfo(l.ctx, rdb, "used_memory_dataset")
	}, func(write func(linkWriter) error) error {
		s, err := redisstore.Open(l.ctx, redisstore.Options{URL: url, Params: params})
		if err != nil {
			return err
		}
		defer s.Close()
		return write(s)
	})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	out.stores = append(out.stores, rs)

	// Embedded.
	data, err := os.MkdirTemp(l.tmp, "catalog")
	if err != nil {
		return nil, err
	}
	es := catalogStore{name: "embedded"}
	err = l.catalogRun(&es, n, append(flags, "--data", data, "--click-secret", loadtestToken), nil, func(write func(linkWriter) error) error {
		s, err := boltstore.Open(filepath.Join(data, "store"), params)
		if err != nil {
			return err
		}
		defer s.Close()
		return write(s)
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	out.stores = append(out.stores, es)
	return out, nil
}

type linkWriter interface {
	CreateLinks(ctx context.Context, links []counter.Link) error
}

// catalogRun starts a server with args (its store and data directory) on
// its empty store and seeds one
// campaign and creator, stops it, writes n links of that creator through
// open, and starts the server again.
func (l *loadtester) catalogRun(cs *catalogStore, n int, args []string, redisMem func() float64, open func(func(linkWriter) error) error) error {
	m := bench.DefaultModel()
	m.Campaigns, m.CreatorsPerCampaign, m.LinksPerCreator = 1, 1, 1
	start := func() (*proc, *adminclient.Client, string, time.Duration, int, error) {
		full := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--admin-token", loadtestToken}, args...)
		t := time.Now()
		p, match, err := l.startProc(l.command(l.cpus, l.gate, full...), linksRE)
		if err != nil {
			return nil, nil, "", 0, 0, err
		}
		took := time.Since(t)
		links, _ := strconv.Atoi(match[3])
		return p, &adminclient.Client{URL: "http://" + match[2], Token: loadtestToken}, match[1], took, links, nil
	}
	memory := func(p *proc, a *adminclient.Client) (rss, heap float64) {
		// A heap profile with gc=1 collects first: the heap then holds
		// what the server keeps, not the garbage of reading the catalog.
		scrape(a.URL + "/debug/pprof/heap?gc=1")
		return vmRSS(p.cmd.Process.Pid), scrape(a.URL + "/metrics")["go_memstats_heap_inuse_bytes"]
	}
	p, a, _, took, _, err := start()
	if err != nil {
		return err
	}
	if err := bench.Seed(l.ctx, a, m, "https://app.example.com/join"); err != nil {
		p.stop()
		return err
	}
	cs.start0 = took
	cs.rss0, cs.heap0 = memory(p, a)
	p.stop()
	if redisMem != nil {
		cs.redis0 = redisMem()
	}

	t := time.Now()
	now := time.Now().UTC()
	last := ""
	err = open(func(w linkWriter) error {
		links := make([]counter.Link, 0, 1000)
		for i := 0; i < n; {
			links = links[:0]
			for ; i < n && len(links) < cap(links); i++ {
				last = fmt.Sprintf("C%07d", i)
				links = append(links, counter.Link{Code: last, Campaign: bench.CampaignID(0), Creator: m.CreatorID(0),
					Destinations: counter.Destinations{Default: "https://app.example.com/join?c=" + last}, CreatedAt: now})
			}
			if err := w.CreateLinks(l.ctx, links); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	cs.fill = time.Since(t)
	if redisMem != nil {
		cs.redis = redisMem()
	}
	var target string
	p, a, target, cs.start, cs.servedLinks, err = start()
	if err != nil {
		return err
	}
	defer p.stop()
	if cs.servedLinks < n {
		return fmt.Errorf("the server started with %d links; want at least %d", cs.servedLinks, n)
	}
	if _, err := l.waitServed(target, last, time.Second); err != nil {
		return err
	}
	cs.rss, cs.heap = memory(p, a)
	cs.perLinkHeap = (cs.heap - cs.heap0) / float64(n)
	cs.perLinkRSS = (cs.rss - cs.rss0) / float64(n)
	cs.perLinkRedis = (cs.redis - cs.redis0) / float64(n)
	fmt.Fprintf(l.stderr, "%s: %d links written in %s; start %s (empty: %s), %d links served; heap %.0f B/link, RSS %.0f B/link, Redis %.0f B/link\n",
		cs.name, n, cs.fill.Round(time.Millisecond), cs.start.Round(time.Millisecond), cs.start0.Round(time.Millisecond), cs.servedLinks,
		cs.perLinkHeap, cs.perLinkRSS, cs.perLinkRedis)
	return nil
}

// vmRSS returns the resident memory of process pid, bytes; 0 when it
// cannot.
func vmRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseFloat(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 64)
			return kb * 1024
		}
	}
	return 0
}

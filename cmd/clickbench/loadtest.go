package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/bench"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// A design is one system under test.
type design struct {
	name      string
	redis     bool // with its own redis-server
	durable   bool // the floor: the bare server after a durable append (bench.NewFloor)
	clickgate bool // clickgate (seeded and audited), not a baseline
	// cluster: clickgate on a Redis Cluster of clusterMasters masters,
	// with clusterEdges edges that the load is spread over.
	cluster bool
}

const (
	clusterMasters = 3
	clusterEdges   = 2
)

var designs = []design{
	{name: "baseline: bare 302 from memory"},
	{name: "naive: one HINCRBY per click", redis: true},
	{name: "floor: bare 302 after a durable append", durable: true},
	{name: "clickgate, embedded store", clickgate: true},
	{name: "clickgate, Redis", clickgate: true, redis: true},
	{name: fmt.Sprintf("clickgate, Redis Cluster (%d masters, %d edges)", clusterMasters, clusterEdges), clickgate: true, redis: true, cluster: true},
}

// row is one design: its running processes, then its measurements.
type row struct {
	design
	srvs        []*proc // the server; a cluster's edges
	rp          *proc   // a single redis-server
	rdb         *redis.Client
	cluster     *redistest.Cluster
	nodes       []*redis.Client // every redis-server that serves keys: rdb, or the cluster's masters
	targets     []string        // public listeners, one per server
	metricsURLs []string
	admin       *adminclient.Client   // the first server's
	admins      []*adminclient.Client // every server's
	before      []bench.Counts
	lag         *bench.LagProbe // during max
	imp         *importResult   // links imported during the open loop
	layout      *clusterLayout  // where a cluster's partitions are, and their memory

	warm  *bench.Result
	max   phase // closed loop, the default model
	fresh phase // closed loop, every request a new visitor
	open  phase // open loop at one rate for every design
	// importing is the open loop while bulk imports come and go; its
	// results' Quiet and Busy hold the requests due without and with a
	// bulk call in flight (importUnderLoad).
	importing phase
	audit     *bench.Audit
	cps       checkpoints // the judges' over the whole run
}

// loadtester runs the designs one after another on the same machine.
type loadtester struct {
	ctx       context.Context
	stderr    io.Writer
	tmp       string
	cpus      string
	redisCPU  string
	redisBin  string
	self      string
	gate      string
	model     bench.Model // the default model, fraud included
	fresh     bench.Model // every request a new visitor
	limits    bench.Limits
	conns     int
	warmup    time.Duration
	duration  time.Duration
	rounds    int
	openShare float64
	openRate  float64
	// importRate is the open loop's rate in the bulk import test: openRate,
	// but within every clickgate design's capacity (importShare).
	importRate float64
	// partitions of each campaign on the cluster, --partitions.
	partitions int
	// importBatch is the links of one bulk call during the open loop.
	importBatch int
	// base is the next run's first /24 block, used the blocks taken, which
	// must stay below half of them (bench.Model.AddressBase); one of each
	// for people and fraudsters (127.0.0.0/8), one for new visitors
	// (10.0.0.0/8).
	base, used [2]uint32
}

// loadtest runs every design side by side: each server pinned to its own
// core (with its redis-server), the generator on another; a closed loop
// for the most it takes, of the default model and of new visitors only,
// then an open loop at one rate for all for latency.
func loadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadtest", stderr)
	mf := addModelFlags(fs)
	l := &loadtester{ctx: ctx, stderr: stderr, limits: bench.DefaultLimits()}
	out := fs.String("out", "", "also write the report (Markdown) to this file, e.g. BENCHMARKS.md")
	fs.DurationVar(&l.duration, "duration", 10*time.Second, "length of each closed and open loop")
	fs.DurationVar(&l.warmup, "warmup", 2*time.Second, "unmeasured load before each closed loop")
	fs.IntVar(&l.conns, "connections", 128, "connections of the closed loop")
	fs.IntVar(&l.rounds, "rounds", 5, "the closed loop of each design runs in this many rounds, taking turns with the others")
	fs.Float64Var(&l.openShare, "open-share", 0.4, "the open loop's rate, the same for every design: this share of the bare server's closed-loop maximum")
	fs.StringVar(&l.gate, "clickgate", "bin/clickgate", "clickgate binary")
	fs.StringVar(&l.redisBin, "redis-server", "redis-server", "redis-server binary")
	fs.StringVar(&l.cpus, "server-cpu", "0", "CPUs the server and its redis-server are pinned to (taskset -c); empty: not pinned. Pin this generator elsewhere: taskset -c 1 clickbench loadtest")
	fs.StringVar(&l.redisCPU, "redis-cpu", "", "CPUs the redis-servers are pinned to; default: --server-cpu (the system under test on one core)")
	benchmarks := fs.Bool("micro", true, "also run the handler's Go benchmarks (needs the go tool and this source tree)")
	fs.IntVar(&l.partitions, "partitions", 8, "the cluster design's --partitions: each campaign's partitions, spread over the masters by their hash tags")
	fs.IntVar(&l.importBatch, "import-links", 10_000, "links of each POST /v1/links:bulk while the open loop runs (at most 100000, and a body within the admin listener's 1 MiB)")
	catalogLinks := fs.Int("catalog-links", 1_000_000, "links in the store to measure a server's start and its memory per link; 0 skips it")
	memVisitors := fs.Int("memory-visitors", 1_000_000, "unique visitors committed to measure Redis memory per visitor; 0 skips it")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if l.rounds < 1 || l.duration < time.Duration(l.rounds)*100*time.Millisecond {
		return usageError("loadtest: --rounds must be at least 1, and --duration at least 100ms a round")
	}
	if l.openShare <= 0 || l.openShare > 1 {
		return usageError("loadtest: --open-share must be in (0, 1]")
	}
	if l.model, err = mf.model(); err != nil {
		return err
	}
	if l.model.NewVisitors {
		return usageError("loadtest: --new-visitors is one of its phases already")
	}
	l.fresh = l.model
	l.fresh.NewVisitors = true
	l.base = [2]uint32{l.model.AddressBase, l.model.AddressBase}
	if _, err := os.Stat(l.gate); err != nil {
		return usageError("--clickgate: %s (run make build first)", err)
	}
	if l.self, err = os.Executable(); err != nil {
		return err
	}
	if l.tmp, err = os.MkdirTemp("", "clickbench-loadtest"); err != nil {
		return err
	}
	defer os.RemoveAll(l.tmp)

	// Every design runs at once, idle but for its turn, and the closed
	// loop goes round them: a slow minute of a shared machine then
	// falls on all of them, and the ratios hold.
	var rows []*row
	defer func() {
		for _, r := range rows {
			r.stop()
		}
	}()
	for _, d := range designs {
		fmt.Fprintf(stderr, "== starting %s\n", d.name)
		r, err := l.start(d)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		rows = append(rows, r)
	}
	if err := l.measure(rows); err != nil {
		return err
	}
	var mem *memResult
	if *memVisitors > 0 {
		fmt.Fprintf(stderr, "== Redis memory per unique visitor\n")
		if mem, err = l.memory(*memVisitors); err != nil {
			return fmt.Errorf("redis memory: %w", err)
		}
	}
	var cat *catalogResult
	if *catalogLinks > 0 {
		fmt.Fprintf(stderr, "== a start with %d links\n", *catalogLinks)
		if cat, err = l.catalogStart(*catalogLinks); err != nil {
			return fmt.Errorf("catalog start: %w", err)
		}
	}
	var micro *microResult
	if *benchmarks {
		fmt.Fprintf(stderr, "== handler micro-benchmarks\n")
		micro = l.micro()
	}
	var b bytes.Buffer
	l.report(&b, rows, mem, cat, micro, strings.Join(args, " "))
	stdout.Write(b.Bytes())
	if *out != "" {
		if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	for _, r := range rows {
		if r.audit != nil && !r.audit.OK() {
			fmt.Fprintf(stderr, "%s: the audit failed:\n", r.name)
			r.audit.Write(stderr, false)
			return errFailed
		}
	}
	return nil
}

var (
	baselineRE = regexp.MustCompile(`listen=(\S+) .*metrics=(\S+)`)
	servingRE  = regexp.MustCompile(`public=(\S+) admin=(\S+)`)
)

// loadtestToken is the admin token and click secret of the servers it
// starts (loopback only, gone when it ends).
const loadtestToken = "clickbench-loadtest-0123456789abcdef0123456789"

// start runs a design's processes, seeds clickgate and reads its
// counters before any traffic.
func (l *loadtester) start(d design) (r *row, err error) {
	r = &row{design: d, max: newPhase(), fresh: newPhase(), open: newPhase(), importing: newPhase()}
	defer func() {
		if err != nil {
			r.stop()
		}
	}()
	switch {
	case d.cluster:
		if err := l.startCluster(r); err != nil {
			return nil, err
		}
	case d.redis:
		if r.rp, r.rdb, err = l.redis(); err != nil {
			return nil, err
		}
		r.nodes = []*redis.Client{r.rdb}
	}
	if !d.clickgate {
		args := []string{"baseline", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--links", strconv.Itoa(l.model.Links())}
		switch {
		case d.redis:
			args = append(args, "--redis", "redis://"+r.rdb.Options().Addr)
		case d.durable:
			args = append(args, "--durable", filepath.Join(l.tmp, "floor.log"))
		}
		srv, match, err := l.startProc(l.command(l.cpus, l.self, args...), baselineRE)
		if err != nil {
			return nil, err
		}
		r.srvs, r.targets, r.metricsURLs = []*proc{srv}, []string{match[1]}, []string{"http://" + match[2] + "/metrics"}
		return r, nil
	}
	var store []string
	switch {
	case d.cluster:
		store = []string{"--redis", r.cluster.URL(), "--redis-cluster", "--partitions", strconv.Itoa(l.partitions), "--click-secret", loadtestToken}
	case d.redis:
		store = []string{"--redis", "redis://" + r.rdb.Options().Addr, "--click-secret", loadtestToken}
	}
	edges := 1
	if d.cluster {
		edges = clusterEdges
	}
	for i := range edges {
		more := store
		if i > 0 {
			// One edge flushes to the ledger, as docker-compose.yml runs them.
			more = append(more[:len(more):len(more)], "--flush-interval", "0")
		}
		if err := l.startGate(r, more...); err != nil {
			return nil, err
		}
	}
	r.admin = r.admins[0]
	if err := bench.Seed(l.ctx, r.admin, l.model, "https://app.example.com/join"); err != nil {
		return nil, err
	}
	// The bulk imports' links belong to a creator the audit does not
	// read: the HEADs that check that every edge serves them are counted.
	if err := bench.PutCreator(l.ctx, r.admin, bench.CampaignID(0), importCreator); err != nil {
		return nil, err
	}
	// Every edge serves every link before any traffic: the catalog's
	// changes apply in order, so the one made last tells.
	codes, err := bench.ImportLinks(l.ctx, r.admin, bench.CampaignID(0), importCreator, importDestination, 1)
	if err != nil {
		return nil, err
	}
	for _, t := range r.targets[1:] {
		if _, err := l.waitServed(t, codes[0], 10*time.Second); err != nil {
			return nil, err
		}
	}
	r.lag = &bench.LagProbe{Admin: r.admin, Target: r.targets[0], Campaign: bench.CampaignID(0)}
	if err := r.lag.Seed(l.ctx); err != nil {
		return nil, err
	}
	if r.before, err = bench.Stats(l.ctx, r.admin, l.model); err != nil {
		return nil, err
	}
	return r, nil
}

// startGate starts one clickgate server of r, with the loadtest's flags
// and more.
func (l *loadtester) startGate(r *row, more ...string) error {
	data, err := os.MkdirTemp(l.tmp, "data")
	if err != nil {
		return err
	}
	// The default budgets: the model keeps people within them, and its
	// fraudsters go past them. New visitors come through a proxy.
	args := []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data, "--admin-token", loadtestToken,
		"--trusted-proxies", bench.ProxyAddr.String(),
		"--budget-network", strconv.Itoa(l.limits.BudgetNetwork), "--budget-block", strconv.Itoa(l.limits.BudgetBlock),
		"--dedupe-fp", strconv.FormatFloat(l.limits.FP, 'g', -1, 64)}
	srv, match, err := l.startProc(l.command(l.cpus, l.gate, append(args, more...)...), servingRE)
	if err != nil {
		return err
	}
	a := &adminclient.Client{URL: "http://" + match[2], Token: loadtestToken,
		HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	r.srvs, r.targets = append(r.srvs, srv), append(r.targets, match[1])
	r.admins, r.metricsURLs = append(r.admins, a), append(r.metricsURLs, a.URL+"/metrics")
	return nil
}

func (r *row) stop() {
	for _, s := range r.srvs {
		s.stop()
	}
	for _, c := range r.nodes {
		c.Close()
	}
	if r.rp != nil {
		r.rp.stop()
	}
	if r.cluster != nil {
		r.cluster.Close()
	}
}

// cpuEdge returns the CPU seconds of r's servers.
func (r *row) cpuEdge() float64 {
	var sum float64
	for _, s := range r.srvs {
		sum += s.cpu()
	}
	return sum
}

// cpuRedis returns the CPU seconds of r's redis-servers.
func (r *row) cpuRedis() float64 {
	if r.cluster != nil {
		var sum float64
		for _, n := range r.cluster.Nodes() {
			sum += pidCPU(n.PID())
		}
		return sum
	}
	if r.rp != nil {
		return r.rp.cpu()
	}
	return 0
}

// redisInfo sums a numeric field of INFO over r's redis-servers.
func (r *row) redisInfo(ctx context.Context, field string) float64 {
	var sum float64
	for _, c := range r.nodes {
		sum += redisInfo(ctx, c, field)
	}
	return sum
}

// scrape sums the counters of r's servers.
func (r *row) scrape() map[string]float64 {
	out := map[string]float64{}
	for _, u := range r.metricsURLs {
		for k, v := range scrape(u) {
			out[k] += v
		}
	}
	return out
}

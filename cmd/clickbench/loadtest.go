package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/bench"
)

// A design is one system under test.
type design struct {
	name      string
	redis     bool // with its own redis-server
	clickgate bool // clickgate (seeded and audited), not a baseline
}

var designs = []design{
	{name: "baseline: bare 302 from memory"},
	{name: "naive: one HINCRBY per click", redis: true},
	{name: "clickgate, embedded store", clickgate: true},
	{name: "clickgate, Redis", clickgate: true, redis: true},
}

// row is one design: its running processes, then its measurements.
type row struct {
	design
	srv, rp    *proc
	rdb        *redis.Client
	target     string
	metricsURL string
	admin      *bench.Admin
	before     []bench.Counts

	warm, max, open *bench.Result
	rounds          []*bench.Result
	audit           *bench.Audit
	// During the closed loop (max):
	cpuEdge, cpuRedis float64 // CPU seconds
	mallocs           float64 // heap allocations of the edge; -1: unknown
	redisCmds         float64 // commands Redis processed
	roundTrips        float64 // Redis round trips of the edge; -1: unknown
}

func (r *row) perReq(v float64) float64 { return v / float64(r.max.Requests) }

// loadtester runs the designs one after another on the same machine.
type loadtester struct {
	ctx      context.Context
	stderr   io.Writer
	tmp      string
	cpus     string
	redisCPU string
	redisBin string
	self     string
	gate     string
	model    bench.Model
	conns    int
	warmup   time.Duration
	duration time.Duration
	rounds   int
	phase    uint32
}

// loadtest runs every design side by side: each server pinned to its own
// core (with its redis-server), the generator on another; a closed loop
// for the most it takes, then an open loop at half of that for latency.
func loadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadtest", stderr)
	mf := addModelFlags(fs)
	l := &loadtester{ctx: ctx, stderr: stderr}
	out := fs.String("out", "", "also write the report (Markdown) to this file, e.g. BENCHMARKS.md")
	fs.DurationVar(&l.duration, "duration", 10*time.Second, "length of each closed and open loop")
	fs.DurationVar(&l.warmup, "warmup", 2*time.Second, "unmeasured load before each closed loop")
	fs.IntVar(&l.conns, "connections", 128, "connections of the closed loop")
	fs.IntVar(&l.rounds, "rounds", 5, "the closed loop of each design runs in this many rounds, taking turns with the others")
	fs.StringVar(&l.gate, "clickgate", "bin/clickgate", "clickgate binary")
	fs.StringVar(&l.redisBin, "redis-server", "redis-server", "redis-server binary")
	fs.StringVar(&l.cpus, "server-cpu", "0", "CPUs the server and its redis-server are pinned to (taskset -c); empty: not pinned. Pin this generator elsewhere: taskset -c 1 clickbench loadtest")
	fs.StringVar(&l.redisCPU, "redis-cpu", "", "CPUs the redis-servers are pinned to; default: --server-cpu (the system under test on one core)")
	benchmarks := fs.Bool("micro", true, "also run the handler's Go benchmarks (needs the go tool and this source tree)")
	memVisitors := fs.Int("memory-visitors", 1_000_000, "unique visitors committed to measure Redis memory per visitor; 0 skips it")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if l.rounds < 1 || l.duration < time.Duration(l.rounds)*100*time.Millisecond {
		return usageError("loadtest: --rounds must be at least 1, and --duration at least 100ms a round")
	}
	if l.model, err = mf.model(); err != nil {
		return err
	}
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
	var micro *microResult
	if *benchmarks {
		fmt.Fprintf(stderr, "== handler micro-benchmarks\n")
		micro = l.micro()
	}
	var b bytes.Buffer
	l.report(&b, rows, mem, micro, strings.Join(args, " "))
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

// command returns name pinned to cpus, unless empty.
func (l *loadtester) command(cpus, name string, args ...string) *exec.Cmd {
	if cpus != "" {
		return exec.CommandContext(l.ctx, "taskset", append([]string{"-c", cpus, name}, args...)...)
	}
	return exec.CommandContext(l.ctx, name, args...)
}

// proc is a process under test; taskset execs it, so the pid is its own.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cpu returns the CPU seconds p has used.
func (p *proc) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (100 per second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

// startProc runs cmd and waits until a line of its output matches ready.
func (l *loadtester) startProc(cmd *exec.Cmd, ready *regexp.Regexp) (*proc, []string, error) {
	p := &proc{cmd: cmd, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	go func() {
		cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.Write(append(sc.Bytes(), '\n'))
			p.mu.Unlock()
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case m := <-found:
		return p, m, nil
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return nil, nil, fmt.Errorf("%s did not start:\n%s", strings.Join(cmd.Args, " "), p.logs())
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var redisReadyRE = regexp.MustCompile(`Ready to accept connections`)

// redis starts a redis-server as clickgate should run on it: an
// append-only file fsynced every second.
func (l *loadtester) redis() (*proc, *redis.Client, error) {
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(l.tmp, "redis")
	if err != nil {
		return nil, nil, err
	}
	p, _, err := l.startProc(l.command(cmp.Or(l.redisCPU, l.cpus), l.redisBin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", ""), redisReadyRE)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot start redis-server (apt-get install redis-server): %w", err)
	}
	return p, redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)}), nil
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
	r = &row{design: d, mallocs: -1, roundTrips: -1}
	defer func() {
		if err != nil {
			r.stop()
		}
	}()
	if d.redis {
		if r.rp, r.rdb, err = l.redis(); err != nil {
			return nil, err
		}
	}
	var match []string
	if !d.clickgate {
		args := []string{"baseline", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--links", strconv.Itoa(l.model.Links())}
		if d.redis {
			args = append(args, "--redis", "redis://"+r.rdb.Options().Addr)
		}
		if r.srv, match, err = l.startProc(l.command(l.cpus, l.self, args...), baselineRE); err != nil {
			return nil, err
		}
		r.target, r.metricsURL = match[1], "http://"+match[2]+"/metrics"
		return r, nil
	}
	data, err := os.MkdirTemp(l.tmp, "data")
	if err != nil {
		return nil, err
	}
	// The model puts about a thousand people in each loopback /24, past
	// the block budget: the audit would count them as not paid.
	args := []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data, "--admin-token", loadtestToken,
		"--budget-block", "0"}
	if d.redis {
		args = append(args, "--redis", "redis://"+r.rdb.Options().Addr, "--click-secret", loadtestToken)
	}
	if r.srv, match, err = l.startProc(l.command(l.cpus, l.gate, args...), servingRE); err != nil {
		return nil, err
	}
	r.target = match[1]
	r.admin = &bench.Admin{URL: "http://" + match[2], Token: loadtestToken}
	r.metricsURL = r.admin.URL + "/metrics"
	if err := r.admin.Seed(l.ctx, l.model, "https://app.example.com/join"); err != nil {
		return nil, err
	}
	if r.before, err = r.admin.Stats(l.ctx, l.model); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *row) stop() {
	if r.srv != nil {
		r.srv.stop()
	}
	if r.rdb != nil {
		r.rdb.Close()
	}
	if r.rp != nil {
		r.rp.stop()
	}
}

// run sends one phase of traffic from addresses no earlier phase used.
func (l *loadtester) run(o bench.LoadOptions) (*bench.Result, error) {
	m := l.model
	m.AddressBase = (m.AddressBase + l.phase*256) % 65536 // 256 /24s: 65,024 addresses a phase
	l.phase++
	g, err := bench.NewGenerator(m)
	if err != nil {
		return nil, err
	}
	o.Generator = g
	return bench.Run(l.ctx, o)
}

// measure warms every design up, runs the closed loop in rounds that go
// round the designs (measuring the processes' CPU, allocations and Redis
// commands), then the open loops at half of each one's closed-loop rate,
// in rounds too, and audits clickgate's counters.
func (l *loadtester) measure(rows []*row) error {
	var err error
	for _, r := range rows {
		fmt.Fprintf(l.stderr, "== warming up %s\n", r.name)
		if r.warm, err = l.run(bench.LoadOptions{Target: r.target, Connections: l.conns, Duration: l.warmup}); err != nil {
			return err
		}
	}
	round := l.duration / time.Duration(l.rounds)
	for i := range l.rounds {
		for _, r := range rows {
			cpu0, rcpu0, cmds0 := r.srv.cpu(), 0.0, 0.0
			m0 := scrape(r.metricsURL)
			if r.rp != nil {
				rcpu0, cmds0 = r.rp.cpu(), redisInfo(l.ctx, r.rdb, "total_commands_processed")
			}
			res, err := l.run(bench.LoadOptions{Target: r.target, Connections: l.conns, Duration: round})
			if err != nil {
				return err
			}
			m1 := scrape(r.metricsURL)
			r.rounds = append(r.rounds, res)
			r.cpuEdge += r.srv.cpu() - cpu0
			if r.rp != nil {
				r.cpuRedis += r.rp.cpu() - rcpu0
				r.redisCmds += redisInfo(l.ctx, r.rdb, "total_commands_processed") - cmds0
			}
			if v0, ok := m0["go_memstats_mallocs_total"]; ok {
				r.mallocs = max(r.mallocs, 0) + m1["go_memstats_mallocs_total"] - v0
			}
			if v0, ok := m0["clickgate_redis_round_trips_total"]; ok {
				r.roundTrips = max(r.roundTrips, 0) + m1["clickgate_redis_round_trips_total"] - v0
			}
			fmt.Fprintf(l.stderr, "round %d/%d, %s: %.0f req/s, p99 %s\n", i+1, l.rounds, r.name, res.Throughput, res.Latency.P99)
		}
	}
	for _, r := range rows {
		r.max = bench.Merge(r.rounds...)
		switch {
		case r.redis && !r.clickgate:
			r.roundTrips = r.redisCmds // one command per round trip, no pipelining
		case !r.redis:
			r.roundTrips = 0
		}
	}
	// The open loops take turns too, each at half its design's closed-loop
	// rate.
	opens := make([][]*bench.Result, len(rows))
	for i := range l.rounds {
		for j, r := range rows {
			res, err := l.run(bench.LoadOptions{Target: r.target, Connections: l.conns, Rate: r.max.Throughput / 2, Duration: round})
			if err != nil {
				return err
			}
			opens[j] = append(opens[j], res)
			fmt.Fprintf(l.stderr, "open round %d/%d, %s at %.0f req/s: p99 %s (send lag p99 %s)\n", i+1, l.rounds, r.name, res.Rate, res.Latency.P99, res.SendLag.P99)
		}
	}
	for j, r := range rows {
		r.open = bench.Merge(opens[j]...)
		if r.admin == nil {
			continue
		}
		after, err := r.admin.Stats(l.ctx, l.model)
		if err != nil {
			return err
		}
		// All of its traffic is audited: warm-up, closed and open loops.
		all := append(append([]*bench.Result{r.warm}, r.rounds...), opens[j]...)
		r.audit = bench.NewAudit(l.model, 0.001, bench.Merge(all...), r.before, after)
	}
	return nil
}

// scrape reads the counters of a Prometheus text exposition; empty when
// it cannot.
func scrape(url string) map[string]float64 {
	out := map[string]float64{}
	c := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+loadtestToken)
	resp, err := c.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

// redisInfo returns a numeric field of INFO.
func redisInfo(ctx context.Context, rdb *redis.Client, field string) float64 {
	s, err := rdb.Info(ctx).Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

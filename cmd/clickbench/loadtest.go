package main

import (
	"bufio"
	"bytes"
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

// row is one design's measurements.
type row struct {
	design
	warm, max, open *bench.Result
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
	redisBin string
	self     string
	gate     string
	model    bench.Model
	conns    int
	warmup   time.Duration
	duration time.Duration
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
	fs.StringVar(&l.gate, "clickgate", "bin/clickgate", "clickgate binary")
	fs.StringVar(&l.redisBin, "redis-server", "redis-server", "redis-server binary")
	fs.StringVar(&l.cpus, "server-cpu", "0", "CPUs the server and its redis-server are pinned to (taskset -c); empty: not pinned. Pin this generator elsewhere: taskset -c 1 clickbench loadtest")
	memVisitors := fs.Int("memory-visitors", 1_000_000, "unique visitors committed to measure Redis memory per visitor; 0 skips it")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
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

	var rows []*row
	for _, d := range designs {
		fmt.Fprintf(stderr, "== %s\n", d.name)
		r, err := l.measure(d)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		rows = append(rows, r)
	}
	var mem *memResult
	if *memVisitors > 0 {
		fmt.Fprintf(stderr, "== Redis memory per unique visitor\n")
		if mem, err = l.memory(*memVisitors); err != nil {
			return fmt.Errorf("redis memory: %w", err)
		}
	}
	var b bytes.Buffer
	l.report(&b, rows, mem, strings.Join(args, " "))
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

// command returns name pinned to the server's CPUs.
func (l *loadtester) command(name string, args ...string) *exec.Cmd {
	if l.cpus != "" {
		return exec.CommandContext(l.ctx, "taskset", append([]string{"-c", l.cpus, name}, args...)...)
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

// start runs cmd and waits until a line of its output matches ready.
func (l *loadtester) start(cmd *exec.Cmd, ready *regexp.Regexp) (*proc, []string, error) {
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
	p, _, err := l.start(l.command(l.redisBin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
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

func (l *loadtester) measure(d design) (*row, error) {
	r := &row{design: d, mallocs: -1, roundTrips: -1}
	var rp *proc
	var rdb *redis.Client
	var err error
	if d.redis {
		if rp, rdb, err = l.redis(); err != nil {
			return nil, err
		}
		defer rp.stop()
		defer rdb.Close()
	}
	var srv *proc
	var match []string
	if !d.clickgate {
		args := []string{"baseline", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--links", strconv.Itoa(l.model.Links())}
		if d.redis {
			args = append(args, "--redis", "redis://"+rdb.Options().Addr)
		}
		if srv, match, err = l.start(l.command(l.self, args...), baselineRE); err != nil {
			return nil, err
		}
		defer srv.stop()
		return r, l.phases(r, srv, rp, rdb, match[1], "http://"+match[2]+"/metrics")
	}
	data, err := os.MkdirTemp(l.tmp, "data")
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data, "--admin-token", loadtestToken}
	if d.redis {
		args = append(args, "--redis", "redis://"+rdb.Options().Addr, "--click-secret", loadtestToken)
	}
	if srv, match, err = l.start(l.command(l.gate, args...), servingRE); err != nil {
		return nil, err
	}
	defer srv.stop()
	admin := &bench.Admin{URL: "http://" + match[2], Token: loadtestToken}
	if err := admin.Seed(l.ctx, l.model, "https://app.example.com/join"); err != nil {
		return nil, err
	}
	before, err := admin.Stats(l.ctx, l.model)
	if err != nil {
		return nil, err
	}
	if err := l.phases(r, srv, rp, rdb, match[1], admin.URL+"/metrics"); err != nil {
		return nil, err
	}
	after, err := admin.Stats(l.ctx, l.model)
	if err != nil {
		return nil, err
	}
	// All of the traffic is audited: warm-up, closed and open loop.
	r.audit = bench.NewAudit(l.model, 0.001, bench.Merge(r.warm, r.max, r.open), before, after)
	return r, nil
}

// run sends one phase of traffic from addresses no earlier phase used.
func (l *loadtester) run(o bench.LoadOptions) (*bench.Result, error) {
	m := l.model
	m.AddressBase = (m.AddressBase + l.phase*4096) % 65536 // 4096 /24s: a million addresses a phase
	l.phase++
	g, err := bench.NewGenerator(m)
	if err != nil {
		return nil, err
	}
	o.Generator = g
	return bench.Run(l.ctx, o)
}

// phases runs the warm-up, the closed loop (measuring the processes' CPU,
// allocations and Redis commands) and the open loop at half its rate.
func (l *loadtester) phases(r *row, srv, rp *proc, rdb *redis.Client, target, metricsURL string) error {
	var err error
	if r.warm, err = l.run(bench.LoadOptions{Target: target, Connections: l.conns, Duration: l.warmup}); err != nil {
		return err
	}
	cpu0, rcpu0 := srv.cpu(), 0.0
	m0 := scrape(metricsURL)
	var cmds0 float64
	if rp != nil {
		rcpu0, cmds0 = rp.cpu(), redisInfo(l.ctx, rdb, "total_commands_processed")
	}
	if r.max, err = l.run(bench.LoadOptions{Target: target, Connections: l.conns, Duration: l.duration, Progress: l.stderr}); err != nil {
		return err
	}
	m1 := scrape(metricsURL)
	r.cpuEdge = srv.cpu() - cpu0
	if rp != nil {
		r.cpuRedis = rp.cpu() - rcpu0
		r.redisCmds = redisInfo(l.ctx, rdb, "total_commands_processed") - cmds0
	}
	if v0, ok := m0["go_memstats_mallocs_total"]; ok {
		r.mallocs = m1["go_memstats_mallocs_total"] - v0
	}
	switch {
	case r.clickgate && r.redis:
		if v0, ok := m0["clickgate_redis_round_trips_total"]; ok {
			r.roundTrips = m1["clickgate_redis_round_trips_total"] - v0
		}
	case r.redis:
		r.roundTrips = r.redisCmds // one command per round trip, no pipelining
	default:
		r.roundTrips = 0
	}
	fmt.Fprintf(l.stderr, "closed loop: %.0f req/s, p99 %s\n", r.max.Throughput, r.max.Latency.P99)
	rate := r.max.Throughput / 2
	r.open, err = l.run(bench.LoadOptions{Target: target, Connections: l.conns, Rate: rate, Duration: l.duration, Progress: l.stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(l.stderr, "open loop at %.0f req/s: p50 %s p99 %s p99.9 %s (send lag p99 %s)\n", rate, r.open.Latency.P50, r.open.Latency.P99, r.open.Latency.P999, r.open.SendLag.P99)
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

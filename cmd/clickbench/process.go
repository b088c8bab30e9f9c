package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
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
)

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
func (p *proc) cpu() float64 { return pidCPU(p.cmd.Process.Pid) }

// pidCPU returns the CPU seconds process pid has used; 0 when it cannot.
func pidCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
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

// stealCPU returns the seconds the hypervisor has taken from cpus (a
// taskset list: "0", "0,2", "1-3"; empty: every CPU) while they had work:
// the steal column of /proc/stat, in clock ticks (100 per second); 0 when
// it cannot tell.
func stealCPU(cpus string) float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	want := cpuLines(cpus)
	var steal float64
	for _, line := range strings.Split(string(b), "\n") {
		// cpuN user nice system idle iowait irq softirq steal …
		if f := strings.Fields(line); len(f) > 8 && want[f[0]] {
			v, _ := strconv.ParseFloat(f[8], 64)
			steal += v / 100
		}
	}
	return steal
}

// cpuLines returns the names of the /proc/stat lines of cpus, a taskset
// list; "cpu", every CPU's, when it names none.
func cpuLines(cpus string) map[string]bool {
	lines := map[string]bool{}
	for _, part := range strings.Split(cpus, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		z, err2 := strconv.Atoi(hi)
		if !ok {
			z, err2 = a, nil
		}
		for i := a; err1 == nil && err2 == nil && i <= z; i++ {
			lines["cpu"+strconv.Itoa(i)] = true
		}
	}
	if len(lines) == 0 {
		lines["cpu"] = true
	}
	return lines
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

// checkpoints are what the judges' checkpoints cost over a run.
type checkpoints struct {
	count          int
	seconds, bytes float64 // in all
	longest        float64 // the upper bound of the bucket of the longest, in seconds
}

// checkpointsOf reads the checkpoints' histograms from a scrape (summed
// over a design's nodes).
func checkpointsOf(m map[string]float64) checkpoints {
	const name = "clickgate_judge_checkpoint_seconds"
	c := checkpoints{count: int(m[name+"_count"]), seconds: m[name+"_sum"], bytes: m["clickgate_judge_checkpoint_bytes_sum"], longest: math.Inf(1)}
	for k, v := range m {
		le, ok := strings.CutPrefix(k, name+`_bucket{le="`)
		if !ok || int(v) != c.count {
			continue
		}
		if b, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64); err == nil {
			c.longest = min(c.longest, b)
		}
	}
	return c
}

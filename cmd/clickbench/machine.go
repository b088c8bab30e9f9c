package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

func commandOutput(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// machine describes where the run happened.
func machine(redisBin string) []string {
	cpu := "unknown"
	b, _ := os.ReadFile("/proc/cpuinfo")
	cpuinfo := "\n" + string(b)
	{
		for _, line := range strings.Split(cpuinfo, "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	cores := strings.Count(cpuinfo, "\nprocessor")
	return []string{
		fmt.Sprintf("CPU: %s, %d logical cores; memory %s", cpu, cores, mem),
		fmt.Sprintf("Linux %s, %s, %s", kernel, runtime.Version(), commandOutput(redisBin, "--version")),
	}
}

// microResult is the handler's Go benchmarks.
type microResult struct {
	command string
	lines   string
	allocs  map[string]int     // benchmark name → allocs/op
	nsPerOp map[string]float64 // benchmark name → ns/op
}

// micro runs the handler benchmarks with the go tool, from the module
// this clickbench was run in; nil when it cannot.
func (l *loadtester) micro() *microResult {
	args := []string{"test", "-run", "^$", "-bench", "BenchmarkHandle", "-benchmem", "-cpu", "1", "-count", "1", "./redirect/"}
	out, err := exec.CommandContext(l.ctx, "go", args...).Output()
	if err != nil {
		fmt.Fprintf(l.stderr, "no handler benchmarks: go %s: %s\n", strings.Join(args, " "), err)
		return nil
	}
	m := &microResult{command: "go " + strings.Join(args, " "), allocs: map[string]int{}, nsPerOp: map[string]float64{}}
	// The judge's cost per visit, for the capacity of one partition.
	jargs := []string{"test", "-run", "^$", "-bench", "BenchmarkApply/new$", "-benchtime", "300000x", "-benchmem", "-cpu", "1", "-count", "1", "./counter/judge/"}
	if jout, err := exec.CommandContext(l.ctx, "go", jargs...).Output(); err == nil {
		m.command += "` and `go " + strings.Join(jargs, " ")
		out = append(out, jout...)
	} else {
		fmt.Fprintf(l.stderr, "no judge benchmarks: go %s: %s\n", strings.Join(jargs, " "), err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		m.lines += line + "\n"
		for i := range f {
			if n, err := strconv.Atoi(f[max(i-1, 0)]); err == nil && f[i] == "allocs/op" {
				m.allocs[f[0]] = n
			}
			if v, err := strconv.ParseFloat(f[max(i-1, 0)], 64); err == nil && f[i] == "ns/op" {
				m.nsPerOp[f[0]] = v
			}
		}
	}
	return m
}

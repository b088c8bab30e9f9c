package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/clickgate/clickgate/bench"
)

// The rounds: each phase of traffic runs in rounds that take turns over
// the designs, and each round is counted until its design has settled.

// phase is one kind of traffic on one design, in rounds. Its processes'
// CPU, allocations and Redis work are counted from the start of each
// round until the design has caught up with it (caughtUp).
type phase struct {
	rounds            []*bench.Result
	res               *bench.Result
	cpuEdge, cpuRedis float64 // CPU seconds
	steal             float64 // seconds the hypervisor took from the server's cores
	mallocs           float64 // heap allocations of the edge; -1: unknown
	redisCmds         float64 // commands Redis processed
	roundTrips        float64 // Redis round trips of the edge; -1: unknown
	settle            time.Duration
	wall              time.Duration // from the start of each round until the design counted it: the span of cpuEdge and cpuRedis
}

func newPhase() phase { return phase{mallocs: -1, roundTrips: -1} }

func (p *phase) perReq(v float64) float64 { return v / float64(p.res.Requests) }

// cores is the CPU the design's processes took over its rounds, in cores:
// with them pinned to one core, how busy it was.
func (p *phase) cores() float64 { return (p.cpuEdge + p.cpuRedis) / p.wall.Seconds() }

// stolen is the time the hypervisor took from the server's cores over
// p's rounds, in cores: a latency that no design can help.
func (p *phase) stolen() float64 { return p.steal / p.wall.Seconds() }

// medianP99 returns the median of the rounds' p99 latencies.
func (p *phase) medianP99() time.Duration {
	d := make([]time.Duration, len(p.rounds))
	for i, r := range p.rounds {
		d[i] = r.Latency.P99
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// roundRatio returns the median over the rounds of p's throughput over
// q's in the same round: rounds take turns, so a round and its
// counterpart met about the same machine, and a slow spell of it moves a
// ratio less than it moves the totals'.
func roundRatio(p, q *phase) float64 {
	x := make([]float64, min(len(p.rounds), len(q.rounds)))
	for i := range x {
		x[i] = p.rounds[i].Throughput / q.rounds[i].Throughput
	}
	slices.Sort(x)
	return x[len(x)/2]
}

// run sends m's traffic from addresses no earlier run used.
func (l *loadtester) run(m bench.Model, o bench.LoadOptions) (*bench.Result, error) {
	space := 0
	if m.NewVisitors {
		space = 1
	}
	m.AddressBase = l.base[space]
	g, err := bench.NewGenerator(m)
	if err != nil {
		return nil, err
	}
	o.Generator = g
	res, err := bench.Run(l.ctx, o)
	if err != nil {
		return nil, err
	}
	used := g.Blocks(uint64(res.Sessions))
	if l.used[space] += used; l.used[space] >= 32768 {
		return nil, fmt.Errorf("the runs took %d /24 blocks, more than half of them: addresses would be used twice (a shorter --duration)", l.used[space])
	}
	l.base[space] = (l.base[space] + used) % 65535
	return res, nil
}

// judgesIdle is how long the judges' visits must stay still for caughtUp:
// longer than a judge's poll of a caught-up log (100 ms), so that the read
// of a round's last appends falls within the round's CPU.
const judgesIdle = 250 * time.Millisecond

// caughtUp waits until the design's judges are idle: the visits they
// judged (clickgate_judge_visits_total, read from /metrics, which costs
// Redis nothing) have not moved for judgesIdle. Only the Redis store's
// judges run behind the 302; the embedded store judges before it.
func (l *loadtester) caughtUp(r *row) {
	if !r.clickgate || !r.redis {
		return
	}
	last, since := -1.0, time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && l.ctx.Err() == nil; {
		if v := r.scrape()["clickgate_judge_visits_total"]; v != last {
			last, since = v, time.Now()
		} else if time.Since(since) >= judgesIdle {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle waits until the design has counted what it was sent, so that
// none of its backlog runs in another design's turn: the Redis store's
// stats wait for the judges to pass this node's appends: every edge's, the
// first's last, through which the counters are read.
func (l *loadtester) settle(r *row) error {
	for i := len(r.admins) - 1; i >= 0; i-- {
		if _, err := bench.Stats(l.ctx, r.admins[i], l.model); err != nil {
			return err
		}
	}
	l.rewritten(r)
	return nil
}

// rewritten waits, up to a minute, until none of the design's
// redis-servers is rewriting its append-only file: a rewrite is a child
// process pinned to the same core, which would otherwise run in the next
// design's turn (its CPU is counted in no design's).
func (l *loadtester) rewritten(r *row) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && l.ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
		busy := false
		for _, c := range r.nodes {
			busy = busy || redisInfo(l.ctx, c, "aof_rewrite_in_progress") != 0 || redisInfo(l.ctx, c, "aof_rewrite_scheduled") != 0
		}
		if !busy {
			return
		}
	}
}

// round runs one round of m on r's design and adds it to p: the
// processes' CPU, allocations and Redis work from its start until the
// design has settled. probe, when not nil, measures the lag meanwhile.
func (l *loadtester) round(r *row, p *phase, m bench.Model, o bench.LoadOptions, probe *bench.LagProbe) (*bench.Result, error) {
	cpu0, rcpu0, cmds0, steal0 := r.cpuEdge(), r.cpuRedis(), r.redisInfo(l.ctx, "total_commands_processed"), stealCPU(l.cpus)
	start := time.Now()
	m0 := r.scrape()
	o.Target, o.Targets, o.Connections = r.targets[0], r.targets[1:], l.conns
	pctx, stop := context.WithCancel(l.ctx)
	probed := make(chan error, 1)
	if probe != nil && r.admin != nil {
		go func() { probed <- probe.Run(pctx) }()
	} else {
		probed <- nil
	}
	res, err := l.run(m, o)
	stop()
	if perr := <-probed; err == nil && perr != nil {
		err = fmt.Errorf("%s: lag probe: %w", r.name, perr)
	}
	if err != nil {
		return nil, err
	}
	t := time.Now()
	l.caughtUp(r)
	p.settle += time.Since(t)
	m1 := r.scrape()
	p.rounds = append(p.rounds, res)
	p.cpuEdge += r.cpuEdge() - cpu0
	p.cpuRedis += r.cpuRedis() - rcpu0
	p.steal += stealCPU(l.cpus) - steal0
	p.wall += time.Since(start)
	p.redisCmds += r.redisInfo(l.ctx, "total_commands_processed") - cmds0
	if err := l.settle(r); err != nil {
		return nil, err
	}
	if v0, ok := m0["go_memstats_mallocs_total"]; ok {
		p.mallocs = max(p.mallocs, 0) + m1["go_memstats_mallocs_total"] - v0
	}
	if v0, ok := m0["clickgate_redis_round_trips_total"]; ok {
		p.roundTrips = max(p.roundTrips, 0) + m1["clickgate_redis_round_trips_total"] - v0
	}
	return res, nil
}

// merge sums p's rounds.
func (r *row) merge(p *phase) {
	p.res = bench.Merge(p.rounds...)
	switch {
	case r.redis && !r.clickgate:
		p.roundTrips = p.redisCmds // one command per round trip, no pipelining
	case !r.redis:
		p.roundTrips = 0
	}
}

// measure warms every design up, then runs each phase in rounds that go
// round the designs: the closed loop of the default model and of new
// visitors (measuring the lag meanwhile), then the open loop at one rate
// for all; and audits clickgate's counters over all of its traffic.
func (l *loadtester) measure(rows []*row) error {
	var err error
	for _, r := range rows {
		fmt.Fprintf(l.stderr, "== warming up %s\n", r.name)
		if r.warm, err = l.run(l.model, bench.LoadOptions{Target: r.targets[0], Targets: r.targets[1:], Connections: l.conns, Duration: l.warmup}); err != nil {
			return err
		}
		if err := l.settle(r); err != nil {
			return err
		}
	}
	round := l.duration / time.Duration(l.rounds)
	// The lag is measured at the default model's maximum; new visitors
	// measure Redis CPU per visitor, which the probes' reads would add to.
	closed := []struct {
		name  string
		m     bench.Model
		phase func(*row) *phase
		probe bool
	}{
		{"closed", l.model, func(r *row) *phase { return &r.max }, true},
		{"new visitors", l.fresh, func(r *row) *phase { return &r.fresh }, false},
	}
	for _, c := range closed {
		for i := range l.rounds {
			for _, r := range rows {
				var probe *bench.LagProbe
				if c.probe {
					probe = r.lag
				}
				res, err := l.round(r, c.phase(r), c.m, bench.LoadOptions{Duration: round}, probe)
				if err != nil {
					return err
				}
				fmt.Fprintf(l.stderr, "%s round %d/%d, %s: %.0f req/s, p99 %s\n", c.name, i+1, l.rounds, r.name, res.Throughput, res.Latency.P99)
			}
		}
		for _, r := range rows {
			r.merge(c.phase(r))
		}
	}
	// One rate for every design, a share of the bare server's maximum.
	l.openRate = l.openShare * rows[0].max.res.Throughput
	for i := range l.rounds {
		for _, r := range rows {
			res, err := l.round(r, &r.open, l.model, bench.LoadOptions{Rate: l.openRate, Duration: round}, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(l.stderr, "open round %d/%d, %s at %.0f req/s: p99 %s (send lag p99 %s)\n", i+1, l.rounds, r.name, res.Rate, res.Latency.P99, res.SendLag.P99)
		}
	}
	for _, r := range rows {
		r.merge(&r.open)
	}
	if err := l.importUnderLoad(rows); err != nil {
		return err
	}
	for _, r := range rows {
		if r.admin == nil {
			continue
		}
		after, err := bench.Stats(l.ctx, r.admin, l.model)
		if err != nil {
			return err
		}
		// All of its traffic is audited: warm-up, closed and open loops.
		all := append(append(append([]*bench.Result{r.warm}, r.max.rounds...), r.fresh.rounds...), r.open.rounds...)
		all = append(all, r.importing.rounds...)
		r.audit = l.limits.Audit(l.model, bench.Merge(all...), r.before, after)
		r.cps = checkpointsOf(r.scrape())
		if r.cluster != nil {
			if r.layout, err = layoutOf(l.ctx, r.nodes); err != nil {
				return err
			}
		}
	}
	return nil
}

// Command clickbench drives and measures clickgate: it seeds campaigns,
// sends referral traffic from many loopback addresses, measures latency in
// closed and open loop, audits clickgate's counters against what it sent,
// and serves the baselines clickgate is compared with.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/clickgate/clickgate/bench"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

const usage = `clickbench: load and audit for clickgate

Usage:
  clickbench seed [model flags] [--admin-url URL] [--admin-token T]
      create the model's campaigns, creators and links through the admin API
  clickbench run [model flags] [--target HOST:PORT] [--connections N]
                 [--rate R] [--duration D] [--requests N] [--json]
                 [--audit --admin-url URL --admin-token T]
      send the model's traffic; --rate R for an open loop at R req/s;
      --audit compares clickgate's counters before and after with what was sent
  clickbench baseline [--listen ADDR] [--links N] [--redis URL | --durable FILE]
      serve the ceiling (a bare 302 from memory), with --redis the naive
      design (one HINCRBY round trip per click), or with --durable the floor
      of a durable design (each GET fdatasynced to FILE by a group commit
      before its 302), for codes L0000000..L(N-1)
  clickbench loadtest [--out FILE] [--duration D]
      run every design side by side, pinned to cores, and write BENCHMARKS.md

Run "clickbench COMMAND -h" for each command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errFailed is a command that ran but whose verdict is failure (an audit).
var errFailed = errors.New("failed")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "seed":
		err = seed(ctx, args[1:], stdout, stderr)
	case "run":
		err = load(ctx, args[1:], stdout, stderr)
	case "baseline":
		err = baseline(ctx, args[1:], stderr)
	case "loadtest":
		err = loadtest(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "clickbench: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageErr
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFailed):
		return 1
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "clickbench: %s\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "clickbench: %s\n", err)
		return 1
	}
}

type usageErr struct{ error }

func usageError(format string, args ...any) error { return usageErr{fmt.Errorf(format, args...)} }

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr{err}
	}
	if fs.NArg() > 0 {
		return usageError("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// modelFlags are the traffic model's flags, shared by seed and run.
type modelFlags struct {
	m    bench.Model
	base *int
}

func addModelFlags(fs *flag.FlagSet) *modelFlags {
	f := &modelFlags{m: bench.DefaultModel()}
	m := &f.m
	fs.IntVar(&m.Campaigns, "campaigns", m.Campaigns, "campaigns")
	fs.IntVar(&m.CreatorsPerCampaign, "creators", m.CreatorsPerCampaign, "creators per campaign")
	fs.IntVar(&m.LinksPerCreator, "links", m.LinksPerCreator, "links per creator")
	fs.IntVar(&m.VisitorsPerAddress, "visitors-per-address", m.VisitorsPerAddress, fmt.Sprintf("people behind one source address, each with its own User-Agent (1 to %d)", len(bench.PersonAgents)))
	// At most 256 people per /24, within clickgate's default --budget-block.
	m.AddressesPerBlock = 64
	fs.IntVar(&m.AddressesPerBlock, "addresses-per-block", m.AddressesPerBlock, "addresses of each /24 the people come from (1 to 254); keep visitors-per-address × this within clickgate's --budget-block")
	fs.IntVar(&m.MaxRepeats, "max-repeats", m.MaxRepeats, "most clicks of one person; keep visitors-per-address × max-repeats within 4 × clickgate's --velocity-max, its edge's guard")
	fs.Float64Var(&m.RepeatSkew, "repeat-skew", m.RepeatSkew, "Zipf exponent of clicks per person (higher: more people click once)")
	fs.Float64Var(&m.LinkSkew, "link-skew", m.LinkSkew, "Zipf exponent of link popularity")
	fs.Float64Var(&m.CrawlerShare, "crawlers", m.CrawlerShare, "share of requests from crawlers and HTTP tools")
	fs.Float64Var(&m.PreviewShare, "previews", m.PreviewShare, "share of requests from link-preview fetchers")
	fs.Float64Var(&m.PrefetchShare, "prefetches", m.PrefetchShare, "share of requests that are browser prefetches")
	fs.Float64Var(&m.HeadShare, "heads", m.HeadShare, "share of HEAD requests")
	fs.Float64Var(&m.UnknownShare, "unknown", m.UnknownShare, "share of requests for codes that are no link")
	fs.Float64Var(&m.FraudShare, "fraud", m.FraudShare, "share of requests from fraudsters (User-Agent rotation, cookie jars replayed, /24 sweeps), on the links of each campaign's fraudster creators")
	fs.BoolVar(&m.NewVisitors, "new-visitors", false, "every request a new visitor: a person's only click, its address in X-Forwarded-For, sent from "+bench.ProxyAddr.String()+" (run clickgate with --trusted-proxies "+bench.ProxyAddr.String()+")")
	fs.Uint64Var(&m.Seed, "seed", m.Seed, "seed of the traffic")
	f.base = fs.Int("address-base", -1, "first /24 block of the addresses to send from (0 to 65535; people from 127.0.0.0/8, fraudsters 32768 blocks on, new visitors from 10.0.0.0/8); -1: random, so that runs never share a visitor")
	return f
}

func (f *modelFlags) model() (bench.Model, error) {
	m := f.m
	switch {
	case *f.base < 0:
		m.AddressBase = rand.Uint32N(65536)
	case *f.base > 65535:
		return m, usageError("--address-base %d: want 0 to 65535", *f.base)
	default:
		m.AddressBase = uint32(*f.base)
	}
	if err := m.Validate(); err != nil {
		return m, usageError("%s", err)
	}
	return m, nil
}

func addAdminFlags(fs *flag.FlagSet) *adminclient.Client {
	a := &adminclient.Client{}
	fs.StringVar(&a.URL, "admin-url", "http://127.0.0.1:8081", "URL of clickgate's admin listener")
	fs.StringVar(&a.Token, "admin-token", os.Getenv("CLICKGATE_ADMIN_TOKEN"), "admin bearer token [$CLICKGATE_ADMIN_TOKEN]")
	return a
}

func seed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", stderr)
	mf := addModelFlags(fs)
	a := addAdminFlags(fs)
	dest := fs.String("destination", "https://app.example.com/join", "destination of every link (an absolute https URL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	m, err := mf.model()
	if err != nil {
		return err
	}
	if a.Token == "" {
		return usageError("seed: --admin-token is required")
	}
	start := time.Now()
	if err := bench.Seed(ctx, a, m, *dest); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d campaigns, %d creators, %d links (%s to %s) in %s\n",
		m.Campaigns, m.Creators(), m.Links(), bench.LinkCode(0), bench.LinkCode(m.Links()-1), time.Since(start).Round(time.Millisecond))
	return nil
}

// report is run's --json output.
type report struct {
	Model  bench.Model   `json:"model"`
	Result *bench.Result `json:"result"`
	Audit  *bench.Audit  `json:"audit,omitempty"`
}

func load(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	mf := addModelFlags(fs)
	a := addAdminFlags(fs)
	var o bench.LoadOptions
	fs.StringVar(&o.Target, "target", "127.0.0.1:8080", "public listener to load")
	fs.StringVar(&o.Host, "host", "", "Host header (default: --target)")
	fs.IntVar(&o.Connections, "connections", 64, "connections open at once")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: requests per second, each measured from when it was due; 0: closed loop")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "stop after this long; 0: only --requests bounds the run")
	fs.Int64Var(&o.Requests, "requests", 0, "stop after this many requests; 0: only --duration bounds the run")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "bound on one request, connecting included")
	asJSON := fs.Bool("json", false, "write the report as JSON to stdout")
	quiet := fs.Bool("quiet", false, "no progress line every second")
	audit := fs.Bool("audit", false, "read every creator's counters before and after, and compare them with what was sent; exit 1 on a mismatch")
	limits := bench.DefaultLimits()
	fs.Float64Var(&limits.FP, "fp", limits.FP, "clickgate's --dedupe-fp, for the audit's Bloom bound")
	fs.IntVar(&limits.BudgetNetwork, "budget-network", limits.BudgetNetwork, "clickgate's --budget-network, for the audit's bound on what fraudsters are paid")
	fs.IntVar(&limits.BudgetBlock, "budget-block", limits.BudgetBlock, "clickgate's --budget-block, for the audit's bound on what fraudsters are paid")
	verbose := fs.Bool("verbose", false, "audit: print every creator, not only those with problems")
	if err := parse(fs, args); err != nil {
		return err
	}
	m, err := mf.model()
	if err != nil {
		return err
	}
	if o.Duration <= 0 && o.Requests <= 0 {
		return usageError("run: --duration or --requests must bound the run")
	}
	if o.Connections < 1 || o.Connections > 100_000 || o.Rate < 0 || limits.FP < 0 || limits.FP >= 1 || limits.BudgetNetwork < 0 || limits.BudgetBlock < 0 {
		return usageError("run: --connections must be 1 to 100000, --rate at least 0, --fp in [0, 1), the budgets at least 0")
	}
	if *audit && a.Token == "" {
		return usageError("run: --audit needs --admin-token")
	}
	if o.Generator, err = bench.NewGenerator(m); err != nil {
		return usageError("%s", err)
	}
	if !*quiet {
		o.Progress = stderr
	}
	var before []bench.Counts
	if *audit {
		if before, err = bench.Stats(ctx, a, m); err != nil {
			return fmt.Errorf("cannot read counters before the run (seed first?): %w", err)
		}
	}
	res, err := bench.Run(ctx, o)
	if err != nil {
		return usageError("%s", err)
	}
	rep := report{Model: m, Result: res}
	if *audit {
		// Not ctx: an interrupted run is still audited.
		actx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		after, err := bench.Stats(actx, a, m)
		if err != nil {
			return fmt.Errorf("cannot read counters after the run: %w", err)
		}
		rep.Audit = limits.Audit(m, res, before, after)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		if m.NewVisitors {
			fmt.Fprintf(stdout, "model: %d campaigns × %d creators × %d links; every request a new visitor, forwarded by %s; seed %d\n",
				m.Campaigns, m.CreatorsPerCampaign, m.LinksPerCreator, bench.ProxyAddr, m.Seed)
		} else {
			fmt.Fprintf(stdout, "model: %d campaigns × %d creators (and %d fraudsters) × %d links; %d people per address, %d addresses per /24 (from 127.%d.%d.1), 1 to %d clicks each (Zipf %.2g); %.0f%% of requests fraud; seed %d\n",
				m.Campaigns, m.CreatorsPerCampaign, bench.FraudstersPerCampaign, m.LinksPerCreator, m.VisitorsPerAddress, m.AddressesPerBlock, m.AddressBase>>8, m.AddressBase&255,
				m.MaxRepeats, m.RepeatSkew, 100*m.FraudShare, m.Seed)
		}
		res.Write(stdout)
		if rep.Audit != nil {
			rep.Audit.Write(stdout, *verbose)
		}
	}
	if rep.Audit != nil && !rep.Audit.OK() {
		return errFailed
	}
	return nil
}

func baseline(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("baseline", stderr)
	listen := fs.String("listen", "127.0.0.1:9080", "listener address")
	def := bench.DefaultModel()
	n := fs.Int("links", def.Links(), "number of links, codes L0000000 to L(N-1): the default model's, fraudsters' included")
	redisURL := fs.String("redis", "", "Redis URL: count every click with one HINCRBY (the naive design); empty, and no --durable: the bare ceiling")
	durable := fs.String("durable", "", "file (created, or truncated): append every GET to it, with a group commit (a write and an fdatasync), before its 302: the floor of a design that makes each visit durable")
	metricsListen := fs.String("metrics-listen", "", "also serve the process's Go metrics (Prometheus text) at /metrics, and Go's profiler at /debug/pprof/, on this address")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *n > 10_000_000 {
		return usageError("--links %d: want 1 to 10000000", *n)
	}
	links := make(map[string]string, *n)
	for i := range *n {
		links[bench.LinkCode(i)] = fmt.Sprintf("https://app.example.com/join?l=%d", i)
	}
	b, design := bench.NewBare(links), "bare"
	switch {
	case *redisURL != "" && *durable != "":
		return usageError("--redis and --durable: give one")
	case *durable != "":
		var err error
		if b, err = bench.NewFloor(links, *durable); err != nil {
			return err
		}
		defer b.Close()
		design = "floor"
	case *redisURL != "":
		opt, err := redis.ParseURL(*redisURL)
		if err != nil {
			return usageError("bad --redis: %s", err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("cannot reach redis: %w", err)
		}
		b, design = bench.NewNaive(links, rdb, "clickbench:naive"), "naive"
	}
	// Without TCP keep-alive probes, as clickgate's public listener.
	ln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", *listen)
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{Handler: b.Handle, Name: "clickbench", NoDefaultContentType: true}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	logArgs := []any{"design", design, "listen", ln.Addr().String(), "links", *n}
	if *metricsListen != "" {
		mln, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			srv.Shutdown()
			return err
		}
		defer mln.Close()
		go func() {
			errc <- fasthttp.Serve(mln, func(ctx *fasthttp.RequestCtx) {
				if bytes.HasPrefix(ctx.Path(), []byte("/debug/pprof/")) {
					pprofhandler.PprofHandler(ctx) // to profile the ceiling like clickgate
					return
				}
				metrics.WritePrometheus(ctx, true)
			})
		}()
		logArgs = append(logArgs, "metrics", mln.Addr().String())
	}
	slog.New(slog.NewTextHandler(stderr, nil)).Info("baseline serving", logArgs...)
	select {
	case <-ctx.Done():
		return srv.Shutdown()
	case err := <-errc:
		return err
	}
}

// Command clickbench drives and measures clickgate. For now it runs the
// baselines clickgate is compared with: `clickbench baseline`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/bench"
)

const usage = `clickbench: load and audit for clickgate

Usage:
  clickbench baseline [--listen ADDR] [--links N] [--redis URL]
      serve the ceiling (a bare 302 from memory), or with --redis the naive
      design (one HINCRBY round trip per click), for codes L0000000..L(N-1)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "baseline" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err := baseline(ctx, args[1:], stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "clickbench: %s\n", err)
		return 1
	}
	return 0
}

// LinkCode is the code of baseline link i; the load generator uses the same.
func LinkCode(i int) string { return fmt.Sprintf("L%07d", i) }

func baseline(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9080", "listener address")
	n := fs.Int("links", 1000, "number of links, codes L0000000 to L(N-1)")
	redisURL := fs.String("redis", "", "Redis URL: count every click with one HINCRBY (the naive design); empty: the bare ceiling")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 10_000_000 {
		return fmt.Errorf("--links %d: want 1 to 10000000", *n)
	}
	links := make(map[string]string, *n)
	for i := range *n {
		links[LinkCode(i)] = fmt.Sprintf("https://app.example.com/join?l=%d", i)
	}
	b, design := bench.NewBare(links), "bare"
	if *redisURL != "" {
		opt, err := redis.ParseURL(*redisURL)
		if err != nil {
			return fmt.Errorf("bad --redis: %w", err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("cannot reach redis: %w", err)
		}
		b, design = bench.NewNaive(links, rdb, "clickbench:naive"), "naive"
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{Handler: b.Handle, Name: "clickbench", NoDefaultContentType: true}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	slog.New(slog.NewTextHandler(stderr, nil)).Info("baseline serving", "design", design, "listen", ln.Addr().String(), "links", *n)
	select {
	case <-ctx.Done():
		return srv.Shutdown()
	case err := <-errc:
		return err
	}
}

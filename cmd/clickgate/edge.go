package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/redirect"
)

// edgeFlags are the limits of the public listener, which faces the open
// internet. Each is set explicitly: fasthttp's defaults are unlimited
// (timeouts, connections per client) or sized for other servers.
type edgeFlags struct {
	host           *string
	maxConns       *int
	maxConnsPerIP  *int
	maxConnsBlock  *int
	maxHeaderBytes *int
	readTimeout    *time.Duration
	idleTimeout    *time.Duration
	probeMax       *int
	probeWindow    *time.Duration
}

// Defaults of the edge flags, sized in README's "The public edge".
const (
	defaultMaxConns       = 65536
	defaultMaxConnsPerIP  = 256
	defaultMaxConnsBlock  = 4096
	defaultMaxHeaderBytes = 8 << 10
	defaultReadTimeout    = 10 * time.Second
	defaultIdleTimeout    = 10 * time.Second
	// publicWriteTimeout bounds sending one answer (a few hundred bytes);
	// it starts when the handler returns.
	publicWriteTimeout = 10 * time.Second
	// publicMaxBodyBytes bounds what is read of a body before Handle
	// refuses it: nothing public takes one.
	publicMaxBodyBytes = 1 << 10
)

func addEdgeFlags(fs *flag.FlagSet) *edgeFlags {
	return &edgeFlags{
		host:           fs.String("host", "", `comma-separated hosts the public listener answers for; other hosts get 421 (default: the host of --public-url, or any host when --public-url is not given; "*" for any)`),
		maxConns:       fs.Int("max-conns", defaultMaxConns, "connections the public listener serves at once; more are refused with 503"),
		maxConnsPerIP:  fs.Int("max-conns-per-ip", defaultMaxConnsPerIP, "connections open at once per client network (IPv4 address, IPv6 /64), --trusted-proxies exempt; more are refused with 429; 0 turns the limit off"),
		maxConnsBlock:  fs.Int("max-conns-per-block", defaultMaxConnsBlock, "connections open at once per block of networks (IPv4 /24, IPv6 /48), --trusted-proxies exempt; never more than three quarters of --max-conns, so that no block takes the rest; more are refused with 429"),
		maxHeaderBytes: fs.Int("max-header-bytes", defaultMaxHeaderBytes, "largest request line and headers on the public listener, in bytes; larger requests get 431"),
		readTimeout:    fs.Duration("read-timeout", defaultReadTimeout, "time a client has to send a whole request, counted from its connection or, on a kept-alive one, from its first byte"),
		idleTimeout:    fs.Duration("idle-timeout", defaultIdleTimeout, "how long an idle keep-alive connection stays open; behind a load balancer, set it above the balancer's idle timeout"),
		probeMax:       fs.Int("probe-max", redirect.DefaultProbeMax, "unknown codes allowed per client network per --probe-window; past it, every code from that network gets 429; 0 turns the limit off"),
		probeWindow:    fs.Duration("probe-window", redirect.DefaultProbeWindow, "window of --probe-max"),
	}
}

// check validates the flags and returns the allowed hosts. publicURL is
// --public-url as given, empty when it was not.
func (f *edgeFlags) check(publicURL string) (*redirect.Hosts, error) {
	switch {
	case *f.maxConns < 1:
		return nil, usageError("--max-conns must be at least 1")
	case *f.maxConnsPerIP < 0:
		return nil, usageError("--max-conns-per-ip must not be negative")
	case *f.maxConnsBlock < 1:
		return nil, usageError("--max-conns-per-block must be at least 1")
	case *f.maxHeaderBytes < 1<<10 || *f.maxHeaderBytes > 1<<20:
		return nil, usageError("--max-header-bytes must be 1024 to 1048576")
	case *f.readTimeout <= 0 || *f.idleTimeout <= 0:
		return nil, usageError("--read-timeout and --idle-timeout must be positive")
	case *f.probeMax < 0 || *f.probeMax > 65534 || *f.probeWindow < time.Second:
		return nil, usageError("--probe-max must be 0 to 65534 and --probe-window at least 1s")
	}
	hosts := *f.host
	if hosts == "" && publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || u.Hostname() == "" {
			return nil, usageError("--public-url %q must be an absolute http(s) URL", publicURL)
		}
		hosts = u.Hostname()
	}
	h, err := redirect.ParseHosts(hosts)
	if err != nil {
		return nil, usageError("--host: %s", err)
	}
	return h, nil
}

// probes returns the unknown-code limit, or nil when it is off.
func (f *edgeFlags) probes() *redirect.Probes {
	if *f.probeMax == 0 {
		return nil
	}
	return redirect.NewProbes(redirect.ProbeOptions{Max: *f.probeMax, Window: *f.probeWindow})
}

// listener limits ln's connections per client network and per block of
// networks, a quarter of --max-conns held in reserve for other blocks.
func (f *edgeFlags) listener(ln net.Listener, trusted *redirect.TrustedProxies) net.Listener {
	if *f.maxConnsPerIP == 0 {
		return ln
	}
	return redirect.LimitConns(ln, *f.maxConnsPerIP, max(1, min(*f.maxConnsBlock, *f.maxConns*3/4)), trusted)
}

// server returns the public server.
func (f *edgeFlags) server(handler fasthttp.RequestHandler, log *slog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler: handler,
		// On a new connection ReadTimeout runs from the accept, so a
		// client that sends its headers a byte at a time is dropped.
		ReadTimeout:  *f.readTimeout,
		WriteTimeout: publicWriteTimeout,
		IdleTimeout:  *f.idleTimeout,
		Concurrency:  *f.maxConns,
		// Per client network in the listener instead (redirect.LimitConns):
		// fasthttp's counts per address and counts a load balancer's too.
		MaxConnsPerIP: 0,
		// The read buffer bounds the request line and headers.
		ReadBufferSize:        *f.maxHeaderBytes,
		MaxRequestBodySize:    publicMaxBodyBytes,
		NoDefaultContentType:  true,
		NoDefaultServerHeader: true,
		// Errors name the request, not its contents (cookies, forged
		// headers), and come at most once a second.
		SecureErrorLogMessage: true,
		Logger:                &limitedPrinter{log: log},
		ErrorHandler:          redirect.ServerError,
	}
}

// limitedPrinter passes fasthttp's messages on to slog, at most one a
// second: a hostile client can cause one per request.
type limitedPrinter struct {
	log     *slog.Logger
	next    atomic.Int64 // Unix nanoseconds before which messages are dropped
	dropped atomic.Int64
}

func (p *limitedPrinter) Printf(format string, args ...any) {
	now := time.Now().UnixNano()
	if n := p.next.Load(); now < n || !p.next.CompareAndSwap(n, now+int64(time.Second)) {
		p.dropped.Add(1)
		return
	}
	p.log.Warn(fmt.Sprintf(format, args...), "dropped_before", p.dropped.Swap(0))
}

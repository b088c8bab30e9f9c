package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/dashboard"
	"github.com/clickgate/clickgate/redirect/admin"
)

// dashboardFlags are serve's flags of the dashboard listener.
type dashboardFlags struct {
	fs          *flag.FlagSet
	listen, url *string
	ln          net.Listener
	caps        *dashboard.Capabilities
	srv         *http.Server
}

func addDashboardFlags(fs *flag.FlagSet) *dashboardFlags {
	return &dashboardFlags{
		fs:     fs,
		listen: fs.String("dashboard-listen", "127.0.0.1:8082", "dashboard listener address: the operator's pages (admin token login) and the creators' pages; operator-only, keep it private (see README, Dashboard); empty turns it off"),
		url:    fs.String("dashboard-url", "", "base URL of the creators' page links, as creators reach the dashboard (default http://ADDRESS of --dashboard-listen)"),
	}
}

// open listens on --dashboard-listen, unless it is empty, and sets up the
// creators' page URLs, kept in store. When the flag was not given and its
// default address is taken (another node on this machine, a test), the
// node runs without a dashboard and says so: a node that redirects must
// not fail to start for its operator pages.
func (f *dashboardFlags) open(store counter.Store, log *slog.Logger) error {
	if *f.listen == "" {
		return nil
	}
	given := false
	f.fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "dashboard-listen" })
	ln, err := net.Listen("tcp", *f.listen)
	if err != nil && !given {
		log.Warn("no dashboard: its default address is taken; give --dashboard-listen", "address", *f.listen, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot listen on --dashboard-listen %q: %w", *f.listen, err)
	}
	f.ln = ln
	base := *f.url
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	f.caps = dashboard.NewCapabilities(store, base)
	return nil
}

// pages is what the admin API mints creator page URLs with: nil when the
// dashboard is off.
func (f *dashboardFlags) pages() admin.CreatorPages {
	if f.caps == nil {
		return nil
	}
	return f.caps
}

func (f *dashboardFlags) addr() string {
	if f.ln == nil {
		return "off"
	}
	return f.ln.Addr().String()
}

func (f *dashboardFlags) close() {
	if f.ln != nil {
		f.ln.Close()
	}
}

// serve starts serving the dashboard, which calls api in process.
func (f *dashboardFlags) serve(api fasthttp.RequestHandler, token string, store counter.Store, stats dashboard.Stats,
	flusher admin.Flusher, publicURL string, log *slog.Logger, errc chan<- error) error {
	if f.ln == nil {
		return nil
	}
	o := dashboard.Options{Admin: dashboard.NewAdmin(api, token), Token: token, Catalog: store, Stats: stats,
		Capabilities: f.caps, PublicURL: publicURL, Logger: log}
	if flusher != nil {
		o.Ledger = flusher
	}
	d, err := dashboard.New(o)
	if err != nil {
		return err
	}
	f.srv = &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := f.srv.Serve(f.ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return nil
}

// shutdown stops accepting and finishes the pages in flight.
func (f *dashboardFlags) shutdown(ctx context.Context) error {
	if f.srv == nil {
		f.close()
		return nil
	}
	return f.srv.Shutdown(ctx)
}

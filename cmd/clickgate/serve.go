package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/admin"

	"github.com/clickgate/clickgate/counter/disk"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	listen := fs.String("listen", ":8080", "public listener address")
	adminListen := fs.String("admin-listen", "127.0.0.1:8081", "admin listener address (keep it private)")
	adminToken := fs.String("admin-token", "", "bearer token of the admin API; when empty, generated and kept in DATA/admin-token")
	appKey := fs.String("app-key", "", "key of the app backend for POST /v1/conversions (bearer or signature), separate from the admin token; when empty, generated and kept in DATA/app-key")
	publicURL := fs.String("public-url", "", "base URL of the links, e.g. https://go.example.com (default http://localhost:PORT of --listen)")
	sf := addStoreFlags(fs)
	dataDir := sf.data
	lf := addLedgerFlags(fs)
	flushInterval := fs.Duration("flush-interval", time.Minute, "how often counters are flushed to the ledger; 0 turns the flusher off (on every node but the one whose ledger the store is flushed into)")
	reclaim := fs.Bool("reclaim-ledger", false, "take the store over from the ledger it was flushed into before, when that ledger is lost: flush into --ledger from now on")
	commitTimeout := fs.Duration("commit-timeout", 250*time.Millisecond, "how long a click waits for its batch to commit before the batch is spooled and the click redirected")
	commitInterval := fs.Duration("commit-interval", 2*time.Millisecond, "least time between the starts of two appends of visits (an fsync of the embedded log, a round trip to Redis): under load, the visits of that time share one; 0 appends as soon as the last append returns")
	spf := addSpoolFlags(fs)
	pollInterval := fs.Duration("poll-interval", 250*time.Millisecond, "how often the link table checks the store for changes made by other nodes")
	trusted := fs.String("trusted-proxies", "", "comma-separated CIDRs or addresses of proxies whose X-Forwarded-For is believed (default: none, the socket peer is the client)")
	velocityMax := fs.Int("velocity-max", redirect.DefaultVelocityMax, "person visits allowed per client network (IPv4 address, IPv6 /64) per --velocity-window, counted by the judge; more are not paid")
	velocityWindow := fs.Duration("velocity-window", redirect.DefaultVelocityWindow, "window of --velocity-max")
	velocityCounters := fs.Int("velocity-counters", 1<<18, "cells in each of the 4 rows of the edge's sketch, which flags a network at 4 times --velocity-max, 16 bytes each, rounded up to a power of two (4096 to 4194304); keep it above the node's person clicks per --velocity-window / 15")
	edge := addEdgeFlags(fs)
	dash := addDashboardFlags(fs)
	wf := addWebhookFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	// What the stores and the visit log say goes where the node's own
	// lines go, in the same format.
	slog.SetDefault(log)
	minProcs()

	proxies, err := redirect.ParseTrustedProxies(*trusted)
	if err != nil {
		return usageError("--trusted-proxies: %s", err)
	}
	if *velocityMax < 1 || *velocityMax > 65534 || *velocityWindow < time.Second {
		return usageError("--velocity-max must be 1 to 65534 and --velocity-window at least 1s")
	}
	if *velocityCounters < 4096 || *velocityCounters > 1<<22 {
		return usageError("--velocity-counters must be 4096 to 4194304")
	}
	if *commitInterval < 0 || *commitInterval >= *commitTimeout {
		return usageError("--commit-interval must be at least 0 and less than --commit-timeout")
	}
	hosts, err := edge.check(*publicURL)
	if err != nil {
		return err
	}
	if err := edge.fitFDs(fs, log); err != nil {
		return err
	}
	token, err := secretOrFile(*adminToken, *dataDir, "admin-token", log)
	if err != nil {
		return err
	}
	app, err := secretOrFile(*appKey, *dataDir, "app-key", log)
	if err != nil {
		return err
	}
	if err := checkKeys(token, app); err != nil {
		return err
	}

	sp, err := spf.open(*dataDir, log)
	if err != nil {
		return err
	}
	defer sp.Close()
	// Shutdown, from its start to the exit, takes --shutdown-timeout at
	// most: every stop shares one deadline, set when shutdown starts.
	var deadline time.Time
	stopContext := func() (context.Context, context.CancelFunc) {
		if deadline.IsZero() {
			deadline = time.Now().Add(*spf.shutdownTimeout) // a start that failed
		}
		return context.WithDeadline(context.Background(), deadline)
	}

	sf.judge, sf.velocityMax, sf.velocityWindow = true, *velocityMax, *velocityWindow
	store, params, secret, err := sf.open(ctx, log)
	if err != nil {
		return err
	}
	defer store.Close()
	if j, ok := store.(interface{ StopJudges(context.Context) }); ok {
		// After the recorder and the flusher have stopped: the judges
		// decide what they committed last.
		defer func() {
			ctx, cancel := stopContext()
			defer cancel()
			j.StopJudges(ctx)
		}()
	}

	table := redirect.NewTable(redirect.TableOptions{Store: store, PollInterval: *pollInterval, Logger: log})
	if err := table.Start(ctx); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := stopContext()
		defer cancel()
		within(ctx, table.Stop)
	}()

	// The webhook outbox outlives the flusher, whose last flush may emit
	// events, and the admin API, whose conversions do.
	hooks, err := wf.start(*dataDir, store, log)
	if err != nil {
		return err
	}
	defer func() {
		// By the shutdown's deadline: a claim or a read of the shared
		// endpoints waits for Redis, which may not answer. What is cut
		// short stays pending in the outbox, on disk.
		ctx, cancel := stopContext()
		defer cancel()
		within(ctx, hooks.stop)
	}()

	// The flusher starts before the recorder, so that it stops after it:
	// its last flush sees every visit the recorder drained.
	var fl *flusher
	var flusher admin.Flusher // nil, not a nil *flusher, when this node does not flush
	if *flushInterval > 0 {
		key, err := lf.key(secret)
		if err != nil {
			return err
		}
		if fl, err = startFlusher(ctx, store, sp, lf.path(*dataDir), key, *reclaim, *flushInterval, hooks.fromLedger, log); err != nil {
			return err
		}
		flusher = fl
		defer func() {
			ctx, cancel := stopContext()
			defer cancel()
			within(ctx, func() { fl.stop(ctx) })
		}()
	} else if *reclaim {
		return usageError("--reclaim-ledger needs the flusher: a --flush-interval above 0")
	}

	// Each append costs about as much whatever its size: on Redis a round
	// trip, which its one thread pays for; on the embedded store an
	// fdatasync, which took 77-157 us of the process's CPU on a virtual
	// disk (a throwaway measurement). Without the pause, a node under
	// moderate load appends nearly every new visitor alone.
	rec := counter.NewRecorder(counter.RecorderOptions{Store: store, Params: params, CommitTimeout: *commitTimeout, CommitInterval: *commitInterval, Spool: sp, Logger: log})
	rec.Start()
	if f, ok := store.(interface{ Follow(func(*counter.Visit)) }); ok {
		// Other nodes' visitors are known here too.
		f.Follow(rec.Learn)
	}
	defer func() {
		ctx, cancel := stopContext()
		defer cancel()
		rec.Stop(ctx)
	}()
	defer serveMetrics(rec, *dataDir)()

	// No TCP keep-alive probes (Go's default turns them on, four
	// setsockopt calls per accepted connection, 2% of the CPU of a node
	// under the default model in a profile measured once): --idle-timeout
	// and --read-timeout close a connection whose client went away.
	pubLn, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on --listen %q: %w", *listen, err)
	}
	admLn, err := net.Listen("tcp", *adminListen)
	if err != nil {
		pubLn.Close()
		return fmt.Errorf("cannot listen on --admin-listen %q: %w", *adminListen, err)
	}
	if err := dash.open(store, log); err != nil {
		pubLn.Close()
		admLn.Close()
		return err
	}
	if *publicURL == "" {
		*publicURL = fmt.Sprintf("http://localhost:%d", pubLn.Addr().(*net.TCPAddr).Port)
	}
	pubLn = edge.listener(redirect.KeepAccepting(pubLn, log), proxies)
	admLn = redirect.KeepAccepting(admLn, log)
	// The judge decides --velocity-max; the edge's sketch only guards.
	guard := min(*velocityMax*redirect.VelocityGuard, math.MaxUint16-1)
	h := redirect.New(redirect.Options{Table: table, Recorder: rec, Secret: secret, PublicURL: *publicURL, TrustedProxies: proxies,
		Velocity: redirect.NewVelocity(redirect.VelocityOptions{Max: guard, Window: *velocityWindow, Counters: *velocityCounters}),
		Hosts:    hosts, Probes: edge.probes()})
	pub := edge.server(redirect.Timed(h.Handle), log)
	api, err := admin.New(admin.Options{Store: store, Table: table, Recorder: rec, Token: token, AppKey: app,
		Clicks: h.Signer(), Flusher: flusher, PublicURL: *publicURL, OwnHosts: hosts.Names(), Logger: log, CreatorPages: dash.pages(),
		Ready: storeReady(store), Webhooks: hooks.api(), BeforeMetrics: func() { redirect.CountMaxConns(pub) }})
	if err != nil {
		pubLn.Close()
		admLn.Close()
		dash.close()
		return usageError("%s", err)
	}

	adm := &fasthttp.Server{
		Handler:            api.Handle,
		Name:               "clickgate-admin",
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       30 * time.Second,
		MaxRequestBodySize: 1 << 20,
		ErrorHandler:       admin.ServerError, // 413 for a body over the cap, in JSON
		Logger:             slogPrinter{log},
	}
	errc := make(chan error, 3)
	if err := dash.serve(api.Handle, token, store, rec, flusher, *publicURL, log, errc); err != nil {
		pubLn.Close()
		admLn.Close()
		dash.close()
		return err
	}
	go func() { errc <- pub.Serve(pubLn) }()
	go func() { errc <- adm.Serve(admLn) }()
	log.Info("clickgate serving", "version", version, "public", pubLn.Addr().String(), "admin", admLn.Addr().String(), "dashboard", dash.addr(),
		"public_url", *publicURL, "hosts", hosts.String(), "store", storeName(*sf.redis), "dedupe", params.String(), "links", table.Len())

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
		log.Error("listener failed; shutting down", "err", err)
	}
	// Stop accepting and finish in-flight requests (each waits for its
	// commit or its spool write), then the deferred stops drain the
	// recorder (commit what is queued, replay the spool if the store takes
	// it), flush and close the store, in reverse order of start, all by
	// one deadline.
	deadline = time.Now().Add(*spf.shutdownTimeout)
	sctx, cancel := stopContext()
	defer cancel()
	if e := pub.ShutdownWithContext(sctx); e != nil {
		log.Error("public listener did not drain", "err", e)
	}
	if e := adm.ShutdownWithContext(sctx); e != nil {
		log.Error("admin listener did not drain", "err", e)
	}
	if e := dash.shutdown(sctx); e != nil {
		log.Error("dashboard listener did not drain", "err", e)
	}
	return err
}

// minProcs gives the process at least two Ps. A commit's fsync is a
// blocking system call that holds its P until the scheduler hands the P
// off, which with one P (one CPU, or a container limited to one) stalls
// every request meanwhile: pinned to one CPU, the embedded store served
// 5,447 req/s with GOMAXPROCS=1 and 24,666 with 2 (clickbench, 128
// connections, same run). A second P costs nothing when idle.
func minProcs() {
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}

// within runs stop, and returns when it does or when ctx ends, whichever
// comes first: a part stuck in a call to a stalled store (a Redis read
// that no cancellation interrupts) must not hold the exit past the
// shutdown deadline. Everything it would have written is crash-safe.
func within(ctx context.Context, stop func()) {
	done := make(chan struct{})
	go func() {
		stop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func storeName(redisURL string) string {
	if redisURL == "" {
		return "embedded"
	}
	return "redis"
}

// minKeyLen is the shortest admin token or app key taken, as for every
// secret: a guessable one opens the admin API, or credits signups, to
// anyone. (Generated ones are 64 hex digits.)
const minKeyLen = 32

// checkKeys refuses an admin token or app key too short to be secret, and
// one key for both: the app backend would hold an admin token.
func checkKeys(token, app string) error {
	switch {
	case len(token) < minKeyLen:
		return usageError("--admin-token must be at least %d characters (when empty, one is generated)", minKeyLen)
	case len(app) < minKeyLen:
		return usageError("--app-key must be at least %d characters (when empty, one is generated)", minKeyLen)
	case token == app:
		return usageError("--app-key must differ from --admin-token: the app backend would hold an admin token")
	}
	return nil
}

// secretOrFile returns flag, trimmed, or else the secret kept in DIR/NAME.
func secretOrFile(flag, dir, name string, log *slog.Logger) (string, error) {
	if s := strings.TrimSpace(flag); s != "" {
		return s, nil
	}
	b, err := loadOrCreateSecret(dir, name, log)
	return string(b), err
}

// loadOrCreateSecret reads DIR/NAME, or writes a new random one (0600).
func loadOrCreateSecret(dir, name string, log *slog.Logger) ([]byte, error) {
	return loadOrCreate(dir, name, log, true)
}

func loadOrCreate(dir, name string, log *slog.Logger, retry bool) ([]byte, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, fmt.Errorf("%s holds %d bytes; want at least 32", path, len(s))
		}
		return []byte(s), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data directory %q: %w", dir, err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	// Written aside, then linked into place: a process starting at the same
	// time reads either no file or the whole secret, and both keep one.
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(raw) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if e := tmp.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) && retry {
		// Another process won the race: read its secret, once.
		return loadOrCreate(dir, name, log, false)
	}
	if err == nil {
		// The new name must survive a power loss: a lost secret re-counts
		// every visitor and voids every click id issued.
		err = disk.SyncDir(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	log.Warn("generated a new secret; keep it safe and back it up", "file", path)
	return []byte(hex.EncodeToString(raw)), nil
}

// slogPrinter routes fasthttp's own messages to slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.log.Warn(fmt.Sprintf(format, args...))
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clickgate/clickgate/counter/disk"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/payout"
	"github.com/clickgate/clickgate/counter/spool"
)

func ledgerPath(dir, dataDir string) string {
	if dir != "" {
		return dir
	}
	return filepath.Join(dataDir, "ledger")
}

// ledgerFlags locate a ledger and its key; serve, flush, ledger verify and
// payouts share them.
type ledgerFlags struct {
	dir, keyFile *string
}

func addLedgerFlags(fs *flag.FlagSet) ledgerFlags {
	return ledgerFlags{
		dir:     fs.String("ledger", "", "ledger directory (default DATA/ledger)"),
		keyFile: fs.String("ledger-key-file", "", "file holding the key that authenticates ledger records (at least 32 bytes); default: derived from the click secret"),
	}
}

func (f ledgerFlags) path(dataDir string) string { return ledgerPath(*f.dir, dataDir) }

// key returns the ledger key: the key file's contents, or else the key
// derived from secret.
func (f ledgerFlags) key(secret []byte) ([]byte, error) {
	if *f.keyFile == "" {
		return ledger.DeriveKey(secret), nil
	}
	b, err := os.ReadFile(*f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read --ledger-key-file: %w", err)
	}
	if k := bytes.TrimSpace(b); len(k) >= 32 {
		return k, nil
	}
	return nil, usageError("--ledger-key-file %s holds fewer than 32 bytes", *f.keyFile)
}

// readKey returns the ledger key for a reader of the ledger: the key file,
// or the key derived from --click-secret, or from DATA/click-secret.
func (f ledgerFlags) readKey(secret, dataDir string) ([]byte, error) {
	if *f.keyFile != "" {
		return f.key(nil)
	}
	s := strings.TrimSpace(secret)
	if s == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, "click-secret"))
		if err != nil {
			return nil, usageError("no ledger key: give --ledger-key-file or --click-secret, or --data of the node that wrote the ledger (%s)", err)
		}
		s = strings.TrimSpace(string(b))
	}
	return f.key([]byte(s))
}

// errOtherLedger: the store is flushed into another ledger than this one.
var errOtherLedger = errors.New("the store is flushed into another ledger")

// openLedger opens the ledger in dir, repairing a torn tail, binds it to
// the store, and makes sure the store is flushed into it and no other: a
// store is flushed into one ledger only, or creators would be paid twice.
// reclaim takes the store over from the ledger that had it, for when that
// ledger is lost.
func openLedger(ctx context.Context, store counter.Store, dir string, key []byte, reclaim bool, log *slog.Logger) (*ledger.Ledger, error) {
	l, err := ledger.Open(dir, key)
	if err != nil {
		return nil, fmt.Errorf("cannot open ledger: %w", err)
	}
	if n := l.Recovered(); n > 0 {
		log.Warn("ledger had a torn tail after a crash; truncated it back to the last whole record", "dir", dir, "bytes", n)
	}
	if err := claimStore(ctx, store, l, dir, reclaim, log); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func claimStore(ctx context.Context, store counter.Store, l *ledger.Ledger, dir string, reclaim bool, log *slog.Logger) error {
	var id [16]byte
	rand.Read(id[:])
	storeID, err := store.Claim(ctx, "id", hex.EncodeToString(id[:]))
	if err != nil {
		return err
	}
	if err := l.Init(storeID, time.Now()); err != nil {
		return err
	}
	owner, err := store.Claim(ctx, "ledger", l.ID())
	if err != nil || owner == l.ID() {
		return err
	}
	if !reclaim {
		return fmt.Errorf("%w: store %s is flushed into ledger %s, and ledger %q is %s. "+
			"If another node flushes this store, run this one with --flush-interval 0. "+
			"If the ledger of this store was lost, restore it from a backup, or start once with --reclaim-ledger "+
			"to flush the store's totals into %q from now on", errOtherLedger, storeID, owner, dir, l.ID(), dir)
	}
	if got, err := store.Reclaim(ctx, "ledger", owner, l.ID()); err != nil || got != l.ID() {
		return cmp.Or(err, fmt.Errorf("%w: store %s was reclaimed by ledger %s meanwhile", errOtherLedger, storeID, got))
	}
	log.Warn("reclaimed the store for this ledger; the ledger it was flushed into before is no longer written",
		"store", storeID, "ledger", l.ID(), "dir", dir, "previous_ledger", owner)
	return nil
}

// flusher flushes the store into its ledger, periodically inside serve
// and when an operator asks (POST /v1/flush), one flush at a time.
type flusher struct {
	store counter.Store
	l     *ledger.Ledger
	log   *slog.Logger
	every time.Duration
	next  atomic.Int64 // Unix nanoseconds of the next periodic flush
	mu    sync.Mutex   // held by a flush
	quit  chan struct{}
	done  chan struct{}
	m     *flushMetrics
	// events is given the ledger at start and after every flush that
	// succeeded, to emit the webhook events it states. default: nil
	events func(ledger.Report)
}

func startFlusher(ctx context.Context, store counter.Store, sp *spool.Spool, dir string, key []byte, reclaim bool, every time.Duration,
	events func(ledger.Report), log *slog.Logger) (*flusher, error) {
	l, err := openLedger(ctx, store, dir, key, reclaim, log)
	if err != nil {
		return nil, err
	}
	f := &flusher{store: settling{store, sp}, l: l, log: log, every: every, quit: make(chan struct{}), done: make(chan struct{}),
		m: newFlushMetrics(log), events: events}
	f.m.standing(l.Snapshot())
	if events != nil {
		events(l.Snapshot())
	}
	f.next.Store(time.Now().Add(every).UnixNano())
	go f.run()
	return f, nil
}

func (f *flusher) run() {
	defer close(f.done)
	tick := time.NewTicker(f.every)
	defer tick.Stop()
	for {
		select {
		case <-f.quit:
			return
		case now := <-tick.C:
			f.next.Store(now.Add(f.every).UnixNano())
		}
		if _, err := f.Flush(context.Background()); err != nil {
			f.log.Error("flush failed; will retry", "err", err, "next", f.NextFlush())
		}
	}
}

// Flush flushes now and logs what it wrote. A flush that a failed write
// of the ledger broke is tried again like any other: the ledger repairs
// itself first (see ledger.ErrBroken).
func (f *flusher) Flush(ctx context.Context) (ledger.FlushResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	res, err := ledger.Flush(ctx, f.store, f.l, start)
	f.m.flushed(start, res, err, f.l.Snapshot())
	for _, u := range res.Unsettled {
		f.log.Warn("final statement waits: visits appended before the campaign's end are not all decided yet; a later flush seals it",
			"campaign", u.Campaign, "err", u.Err)
	}
	for _, k := range res.Behind {
		f.log.Warn("the store's totals are below the ledger's (did Redis lose writes?); the ledger keeps its totals", "campaign", k.Campaign, "creator", k.Creator)
	}
	if err != nil {
		return res, err
	}
	if f.events != nil {
		f.events(f.l.Snapshot())
	}
	s := res.Summary(f.l.Snapshot())
	f.log.Info("flushed", "seq", s.Seq, "creators", s.Creators, "terms", s.Terms, "sealed", s.Sealed,
		"last_seq", s.LastSeq, "took", time.Since(start).Round(time.Microsecond))
	return res, nil
}

// settling is the store as the flusher sees it: a campaign settles once
// this node's spool holds no visit and the store's judges have decided
// its log (counter.Settler).
type settling struct {
	counter.Store
	spool *spool.Spool // nil without one
}

func (s settling) Settle(ctx context.Context, campaign string) error {
	if s.spool != nil {
		if n := s.spool.Len(); n > 0 {
			return fmt.Errorf("%d batches of visits wait in this node's spool", n)
		}
	}
	if st, ok := s.Store.(counter.Settler); ok {
		return st.Settle(ctx, campaign)
	}
	return nil
}

// Snapshot returns the ledger as it stands.
func (f *flusher) Snapshot() ledger.Report { return f.l.Snapshot() }

// NextFlush returns when the next periodic flush is due.
func (f *flusher) NextFlush() time.Time { return time.Unix(0, f.next.Load()).UTC() }

// LastFlush returns when the last flush that succeeded ended, or the zero
// time before the first (clickgate_ledger_last_flush_timestamp_seconds).
func (f *flusher) LastFlush() time.Time {
	if ns := f.m.lastFlush.Load(); ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return time.Time{}
}

// stop stops the loop, flushes one last time within ctx and closes the
// ledger.
func (f *flusher) stop(ctx context.Context) {
	close(f.quit)
	<-f.done
	if _, err := f.Flush(ctx); err != nil {
		f.log.Error("last flush failed; the next start flushes it", "err", err)
	}
	f.l.Close()
	f.m.unregister()
}

// flushCmd is `clickgate flush`: one flush into the ledger, now. When a
// running node holds the ledger (or --admin-url is given), that node
// flushes, through its admin API; otherwise this process opens the store
// and the ledger itself.
func flushCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flush", stderr)
	sf := addStoreFlags(fs)
	lf := addLedgerFlags(fs)
	reclaim := fs.Bool("reclaim-ledger", false, "take the store over from the ledger it was flushed into before (when that ledger is lost)")
	adminURL := fs.String("admin-url", "", "flush through the admin API of the node that holds the ledger (default, when a node holds it: http://127.0.0.1:8081)")
	adminToken := fs.String("admin-token", "", "bearer token of that admin API (default: the one in DATA/admin-token)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	dir := lf.path(*sf.data)
	if *adminURL == "" && ledgerInUse(dir) {
		*adminURL = "http://127.0.0.1:8081"
	}
	if *adminURL != "" {
		c, err := newAdminClient(*adminURL, *adminToken, *sf.data)
		if err != nil {
			return err
		}
		return printAnswer(stdout)(c.Flush(ctx))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	slog.SetDefault(log)
	store, _, secret, err := sf.open(ctx, log)
	if err != nil {
		return err
	}
	defer store.Close()
	key, err := lf.key(secret)
	if err != nil {
		return err
	}
	l, err := openLedger(ctx, store, dir, key, *reclaim, log)
	if err != nil {
		return err
	}
	defer l.Close()
	// A stopped node's spool may hold visits of before a campaign's end:
	// its statement waits for them (see settling). A running node's, as
	// another node's, is its own to replay.
	var sp *spool.Spool
	if dir := filepath.Join(*sf.data, "spool"); isDir(dir) {
		switch sp, err = spool.Open(spool.Options{Dir: dir, Logger: log}); {
		case errors.Is(err, spool.ErrInUse):
			sp = nil
		case err != nil:
			return fmt.Errorf("cannot open the spool to see whether visits wait in it: %w", err)
		default:
			defer sp.Close()
		}
	}
	f := &flusher{store: settling{store, sp}, l: l, log: log, m: newFlushMetrics(log)}
	defer f.m.unregister()
	res, err := f.Flush(ctx)
	if err != nil {
		return err
	}
	return writeJSONOut(stdout, res.Summary(l.Snapshot()))
}

// ledgerInUse reports whether a running process holds the ledger in dir.
func ledgerInUse(dir string) bool {
	f, err := os.Open(filepath.Join(dir, ledger.FileName))
	if err != nil {
		return false
	}
	defer f.Close()
	err = disk.Lock(f)
	return errors.Is(err, disk.ErrWouldBlock)
}

// ledgerCmd is `clickgate ledger verify`.
func ledgerCmd(args []string, stdout, stderr io.Writer) error {
	_, args, err := subcommand("ledger", args, stdout)
	if err != nil {
		return err
	}
	fs := newFlagSet("ledger verify", stderr)
	lf := addLedgerFlags(fs)
	data := fs.String("data", "./data", "data directory")
	secret := fs.String("click-secret", "", "click secret the ledger key is derived from (default: the one in DATA/click-secret; not needed with --ledger-key-file)")
	head := fs.String("head", "", "a head the ledger had (from a statement or an earlier verify): fail unless the ledger still extends it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	rep, err := readLedger(lf, *secret, *data)
	if err != nil {
		return err
	}
	if *head != "" && !rep.Extends(*head) {
		return fmt.Errorf("ledger does not verify: it does not extend head %s (records were removed, or the head is of another ledger); its head is %s at seq %d",
			*head, rep.Head, rep.LastSeq)
	}
	type total struct {
		Campaign  string `json:"campaign"`
		Creator   string `json:"creator"`
		Qualified int64  `json:"qualified"`
		Signups   int64  `json:"signups"`
	}
	totals := []total{}
	for _, e := range rep.Totals {
		totals = append(totals, total{e.Campaign, e.Creator, e.Qualified, e.Signups})
	}
	slices.SortFunc(totals, func(a, b total) int {
		return cmp.Or(cmp.Compare(a.Campaign, b.Campaign), cmp.Compare(a.Creator, b.Creator))
	})
	sealed := append([]string{}, slices.Sorted(maps.Keys(rep.Statements))...)
	return writeJSONOut(stdout, map[string]any{"ok": true, "ledger": rep.Ledger, "store": rep.Store, "records": rep.Records,
		"last_seq": rep.LastSeq, "head": rep.Head, "sealed": sealed, "totals": totals})
}

// readLedger verifies the ledger that lf locates, with its key.
func readLedger(lf ledgerFlags, secret, dataDir string) (ledger.Report, error) {
	key, err := lf.readKey(secret, dataDir)
	if err != nil {
		return ledger.Report{}, err
	}
	rep, err := ledger.Verify(lf.path(dataDir), key)
	if err != nil {
		return rep, fmt.Errorf("ledger does not verify: %w", err)
	}
	return rep, nil
}

func writeJSONOut(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// payoutsCmd is `clickgate payouts`: a campaign's final statement, as
// sealed in the verified ledger.
func payoutsCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("payouts", stderr)
	campaign := fs.String("campaign", "", "campaign (required)")
	lf := addLedgerFlags(fs)
	data := fs.String("data", "./data", "data directory")
	secret := fs.String("click-secret", "", "click secret the ledger key is derived from (default: the one in DATA/click-secret; not needed with --ledger-key-file)")
	format := fs.String("format", "csv", "csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *campaign == "" {
		return usageError("payouts: --campaign is required")
	}
	if *format != "csv" && *format != "json" {
		return usageError("payouts: --format %q: want csv or json", *format)
	}
	rep, err := readLedger(lf, *secret, *data)
	if err != nil {
		return fmt.Errorf("%w; no payout", err)
	}
	st, err := rep.Statement(*campaign)
	if err != nil {
		return err
	}
	if *format == "json" {
		return payout.WriteJSON(stdout, st)
	}
	return payout.WriteCSV(stdout, st.Rows)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/payout"
)

func ledgerPath(dir, dataDir string) string {
	if dir != "" {
		return dir
	}
	return filepath.Join(dataDir, "ledger")
}

var errOtherLedger = errors.New("the store is flushed into another ledger")

// openLedger opens the ledger in dir, repairing a torn tail, and claims the
// store for it: a store is flushed into one ledger only, or creators would
// be paid twice.
func openLedger(ctx context.Context, store counter.Store, dir string, log *slog.Logger) (*ledger.Ledger, error) {
	l, err := ledger.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot open ledger: %w", err)
	}
	if n := l.Recovered(); n > 0 {
		log.Warn("ledger had a torn tail after a crash; truncated it back to the last whole record", "dir", dir, "bytes", n)
	}
	id, err := loadOrCreateSecret(dir, "id", log)
	if err == nil {
		var owner string
		owner, err = store.Claim(ctx, "ledger", string(id))
		if err == nil && owner != string(id) {
			err = fmt.Errorf("%w (id %s), not %q (id %s)", errOtherLedger, owner, dir, id)
		}
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// flushOnce flushes and logs what it noticed.
func flushOnce(ctx context.Context, store counter.Store, l *ledger.Ledger, log *slog.Logger) (ledger.FlushResult, error) {
	res, err := ledger.Flush(ctx, store, l, time.Now())
	for _, k := range res.Behind {
		log.Warn("the store is behind the ledger (lost writes?); the ledger keeps its totals", "campaign", k.Campaign, "creator", k.Creator)
	}
	return res, err
}

// flusher flushes periodically inside serve.
type flusher struct {
	store counter.Store
	l     *ledger.Ledger
	log   *slog.Logger
	quit  chan struct{}
	done  chan struct{}
	fail  chan error // receives ErrBroken once
}

// ledger is the open ledger, or nil when this node does not flush.
func (f *flusher) ledger() *ledger.Ledger {
	if f == nil {
		return nil
	}
	return f.l
}

// broken delivers the error that broke the ledger; nil never delivers.
func (f *flusher) broken() <-chan error {
	if f == nil {
		return nil
	}
	return f.fail
}

func startFlusher(ctx context.Context, store counter.Store, dir string, every time.Duration, log *slog.Logger) (*flusher, error) {
	l, err := openLedger(ctx, store, dir, log)
	if err != nil {
		return nil, err
	}
	f := &flusher{store: store, l: l, log: log, quit: make(chan struct{}), done: make(chan struct{}), fail: make(chan error, 1)}
	go f.run(every)
	return f, nil
}

func (f *flusher) run(every time.Duration) {
	defer close(f.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-f.quit:
			return
		case <-tick.C:
		}
		if err := f.flush(context.Background()); errors.Is(err, ledger.ErrBroken) {
			// Never retried on the same file: the process must restart
			// and recover the ledger from disk.
			f.fail <- err
			return
		} else if err != nil {
			f.log.Error("flush failed; will retry", "err", err)
		}
	}
}

func (f *flusher) flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := flushOnce(ctx, f.store, f.l, f.log)
	return err
}

// stop stops the loop, flushes one last time within ctx and closes the
// ledger.
func (f *flusher) stop(ctx context.Context) {
	close(f.quit)
	<-f.done
	if err := f.flush(ctx); err != nil {
		f.log.Error("last flush failed; the next start flushes it", "err", err)
	}
	f.l.Close()
}

// flushCmd is `clickgate flush`: one flush of a Redis store into a ledger.
// (The embedded store belongs to its serve process, which flushes itself.)
func flushCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flush", stderr)
	sf := addStoreFlags(fs)
	dir := fs.String("ledger", "", "ledger directory (default DATA/ledger)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	store, _, _, err := sf.open(ctx, log)
	if err != nil {
		return err
	}
	defer store.Close()
	l, err := openLedger(ctx, store, ledgerPath(*dir, *sf.data), log)
	if err != nil {
		return err
	}
	defer l.Close()
	res, err := flushOnce(ctx, store, l, log)
	if err != nil {
		return err
	}
	return writeJSONOut(stdout, map[string]any{"seq": res.Batch.Seq, "entries": len(res.Batch.Entries), "last_seq": l.LastSeq(), "behind": res.Behind})
}

// ledgerCmd is `clickgate ledger verify`.
func ledgerCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageError("ledger: want the subcommand verify")
	}
	fs := newFlagSet("ledger verify", stderr)
	dir := fs.String("ledger", "", "ledger directory (default DATA/ledger)")
	data := fs.String("data", "./data", "data directory")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	rep, err := ledger.Verify(ledgerPath(*dir, *data))
	if err != nil {
		return fmt.Errorf("ledger does not verify: %w", err)
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
	return writeJSONOut(stdout, map[string]any{"ok": true, "records": rep.Records, "last_seq": rep.LastSeq, "head": rep.Head, "totals": totals})
}

func writeJSONOut(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// payoutsCmd is `clickgate payouts`: a campaign's statement, computed from
// the verified ledger alone.
func payoutsCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("payouts", stderr)
	campaign := fs.String("campaign", "", "campaign (required)")
	dir := fs.String("ledger", "", "ledger directory (default DATA/ledger)")
	data := fs.String("data", "./data", "data directory")
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
	rep, err := ledger.Verify(ledgerPath(*dir, *data))
	if err != nil {
		return fmt.Errorf("ledger does not verify; no payout: %w", err)
	}
	st, err := payout.FromLedger(rep, *campaign)
	if err != nil {
		return err
	}
	if *format == "json" {
		return payout.WriteJSON(stdout, st)
	}
	return payout.WriteCSV(stdout, st.Rows)
}

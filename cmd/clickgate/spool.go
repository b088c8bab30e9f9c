package main

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/clickgate/clickgate/counter/spool"
)

// spoolFlags are serve's flags of the spool and of shutdown: the two halves
// of not losing a visit when the store or the process goes away.
type spoolFlags struct {
	dir             *string
	maxBytes        *int64
	shutdownTimeout *time.Duration
}

func addSpoolFlags(fs *flag.FlagSet) *spoolFlags {
	return &spoolFlags{
		dir:             fs.String("spool", "", "directory of the spool that keeps the visits the store did not commit within --commit-timeout, until they are replayed into it (default DATA/spool)"),
		maxBytes:        fs.Int64("spool-max-bytes", spool.DefaultMaxBytes, "bound of the spool on disk; visits that do not fit are lost, counted in clickgate_visits_lost_total and logged"),
		shutdownTimeout: fs.Duration("shutdown-timeout", 15*time.Second, "how long SIGTERM may take to finish the requests in flight, commit what is queued and replay the spool before exiting"),
	}
}

// open opens the spool, truncating a torn tail left by a crash.
func (f *spoolFlags) open(dataDir string, log *slog.Logger) (*spool.Spool, error) {
	if *f.maxBytes <= 0 {
		return nil, usageError("--spool-max-bytes must be positive")
	}
	if *f.shutdownTimeout <= 0 {
		return nil, usageError("--shutdown-timeout must be positive")
	}
	dir := *f.dir
	if dir == "" {
		dir = filepath.Join(dataDir, "spool")
	}
	sp, err := spool.Open(spool.Options{Dir: dir, MaxBytes: *f.maxBytes, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("cannot open spool: %w", err)
	}
	if n := sp.Recovered(); n > 0 {
		log.Warn("spool had a torn tail after a crash; truncated it back to the last whole record", "dir", dir, "bytes", n)
	}
	if n := sp.Len(); n > 0 {
		log.Info("spool holds batches from a previous run; replaying them", "dir", dir, "batches", n)
	}
	return sp, nil
}

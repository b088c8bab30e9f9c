//go:build unix

package main

import (
	"flag"
	"log/slog"
	"syscall"
)

// fdMargin is the file descriptors a node needs besides its public
// connections: the admin listener and its clients, the store (bbolt, the
// visit log's segments, a Redis pool), the spool, the ledger, checkpoint
// writes.
const fdMargin = 256

// fitFDs raises RLIMIT_NOFILE's soft limit to its hard limit, so that
// --max-conns connections fit with fdMargin to spare. When they do not,
// an explicit --max-conns is refused with what to change, and the default
// is lowered to fit, with a warning: a node that runs out of descriptors
// cannot even open its store.
func (f *edgeFlags) fitFDs(fs *flag.FlagSet, log *slog.Logger) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the file descriptor limit; --max-conns is not checked against it", "err", err)
		return nil
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the file descriptor limit to its hard limit", "soft", lim.Cur, "hard", lim.Max, "err", err)
		} else {
			lim = raised
		}
	}
	need := uint64(*f.maxConns) + fdMargin
	if lim.Cur >= need {
		return nil
	}
	explicit := false
	fs.Visit(func(fl *flag.Flag) { explicit = explicit || fl.Name == "max-conns" })
	if explicit || lim.Cur <= 2*fdMargin {
		return usageError("--max-conns %d needs %d file descriptors, and this process may open %d (RLIMIT_NOFILE, hard limit %d): raise the limit (ulimit -n, LimitNOFILE=, docker --ulimit nofile=) or lower --max-conns to %d",
			*f.maxConns, need, lim.Cur, lim.Max, max(int64(lim.Cur)-fdMargin, 0))
	}
	fit := int(lim.Cur - fdMargin)
	log.Warn("lowered --max-conns to fit the file descriptor limit", "max_conns", fit, "default", *f.maxConns, "rlimit_nofile", lim.Cur)
	*f.maxConns = fit
	return nil
}

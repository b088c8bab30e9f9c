package redirect

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// KeepAccepting wraps ln so that running out of file descriptors (EMFILE,
// ENFILE) or a connection aborted before it was accepted is waited out,
// with backoff, and never returned: fasthttp stops serving on an Accept
// error it does not take for temporary, and a connection flood would take
// the edge down with it. Other errors, a closed listener's included, are
// returned as they are.
func KeepAccepting(ln net.Listener, log *slog.Logger) net.Listener {
	return &keepAccepting{Listener: ln, log: log}
}

// Backoff of KeepAccepting: from min, doubling up to max while Accept
// keeps failing. Descriptors come back as connections close (the read and
// idle timeouts bound how long that takes).
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = 500 * time.Millisecond
)

var acceptOutOfFDs = metrics.NewCounter(`clickgate_accept_errors_total{reason="out_of_fds"}`)

type keepAccepting struct {
	net.Listener
	log    *slog.Logger
	logged atomic.Int64 // Unix nanoseconds of the last log line
}

func (l *keepAccepting) Accept() (net.Conn, error) {
	wait := acceptBackoffMin
	for {
		c, err := l.Listener.Accept()
		if err == nil || !waitable(err) {
			return c, err
		}
		acceptOutOfFDs.Inc()
		if now := time.Now().UnixNano(); now-l.logged.Load() > int64(time.Second) {
			l.logged.Store(now)
			l.log.Error("cannot accept connections: out of file descriptors; waiting for some to close",
				"err", err, "retry_in", wait, "total", acceptOutOfFDs.Get())
		}
		time.Sleep(wait)
		wait = min(2*wait, acceptBackoffMax)
	}
}

func waitable(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED)
}

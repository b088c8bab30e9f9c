package redirect

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// LimitConns returns a listener that keeps at most max connections open at
// once per client network, and answers the ones over it with a 429 and
// closes them. Connections from trusted proxies are not limited.
//
// It stands in for fasthttp's Server.MaxConnsPerIP, which cannot do either
// of the two things the edge needs:
//
//   - It counts per address. An IPv6 client holds a whole /64, so per
//     address it is not limited at all; here networks are NetworkKey's, an
//     IPv4 address or an IPv6 /64, as for visitor keys and velocity.
//   - It counts the load balancer too. Behind --trusted-proxies every
//     connection comes from a few proxy addresses, so any per-address
//     limit would cap the whole service; the balancer is the place to
//     limit clients then.
//
// A carrier NAT puts many people behind one IPv4 address, so max should be
// generous: a click holds its connection for a round trip and then, idle,
// for the server's IdleTimeout.
func LimitConns(ln net.Listener, max int, trusted *TrustedProxies) net.Listener {
	if max <= 0 {
		panic("BUG: LimitConns with a non-positive max")
	}
	return &connLimiter{Listener: ln, max: max, trusted: trusted, open: make(map[uint64]int)}
}

var refusedConnsPerIP = metrics.NewCounter(`clickgate_public_refused_total{reason="conns_per_ip"}`)

type connLimiter struct {
	net.Listener
	max     int
	trusted *TrustedProxies

	mu   sync.Mutex
	open map[uint64]int // connections open per network; no entry for none
}

// tooManyConns is written to a refused connection. It is sent before the
// request is read, so the connection is closed after it.
var tooManyConns = func() []byte {
	const body = "too many connections open\n"
	return []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body)
}()

// Accept returns the next connection whose network is under the limit.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := peerAddr(c)
		if l.trusted.ContainsAddr(a) {
			return c, nil
		}
		k := NetworkKey(a)
		l.mu.Lock()
		n := l.open[k]
		if n < l.max {
			l.open[k] = n + 1
		}
		l.mu.Unlock()
		if n < l.max {
			return &limitedConn{Conn: c, l: l, key: k}, nil
		}
		refusedConnsPerIP.Inc()
		// A new connection's send buffer is empty: the write does not
		// block the accept loop; the deadline is for the impossible case.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(tooManyConns)
		c.Close()
	}
}

func (l *connLimiter) release(k uint64) {
	l.mu.Lock()
	if n := l.open[k] - 1; n > 0 {
		l.open[k] = n
	} else {
		delete(l.open, k)
	}
	l.mu.Unlock()
}

// peerAddr returns the connection's remote IP address, unmapped, or
// 0.0.0.0 when it has none.
func peerAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.IPv4Unspecified()
}

// limitedConn gives its network's place back when it is closed, once:
// fasthttp may close a connection both from its serving goroutine and
// from Shutdown.
type limitedConn struct {
	net.Conn
	l      *connLimiter
	key    uint64
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.key)
	}
	return c.Conn.Close()
}

package redirect

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// LimitConns returns a listener that keeps at most max connections open at
// once per client network, and at most blockMax per block of networks (an
// IPv4 /24, an IPv6 /48; see BlockKey), and answers the ones over either
// with a 429 and closes them. Connections from trusted proxies are not
// limited. A block's budget is what keeps one host's addresses, or one
// IPv6 /48's 65,536 networks, from taking every connection the server
// has: set it below the server's own limit, leaving a reserve that no
// block can take.
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
func LimitConns(ln net.Listener, max, blockMax int, trusted *TrustedProxies) net.Listener {
	if max <= 0 || blockMax <= 0 {
		panic("BUG: LimitConns with a non-positive max")
	}
	return &connLimiter{Listener: ln, max: max, blockMax: blockMax, trusted: trusted,
		open: make(map[uint64]int), blocks: make(map[uint64]int)}
}

var (
	refusedConnsPerIP    = metrics.NewCounter(`clickgate_public_refused_total{reason="conns_per_ip"}`)
	refusedConnsPerBlock = metrics.NewCounter(`clickgate_public_refused_total{reason="conns_per_block"}`)
	refusedMaxConns      = metrics.NewCounter(`clickgate_public_refused_total{reason="max_conns"}`)
)

// CountMaxConns brings the count of connections refused past s's
// Concurrency (--max-conns) up to date. fasthttp answers those itself
// (503) and counts them in s, a uint32 that wraps; call it before the
// metrics are read. The counter only grows, however often and however
// concurrently it is called.
func CountMaxConns(s *fasthttp.Server) {
	maxConnsSeen.Lock()
	defer maxConnsSeen.Unlock()
	n := s.GetRejectedConnectionsCount()
	refusedMaxConns.Add(int(n - maxConnsSeen.n))
	maxConnsSeen.n = n
}

// maxConnsSeen is fasthttp's count as of CountMaxConns's last call.
var maxConnsSeen struct {
	sync.Mutex
	n uint32
}

type connLimiter struct {
	net.Listener
	max, blockMax int
	trusted       *TrustedProxies

	mu     sync.Mutex
	open   map[uint64]int // connections open per network; no entry for none
	blocks map[uint64]int // and per block
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
		k, b := NetworkKey(a), BlockKey(a)
		l.mu.Lock()
		n, nb := l.open[k], l.blocks[b]
		ok := n < l.max && nb < l.blockMax
		if ok {
			l.open[k], l.blocks[b] = n+1, nb+1
		}
		l.mu.Unlock()
		if ok {
			return &limitedConn{Conn: c, l: l, key: k, block: b}, nil
		}
		if n >= l.max {
			refusedConnsPerIP.Inc()
		} else {
			refusedConnsPerBlock.Inc()
		}
		// A new connection's send buffer is empty: the write does not
		// block the accept loop; the deadline is for the impossible case.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(tooManyConns)
		c.Close()
	}
}

func (l *connLimiter) release(k, b uint64) {
	l.mu.Lock()
	decrement(l.open, k)
	decrement(l.blocks, b)
	l.mu.Unlock()
}

func decrement(m map[uint64]int, k uint64) {
	if n := m[k] - 1; n > 0 {
		m[k] = n
	} else {
		delete(m, k)
	}
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
	l          *connLimiter
	key, block uint64
	closed     atomic.Bool
}

func (c *limitedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.key, c.block)
	}
	return c.Conn.Close()
}

package redirect

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// limitHarness accepts connections from a limited listener on loopback.
type limitHarness struct {
	ln       net.Listener
	accepted chan net.Conn
}

func newLimitHarness(t *testing.T, max, blockMax int, trusted string) *limitHarness {
	t.Helper()
	tp, err := ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &limitHarness{ln: LimitConns(raw, max, blockMax, tp), accepted: make(chan net.Conn, 64)}
	go func() {
		for {
			c, err := h.ln.Accept()
			if err != nil {
				close(h.accepted)
				return
			}
			h.accepted <- c
		}
	}()
	t.Cleanup(func() {
		h.ln.Close()
		for c := range h.accepted {
			c.Close()
		}
	})
	return h
}

// dial connects from ip and reports whether the listener accepted the
// connection: the accepted one arrives on h.accepted, the refused one
// reads a 429 and EOF.
func (h *limitHarness) dial(t *testing.T, ip string) (client, server net.Conn) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", h.ln.Addr().String())
	if err != nil {
		t.Fatalf("cannot dial from %s: %s", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case s := <-h.accepted:
		return c, s
	case <-time.After(100 * time.Millisecond):
	}
	// Not accepted (yet): a refused connection is answered at once.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("connection from %s neither accepted nor refused: %s", ip, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || !resp.Close || string(body) != "too many connections open\n" {
		t.Fatalf("unexpected refusal from %s; got %d %q %q", ip, resp.StatusCode, resp.Header, body)
	}
	return c, nil
}

func TestLimitConns(t *testing.T) {
	h := newLimitHarness(t, 2, 100, "127.0.70.9")
	var open []net.Conn
	for i := range 2 {
		if _, s := h.dial(t, "127.0.70.1"); s == nil {
			t.Fatalf("unexpected refusal of connection %d from 127.0.70.1; want 2 accepted", i+1)
		} else {
			open = append(open, s)
		}
	}
	if _, s := h.dial(t, "127.0.70.1"); s != nil {
		t.Fatalf("unexpected acceptance of a third connection from 127.0.70.1")
	}
	if _, s := h.dial(t, "127.0.70.2"); s == nil {
		t.Fatalf("unexpected refusal of another network")
	}
	// A trusted proxy carries many clients: not limited.
	for i := range 5 {
		if _, s := h.dial(t, "127.0.70.9"); s == nil {
			t.Fatalf("unexpected refusal of connection %d from a trusted proxy", i+1)
		}
	}
	// Closing gives the place back, once however often it is closed.
	open[0].Close()
	open[0].Close()
	if _, s := h.dial(t, "127.0.70.1"); s == nil {
		t.Fatalf("unexpected refusal after a connection closed")
	}
	if _, s := h.dial(t, "127.0.70.1"); s != nil {
		t.Fatalf("unexpected acceptance over the limit after a double close")
	}
}

// TestLimitConnsPerBlock: the networks of one /24 share its budget; other
// blocks keep theirs.
func TestLimitConnsPerBlock(t *testing.T) {
	h := newLimitHarness(t, 2, 3, "")
	var open []net.Conn
	for _, ip := range []string{"127.0.71.1", "127.0.71.1", "127.0.71.2"} {
		_, s := h.dial(t, ip)
		if s == nil {
			t.Fatalf("unexpected refusal of %s within the block's budget", ip)
		}
		open = append(open, s)
	}
	if _, s := h.dial(t, "127.0.71.3"); s != nil {
		t.Fatalf("unexpected acceptance of a fourth connection from 127.0.71.0/24")
	}
	if _, s := h.dial(t, "127.0.72.1"); s == nil {
		t.Fatalf("unexpected refusal of another /24")
	}
	open[0].Close()
	if _, s := h.dial(t, "127.0.71.3"); s == nil {
		t.Fatalf("unexpected refusal after a connection of the block closed")
	}
}

func TestBlockKey(t *testing.T) {
	f := func(a, b string, same bool) {
		t.Helper()
		if got := BlockKey(netip.MustParseAddr(a)) == BlockKey(netip.MustParseAddr(b)); got != same {
			t.Fatalf("unexpected BlockKey equality of %s and %s; got %v; want %v", a, b, got, same)
		}
	}
	f("192.0.2.1", "192.0.2.254", true)
	f("192.0.2.1", "192.0.3.1", false)
	f("::ffff:192.0.2.1", "192.0.2.7", true)
	f("2001:db8:1::1", "2001:db8:1:ffff::1", true)
	f("2001:db8:1::1", "2001:db8:2::1", false)
	f("::ffff:0.0.0.0", "0.0.0.0", true)
}

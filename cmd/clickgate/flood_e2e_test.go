//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The edge under a connection flood: the real binary under a low file
// limit, many loopback addresses each holding as many connections as
// --max-conns-per-ip lets it, more in all than the server has descriptors.
// Linux only: every address of 127.0.0.0/8 is loopback there, and
// prlimit(2) changes the limit of a running process.

const (
	// floodNoFile is the server's RLIMIT_NOFILE, soft and hard.
	floodNoFile = 1024
	// floodMaxConns is --max-conns. One /24 may hold three quarters of
	// it, floodBlock; the rest is the reserve of every other block.
	floodMaxConns = 512
	floodBlock    = floodMaxConns * 3 / 4
)

// startFloodTarget starts clickgate under ulimit -n floodNoFile with
// --max-conns floodMaxConns and the default --max-conns-per-ip, and returns
// it and the code of alice's link. The timeouts outlast the test: a held
// connection stays held until the test lets it go.
func startFloodTarget(t *testing.T) (*proc, string) {
	t.Helper()
	data := t.TempDir()
	p := startServeCmd(t, data, exec.Command("sh", "-c", "ulimit -n "+strconv.Itoa(floodNoFile)+` && exec "$0" "$@"`, binary,
		"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data,
		"--max-conns", strconv.Itoa(floodMaxConns), "--read-timeout", "1m", "--idle-timeout", "1m"))
	var lim syscall.Rlimit
	if err := prlimitNoFile(p.cmd.Process.Pid, nil, &lim); err != nil {
		t.Fatalf("cannot read the server's file limit: %s", err)
	}
	if lim.Cur != floodNoFile || lim.Max != floodNoFile {
		t.Fatalf("unexpected file limit of the server; got %d:%d; want %d:%d", lim.Cur, lim.Max, floodNoFile, floodNoFile)
	}
	return p, p.setup(t)
}

// prlimitNoFile sets, when set is not nil, and reads, when old is not nil,
// RLIMIT_NOFILE of process pid.
func prlimitNoFile(pid int, set, old *syscall.Rlimit) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE,
		uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(old)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// flood is connections held open on the public listener, each after one
// answered request, as a botnet holding the server's slots does.
type flood struct {
	mu      sync.Mutex
	held    []net.Conn
	perIP   map[string]int // held connections per address
	tried   int
	refused map[int]int // statuses of the connections not held; 0 for closed without an answer
	errs    []error     // connections that could not be opened or got no answer
}

// floodFrom opens n connections from each address of ips, one after
// another per address and all addresses at once, each with a request for
// /healthz. A connection answered 200 is held; any other is closed. It
// returns when every connection was tried; the held ones are closed at
// cleanup if not before.
func floodFrom(t *testing.T, p *proc, ips []string, n int) *flood {
	t.Helper()
	f := &flood{perIP: map[string]int{}, refused: map[int]int{}}
	t.Cleanup(f.release)
	var wg sync.WaitGroup
	for _, ip := range ips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				status, c, err := floodConn(ip, p.public)
				f.mu.Lock()
				f.tried++
				switch {
				case err != nil:
					f.errs = append(f.errs, err)
				case c != nil:
					f.held = append(f.held, c)
					f.perIP[ip]++
				default:
					f.refused[status]++
				}
				f.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return f
}

// floodConn opens a connection from ip and asks for /healthz on it. It
// returns the connection when the answer is 200, and else the status, 0
// when the server closed it without an answer.
func floodConn(ip, addr string) (int, net.Conn, error) {
	c, err := dialFrom(ip, addr)
	if err != nil {
		return 0, nil, err
	}
	// Bounds a server that answers nothing; one that works answers at once.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	// A refused connection is answered and closed as it is accepted: the
	// write may meet the reset, and the answer is read all the same.
	io.WriteString(c, edgeKeepAlive("GET /healthz HTTP/1.1"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	switch {
	case err == nil && resp.StatusCode == 200:
		c.SetDeadline(time.Time{})
		return 200, c, nil
	case err == nil:
		c.Close()
		return resp.StatusCode, nil, nil
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		c.Close()
		return 0, nil, nil
	}
	c.Close()
	return 0, nil, fmt.Errorf("no answer to a connection from %s: %w", ip, err)
}

// release closes the held connections. Safe to call twice.
func (f *flood) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.held {
		c.Close()
	}
	f.held = nil
}

// check fails unless every connection was opened and answered, the held
// ones number held and none above --max-conns-per-ip per address, and the
// others were refused with 429 (or closed without an answer, after it).
func (f *flood) check(t *testing.T, tried, held int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, err := range f.errs {
		if i == 5 {
			t.Fatalf("and %d more errors", len(f.errs)-i)
		}
		t.Error(err)
	}
	if f.tried != tried || len(f.held) != held {
		t.Fatalf("unexpected flood; got %d connections held of %d; want %d of %d (refused: %v)", len(f.held), f.tried, held, tried, f.refused)
	}
	for ip, n := range f.perIP {
		if n > defaultMaxConnsPerIP {
			t.Fatalf("unexpected connections held by %s; got %d; want at most --max-conns-per-ip %d", ip, n, defaultMaxConnsPerIP)
		}
	}
	for status := range f.refused {
		if status != 429 && status != 0 {
			t.Fatalf("unexpected answers to the flood's connections; got %v; want 429 or none", f.refused)
		}
	}
}

// person is someone clicking from ip, on a new connection each click: a
// click on a kept-alive connection would prove nothing of the listener.
func person(ip string) *clicker {
	c := newClicker(ip)
	c.client.Transport.(*http.Transport).DisableKeepAlives = true
	return c
}

// clickWhile clicks from ip until stop is closed or a click is not
// redirected, and then sends the tally.
func clickWhile(p *proc, code, ip string, stop <-chan struct{}) <-chan clickTally {
	out := make(chan clickTally, 1)
	go func() {
		var r clickTally
		c := person(ip)
		for {
			select {
			case <-stop:
				out <- r
				return
			default:
			}
			if err := c.click(p, code); err != nil {
				r.err = err
				out <- r
				return
			}
			r.clicks++
		}
	}()
	return out
}

type clickTally struct {
	clicks int
	err    error
}

// waitRedirected clicks from ip until the click is redirected: a released
// connection gives its place back once the server has read its close.
func waitRedirected(t *testing.T, p *proc, code, ip string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for err := person(ip).click(p, code); err != nil; err = person(ip).click(p, code) {
		if time.Now().After(deadline) {
			t.Fatalf("a click from %s after the flood was released: %s", ip, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mustRun fails if clickgate has exited.
func mustRun(t *testing.T, p *proc) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("clickgate exited under the flood:\n%s", p.logs())
	default:
	}
}

// refusedConns is the connections refused per network and per block.
func refusedConns(m map[string]float64) float64 {
	return m[`clickgate_public_refused_total{reason="conns_per_ip"}`] + m[`clickgate_public_refused_total{reason="conns_per_block"}`]
}

// addrs returns n addresses from first on, in one /24.
func addrs(prefix string, first, n int) []string {
	ips := make([]string, n)
	for i := range ips {
		ips[i] = prefix + strconv.Itoa(first+i)
	}
	return ips
}

// TestConnectionFlood: 80 addresses of one /24 each open 256 connections
// (--max-conns-per-ip), 20,480 against a server with 1,024 descriptors
// and --max-conns 512. The /24 holds its budget, three quarters; people
// from other networks are redirected all the while from the reserve; after
// the flood everything works again. Then the same from 250 addresses of
// one /24 that each stay under --max-conns-per-ip, and a server that runs
// out of descriptors altogether.
func TestConnectionFlood(t *testing.T) {
	t.Run("80 addresses", func(t *testing.T) {
		p, code := startFloodTarget(t)
		before := p.metrics(t)
		stop := make(chan struct{})
		during := clickWhile(p, code, "127.1.0.1", stop)
		f := floodFrom(t, p, addrs("127.0.0.", 2, 80), defaultMaxConnsPerIP)
		close(stop)
		tally := <-during
		if tally.err != nil {
			t.Fatalf("a person's click during the flood, after %d redirected: %s", tally.clicks, tally.err)
		}
		f.check(t, 80*defaultMaxConnsPerIP, floodBlock)
		mustRun(t, p)
		m := p.metrics(t)
		if got, want := refusedConns(m)-refusedConns(before), float64(80*defaultMaxConnsPerIP-floodBlock); got != want {
			t.Fatalf("unexpected connections refused per address and per block; got %v; want %v", got, want)
		}

		// With the flood held: another /24 is served from the reserve, and
		// an address of the flooded /24 is not, though it holds nothing.
		for _, ip := range []string{"127.1.0.1", "127.1.0.2", "127.0.1.1"} {
			if err := person(ip).click(p, code); err != nil {
				t.Fatalf("a person's click with the flood held: %s", err)
			}
		}
		if got := statusCodes(mustExchange(t, "127.0.0.200", p.public, edgeReq("GET /"+code+" HTTP/1.1")), false); !slices.Equal(got, []int{429}) {
			t.Fatalf("unexpected answer to a click from the flooded /24; got %v; want [429]", got)
		}
		if got := p.metrics(t)[`clickgate_public_refused_total{reason="conns_per_block"}`] - m[`clickgate_public_refused_total{reason="conns_per_block"}`]; got != 1 {
			t.Fatalf("unexpected connections refused per block; got %v; want 1", got)
		}

		f.release()
		waitRedirected(t, p, code, "127.0.0.2")
		waitRedirected(t, p, code, "127.0.0.200")
		mustRun(t, p)
		if got, want := edgeCounts(t, p)["clicks"], tally.clicks+5; got != want {
			t.Fatalf("unexpected clicks counted; got %d; want %d", got, want)
		}
		t.Logf("%d clicks from another /24 during the flood; refused per address %v, per block %v", tally.clicks,
			m[`clickgate_public_refused_total{reason="conns_per_ip"}`], m[`clickgate_public_refused_total{reason="conns_per_block"}`])
	})

	t.Run("one block, many addresses", func(t *testing.T) {
		p, code := startFloodTarget(t)
		before := p.metrics(t)
		f := floodFrom(t, p, addrs("127.0.7.", 1, 250), 4)
		f.check(t, 250*4, floodBlock)
		// No address came near --max-conns-per-ip: the block's budget
		// refused all the rest.
		m := p.metrics(t)
		if got, want := m[`clickgate_public_refused_total{reason="conns_per_block"}`]-before[`clickgate_public_refused_total{reason="conns_per_block"}`], float64(250*4-floodBlock); got != want {
			t.Fatalf("unexpected connections refused per block; got %v; want %v", got, want)
		}
		if got := m[`clickgate_public_refused_total{reason="conns_per_ip"}`] - before[`clickgate_public_refused_total{reason="conns_per_ip"}`]; got != 0 {
			t.Fatalf("unexpected connections refused per address; got %v; want 0", got)
		}
		// The next /24 up and another /16 are served.
		for _, ip := range []string{"127.0.8.1", "127.0.6.250", "127.1.7.1"} {
			if err := person(ip).click(p, code); err != nil {
				t.Fatalf("a person's click with the flood held: %s", err)
			}
		}
		f.release()
		waitRedirected(t, p, code, "127.0.7.1")
		mustRun(t, p)
		if got := edgeCounts(t, p)["clicks"]; got != 4 {
			t.Fatalf("unexpected clicks counted; got %d; want 4", got)
		}
	})

	// Descriptors can still run out, taken by something else than public
	// connections (ENFILE, say): here the server's soft limit is lowered
	// below what the flood makes it hold. The kernel completes the
	// connections of a person and of more flooders, accept fails with
	// EMFILE, and the listener waits until the flood lets go.
	t.Run("out of descriptors", func(t *testing.T) {
		p, code := startFloodTarget(t)
		f := floodFrom(t, p, addrs("127.0.9.", 2, 2), defaultMaxConnsPerIP)
		f.check(t, 2*defaultMaxConnsPerIP, floodBlock)
		pid := p.cmd.Process.Pid
		if err := prlimitNoFile(pid, &syscall.Rlimit{Cur: 64, Max: floodNoFile}, nil); err != nil {
			t.Fatalf("cannot lower the server's file limit: %s", err)
		}
		restore := func() { prlimitNoFile(pid, &syscall.Rlimit{Cur: floodNoFile, Max: floodNoFile}, nil) }
		t.Cleanup(restore)

		// A few more connections than there can be descriptors free below
		// the limit, so that one of them is sure to find none.
		more := make(chan *flood, 1)
		go func() { more <- floodFrom(t, p, addrs("127.1.9.", 1, 16), 1) }()
		clicked := make(chan error, 1)
		go func() { clicked <- person("127.1.8.1").click(p, code) }()
		// Only the log can tell: with no descriptor left, /metrics cannot
		// be read either.
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(p.logs(), "out of file descriptors") {
			mustRun(t, p)
			if time.Now().After(deadline) {
				t.Fatalf("the server did not run out of descriptors:\n%s", p.logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
		mustRun(t, p)
		// An operator reads /metrics meanwhile: the admin listener meets
		// EMFILE too, and waits as well. A few scrapes, in case one finds
		// a descriptor closed since.
		scraped := make(chan error, 4)
		for range cap(scraped) {
			go func() {
				req, _ := http.NewRequest("GET", "http://"+p.admin+"/metrics", nil)
				req.Header.Set("Authorization", "Bearer "+p.token)
				resp, err := (&http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("unexpected status of /metrics; got %d; want 200", resp.StatusCode)
					}
				}
				scraped <- err
			}()
		}
		for !strings.Contains(p.logs(), `err="accept tcp `+p.admin+`: accept4: too many open files"`) {
			mustRun(t, p)
			if time.Now().After(deadline) {
				t.Fatalf("the admin listener did not run out of descriptors:\n%s", p.logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
		mustRun(t, p)

		// The flood ends: descriptors come back, under the lowered limit.
		f.release()
		if err := <-clicked; err != nil {
			t.Fatalf("a person's click while the server was out of descriptors: %s", err)
		}
		for range cap(scraped) {
			if err := <-scraped; err != nil {
				t.Fatalf("/metrics while the server was out of descriptors: %s\n%s", err, p.logs())
			}
		}
		m := <-more
		m.check(t, 16, 16)
		m.release()
		mustRun(t, p)
		if got := p.metrics(t)[`clickgate_accept_errors_total{reason="out_of_fds"}`]; got < 1 {
			t.Fatalf("unexpected clickgate_accept_errors_total{reason=\"out_of_fds\"}; got %v; want at least 1", got)
		}
		restore()
		waitRedirected(t, p, code, "127.0.9.2")
		if got := edgeCounts(t, p)["clicks"]; got != 2 {
			t.Fatalf("unexpected clicks counted; got %d; want 2", got)
		}
	})
}

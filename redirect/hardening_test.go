package redirect

import (
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
)

// raw writes req, one or more requests as sent on the wire, from ip and
// returns everything the server answers until it closes the connection.
func (e *edge) raw(t testing.TB, ip, req string) string {
	t.Helper()
	conn, err := e.ln.DialWithLocalAddr(&net.TCPAddr{IP: net.ParseIP(ip), Port: 40000})
	if err != nil {
		t.Fatalf("cannot dial: %s", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("cannot write request: %s", err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("cannot read the answer to %q: %s", req, err)
	}
	return string(b)
}

var statusLineRE = regexp.MustCompile(`(?m)^HTTP/1\.1 (\d{3}) `)

// statuses returns the status codes of the responses in answer.
func statuses(answer string) string {
	var out []string
	for _, m := range statusLineRE.FindAllStringSubmatch(answer, -1) {
		out = append(out, m[1])
	}
	return strings.Join(out, " ")
}

func withHosts(t testing.TB, list string) func(*Options) {
	h, err := ParseHosts(list)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *Options) { o.Hosts = h }
}

func TestHostAllowlist(t *testing.T) {
	e := newEdge(t, withHosts(t, "go.example.com"))
	f := func(i int, req, want string) {
		t.Helper()
		before := e.store.calls.Load()
		got := statuses(e.raw(t, "127.0.80.1", req+"User-Agent: "+curlUA+"\r\nConnection: close\r\n\r\n"))
		if got != want {
			t.Fatalf("unexpected status for request %d %q; got %q; want %q", i, req, got, want)
		}
		if n := e.store.calls.Load() - before; want != "302" && n != 0 {
			t.Fatalf("unexpected store calls for refused request %q; got %d; want 0", req, n)
		}
	}
	const target = "GET /" + testCode + " HTTP/1.1\r\n"
	const abs = "GET http://%s/" + testCode + " HTTP/1.1\r\n"
	for i, c := range []struct{ req, want string }{
		{target + "Host: go.example.com\r\n", "302"},
		{target + "Host: GO.Example.COM:443\r\n", "302"},
		{target + "Host: go.example.com.\r\n", "302"},
		{target + "Host: evil.example\r\n", "421"},
		{target + "Host: go.example.com.evil.example\r\n", "421"},
		{target + "Host: evil@go.example.com\r\n", "421"},
		{target + "Host: 127.0.0.1\r\n", "421"},
		// The authority of an absolute-form target overrides Host.
		{strings.Replace(abs, "%s", "evil.example", 1) + "Host: go.example.com\r\n", "421"},
		{strings.Replace(abs, "%s", "go.example.com", 1) + "Host: evil.example\r\n", "302"},
		{strings.Replace(abs, "%s", "evil@go.example.com", 1) + "Host: go.example.com\r\n", "421"},
		{"GET HTTP://GO.EXAMPLE.COM:80/" + testCode + " HTTP/1.1\r\nHost: go.example.com\r\n", "302"},
		{"GET /" + testCode + " HTTP/1.0\r\n", "421"}, // no Host at all
		// Load balancers check health by address.
		{"GET /healthz HTTP/1.1\r\nHost: 10.1.2.3:8080\r\n", "200"},
	} {
		f(i, c.req, c.want)
	}
	if got := e.totals(t); got.Clicks() != 5 || got[counter.Bot] != 5 {
		t.Fatalf("unexpected counts; got %+v; want bots=5 only", got)
	}
}

func TestBodiesRefused(t *testing.T) {
	e := newEdge(t)
	const get = "GET /" + testCode + " HTTP/1.1\r\nHost: go.example.com\r\nUser-Agent: " + chromeUA + "\r\n"
	f := func(req, want string) {
		t.Helper()
		answer := e.raw(t, "127.0.81.1", req)
		if got := statuses(answer); got != want {
			t.Fatalf("unexpected statuses for %q; got %q; want %q", req, got, want)
		}
		if want == "400" && !strings.Contains(answer, "Connection: close\r\n") {
			t.Fatalf("unexpected open connection after refusing a body: %q", answer)
		}
	}
	f(get+"Content-Length: 3\r\n\r\nabc", "400")
	f(get+"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "400")
	// An empty chunked body too: fasthttp leaves no trace of it but the
	// raw header, and a proxy that frames a GET without a body would take
	// its last chunk for the start of the next request.
	f(get+"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400")
	f(get+"transfer-encoding: Chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n", "400")
	// A request smuggled in a body is never served: the connection closes
	// after the 400.
	f(get+"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+get+"Connection: close\r\n\r\n", "400")
	if got := e.totals(t); got.Clicks() != 0 {
		t.Fatalf("unexpected counts; got %+v; want none", got)
	}
	f(get+"Content-Length: 0\r\nConnection: close\r\n\r\n", "302")
}

// dateRE matches the Date header, the one part of an answer that may
// differ between two requests in different seconds.
var dateRE = regexp.MustCompile(`(?m)^Date: [^\r]*\r\n`)

func TestUnknownCodes(t *testing.T) {
	e := newEdge(t, func(o *Options) { o.Probes = NewProbes(ProbeOptions{Max: 3, Window: time.Minute}) })
	get := func(ip, path string) string {
		t.Helper()
		before := e.store.calls.Load()
		answer := e.raw(t, ip, "GET "+path+" HTTP/1.1\r\nHost: go.example.com\r\nUser-Agent: "+chromeUA+"\r\nConnection: close\r\n\r\n")
		if n := e.store.calls.Load() - before; !strings.HasPrefix(answer, "HTTP/1.1 302 ") && n != 0 {
			t.Fatalf("unexpected store calls for %s; got %d; want 0", path, n)
		}
		return dateRE.ReplaceAllString(answer, "")
	}
	// Every unknown code, and every malformed path, gets the same bytes.
	want := get("127.0.82.1", "/ZZZZZZZZ")
	if !strings.HasPrefix(want, "HTTP/1.1 404 ") {
		t.Fatalf("unexpected answer to an unknown code: %q", want)
	}
	for _, path := range []string{"/zzzzzzzz", "/" + testCode + "x", "/%41B3KX9QZ"} {
		if got := get("127.0.82.1", path); got != want {
			t.Fatalf("unexpected answer to %s; got %q; want the same as for any unknown code, %q", path, got, want)
		}
	}
	// Past 3 unknown codes (the malformed path is not one), every code
	// from that network gets the same 429, known or not.
	refused := get("127.0.82.1", "/YYYYYYYY")
	if !strings.HasPrefix(refused, "HTTP/1.1 429 ") {
		t.Fatalf("unexpected answer to a fourth unknown code: %q", refused)
	}
	if got := get("127.0.82.1", "/"+testCode); got != refused {
		t.Fatalf("unexpected answer to a known code from a prober; got %q; want %q", got, refused)
	}
	if got := get("127.0.82.2", "/"+testCode); !strings.HasPrefix(got, "HTTP/1.1 302 ") {
		t.Fatalf("unexpected answer to a known code from another network: %q", got)
	}
	if got := e.totals(t); got.Clicks() != 1 || got[counter.Qualified] != 1 {
		t.Fatalf("unexpected counts; got %+v; want one qualified click", got)
	}
}

// TestHandleRefusalStatuses pins the answer of each refusal: its status
// and that no store was asked.
func TestHandleRefusalStatuses(t *testing.T) {
	e := newEdge(t)
	before := e.store.calls.Load()
	for _, c := range []struct {
		method string
		status int
	}{{"POST", 405}, {"PUT", 405}, {"OPTIONS", 405}, {"get", 405}, {"DELETE", 405}} {
		var req fasthttp.Request
		req.Header.SetMethod(c.method)
		req.SetRequestURI("/" + testCode)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 83, 1)}, nil)
		e.h.Handle(&ctx)
		if got := ctx.Response.StatusCode(); got != c.status {
			t.Fatalf("unexpected status for %s; got %d; want %d", c.method, got, c.status)
		}
	}
	if n := e.store.calls.Load() - before; n != 0 {
		t.Fatalf("unexpected store calls; got %d; want 0", n)
	}
}

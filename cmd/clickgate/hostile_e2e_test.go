package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The public edge facing the open internet: the real binary, driven over
// raw TCP, each client from its own loopback address.

const (
	edgeHost = "go.example.test"
	edgeCode = "Spring26x"
)

// startEdge starts clickgate serving edgeHost, with one link, edgeCode,
// of creator alice in campaign spring.
func startEdge(t *testing.T, args ...string) *proc {
	t.Helper()
	p := startServe(t, t.TempDir(), append([]string{"--public-url", "https://" + edgeHost}, args...)...)
	now := time.Now().UTC()
	p.mustCall(t, "PUT", "/v1/campaigns/spring", map[string]any{"starts_at": now.Add(-time.Hour), "ends_at": now.Add(time.Hour)}, 201)
	p.mustCall(t, "PUT", "/v1/creators/alice", map[string]any{"campaign": "spring", "country": "US"}, 201)
	out := p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": "alice", "code": edgeCode,
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	if out["url"] != "https://"+edgeHost+"/"+edgeCode {
		t.Fatalf("unexpected link answer %v", out)
	}
	return p
}

// dialFrom connects to addr from the loopback address ip.
func dialFrom(ip, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot dial %s from %s: %w", addr, ip, err)
	}
	return c, nil
}

// exchange writes req, the bytes of one or more requests, from ip to addr
// and returns what the server answers until it closes the connection.
// The write runs alongside the read: the server may answer, and close,
// before it has read a large request to its end.
func exchange(ip, addr, req string) ([]byte, error) {
	c, err := dialFrom(ip, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		if _, err := io.WriteString(c, req); err == nil {
			c.(*net.TCPConn).CloseWrite()
		}
	}()
	// A reset after the server answered a request it did not read to its
	// end is how the connection ends then; the answer came before it.
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "connection reset") {
		return b, fmt.Errorf("cannot read the answer from %s: %w", addr, err)
	}
	return b, nil
}

func mustExchange(t *testing.T, ip, addr, req string) []byte {
	t.Helper()
	b, err := exchange(ip, addr, req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// statusCodes returns the status codes of the responses in answer.
func statusCodes(answer []byte, head bool) []int {
	br := bufio.NewReader(strings.NewReader(string(answer)))
	method := "GET"
	if head {
		method = "HEAD"
	}
	var codes []int
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return codes
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}

// edgeCounts reads alice's stats, every count in them (the admin API adds
// the tallies in memory first).
func edgeCounts(t *testing.T, p *proc) map[string]int {
	t.Helper()
	out := map[string]int{}
	for k, v := range p.stats(t) {
		if n, ok := v.(float64); ok {
			out[k] = int(n)
		}
	}
	if _, ok := out["clicks"]; !ok {
		t.Fatalf("no clicks in stats %v", out)
	}
	return out
}

const edgeChrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

// edgeReq is a request line with the usual headers of a browser on edgeHost,
// any extra header lines, and Connection: close.
func edgeReq(line string, extra ...string) string {
	var b strings.Builder
	b.WriteString(line + "\r\nHost: " + edgeHost + "\r\nUser-Agent: " + edgeChrome + "\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// edgeKeepAlive is edgeReq without Connection: close, to pipeline before another.
func edgeKeepAlive(line string, extra ...string) string {
	return strings.TrimSuffix(edgeReq(line, extra...), "Connection: close\r\n\r\n") + "\r\n"
}

// TestHostileRequests sends requests an attacker would, each from its own
// address, and checks the status of every answer and that nothing was
// counted, or exactly what a row says: a request that is well-formed after
// all is a click like any other.
func TestHostileRequests(t *testing.T) {
	p := startEdge(t)
	get := "GET /" + edgeCode + " HTTP/1.1"
	big := strings.Repeat("A", 100<<10)
	smuggle := edgeKeepAlive(get, "Content-Length: 4", "Transfer-Encoding: chunked") + "0\r\n\r\n"
	rows := []struct {
		name   string
		req    string
		want   []int
		head   bool
		counts map[string]int // changes to alice's stats; none when nil
	}{
		{name: "percent-encoded code", req: edgeReq("GET /%53pring26x HTTP/1.1"), want: []int{404}},
		{name: "percent-encoded whole code", req: edgeReq("GET /%53%70%72%69%6e%67%32%36%78 HTTP/1.1"), want: []int{404}},
		{name: "double-encoded code", req: edgeReq("GET /%2553pring26x HTTP/1.1"), want: []int{404}},
		{name: "encoded slash", req: edgeReq("GET /%2fSpring26x HTTP/1.1"), want: []int{404}},
		{name: "NUL in the path", req: edgeReq("GET /Spring26x\x00 HTTP/1.1"), want: []int{400}},
		{name: "encoded NUL", req: edgeReq("GET /Spring26x%00 HTTP/1.1"), want: []int{404}},
		{name: "CRLF in the path", req: edgeReq("GET /Spring26x\r\nX-Injected: 1 HTTP/1.1"), want: []int{400}},
		{name: "encoded CRLF", req: edgeReq("GET /Spring26x%0d%0aSet-Cookie:%20cg_vid=x HTTP/1.1"), want: []int{404}},
		{name: "dot segment", req: edgeReq("GET /./Spring26x HTTP/1.1"), want: []int{404}},
		{name: "dot-dot segment", req: edgeReq("GET /x/../Spring26x HTTP/1.1"), want: []int{404}},
		{name: "encoded dot-dot", req: edgeReq("GET /%2e%2e/Spring26x HTTP/1.1"), want: []int{404}},
		{name: "//code", req: edgeReq("GET //Spring26x HTTP/1.1"), want: []int{404}},
		{name: "trailing slash", req: edgeReq("GET /Spring26x/ HTTP/1.1"), want: []int{404}},
		{name: "overlong code", req: edgeReq("GET /" + strings.Repeat(edgeCode, 4) + " HTTP/1.1"), want: []int{404}},
		{name: "code and one more letter", req: edgeReq("GET /Spring26xx HTTP/1.1"), want: []int{404}},
		{name: "code in other case", req: edgeReq("GET /SPRING26X HTTP/1.1"), want: []int{404}},
		{name: "Cyrillic homoglyph", req: edgeReq("GET /\u0405pring26x HTTP/1.1"), want: []int{404}},
		{name: "encoded homoglyph", req: edgeReq("GET /%D0%85pring26x HTTP/1.1"), want: []int{404}},
		{name: "fullwidth letter", req: edgeReq("GET /%EF%BC%B3pring26x HTTP/1.1"), want: []int{404}},
		{name: "100 KB URL", req: edgeReq(get[:len(get)-9] + "?pad=" + big + " HTTP/1.1"), want: []int{431}},
		{name: "100 KB header", req: edgeReq(get, "X-Pad: "+big), want: []int{431}},
		{name: "100 KB cookie", req: edgeReq(get, "Cookie: cg_vid="+big), want: []int{431}},
		{name: "duplicate Host", req: strings.Replace(edgeReq(get), "\r\n", "\r\nHost: "+edgeHost+"\r\n", 1), want: []int{400}},
		{name: "duplicate Host, one foreign", req: strings.Replace(edgeReq(get), "\r\n", "\r\nHost: evil.example\r\n", 1), want: []int{400}},
		{name: "missing Host", req: strings.Replace(edgeReq(get), "Host: "+edgeHost+"\r\n", "", 1), want: []int{400}},
		{name: "HTTP/1.0 without Host", req: "GET /Spring26x HTTP/1.0\r\nUser-Agent: " + edgeChrome + "\r\n\r\n", want: []int{421}},
		{name: "foreign Host", req: strings.Replace(edgeReq(get), edgeHost, "evil.example", 1), want: []int{421}},
		{name: "foreign Host with our name in it", req: strings.Replace(edgeReq(get), edgeHost, edgeHost+".evil.example", 1), want: []int{421}},
		{name: "Host with userinfo", req: strings.Replace(edgeReq(get), edgeHost, "evil@"+edgeHost, 1), want: []int{421}},
		{name: "absolute-form, foreign authority", req: edgeReq("GET http://evil.example/Spring26x HTTP/1.1"), want: []int{421}},
		{name: "absolute-form, userinfo", req: edgeReq("GET http://evil@" + edgeHost + "/Spring26x HTTP/1.1"), want: []int{421}},
		// The authority of an absolute-form target overrides Host (RFC
		// 9112, section 3.2.2): this is a click on our host.
		{name: "absolute-form, our authority, foreign Host", req: strings.Replace(edgeReq("GET http://"+edgeHost+"/Spring26x HTTP/1.1"), "Host: "+edgeHost, "Host: evil.example", 1),
			want: []int{302}, counts: map[string]int{"clicks": 1, "qualified": 1}},
		{name: "Content-Length with Transfer-Encoding", req: edgeReq(get, "Content-Length: 4", "Transfer-Encoding: chunked") + "0\r\n\r\n", want: []int{400}},
		{name: "request smuggled after a chunked body", req: smuggle + edgeReq(get), want: []int{400}},
		{name: "body on a GET", req: edgeReq(get, "Content-Length: 5") + "hello", want: []int{400}},
		{name: "two Content-Lengths", req: edgeReq(get, "Content-Length: 0", "Content-Length: 5") + "hello", want: []int{400}},
		{name: "lowercase method", req: edgeReq("get /Spring26x HTTP/1.1"), want: []int{405}},
		{name: "POST", req: edgeReq("POST /Spring26x HTTP/1.1", "Content-Length: 0"), want: []int{405}},
		{name: "PUT", req: edgeReq("PUT /Spring26x HTTP/1.1", "Content-Length: 2") + "{}", want: []int{405}},
		{name: "OPTIONS", req: edgeReq("OPTIONS /Spring26x HTTP/1.1"), want: []int{405}},
		{name: "OPTIONS *", req: edgeReq("OPTIONS * HTTP/1.1"), want: []int{405}},
		{name: "DELETE", req: edgeReq("DELETE /Spring26x HTTP/1.1"), want: []int{405}},
		{name: "TRACE", req: edgeReq("TRACE /Spring26x HTTP/1.1"), want: []int{405}},
		{name: "CONNECT", req: edgeReq("CONNECT " + edgeHost + ":443 HTTP/1.1"), want: []int{405}},
		// No --trusted-proxies: forwarding headers are the client's own
		// words, and the second click is the same visitor.
		{name: "forged X-Forwarded-For", req: edgeKeepAlive(get) + edgeReq(get, "X-Forwarded-For: 203.0.113.9", "X-Real-IP: 203.0.113.9", "Forwarded: for=203.0.113.9"),
			want: []int{302, 302}, counts: map[string]int{"clicks": 2, "qualified": 1, "duplicates": 1}},
		// A made-up cookie of the right shape has no valid tag: no new visitor.
		{name: "forged visitor cookie", req: edgeKeepAlive(get) + edgeReq(get, "Cookie: cg_vid="+strings.Repeat("A", 32)),
			want: []int{302, 302}, counts: map[string]int{"clicks": 2, "qualified": 1, "duplicates": 1}},
		// Pipelined clicks are served in order, each a click: one visitor.
		{name: "pipelined clicks", req: edgeKeepAlive(get) + edgeKeepAlive(get) + edgeReq(get),
			want: []int{302, 302, 302}, counts: map[string]int{"clicks": 3, "qualified": 1, "duplicates": 2}},
		// A smuggling attempt ends the connection: the click after it is
		// never read.
		{name: "pipelined click, then smuggling", req: edgeKeepAlive(get) + smuggle + edgeReq(get),
			want: []int{302, 400}, counts: map[string]int{"clicks": 1, "qualified": 1}},
		{name: "binary garbage", req: "\x8f\x00\xff\xfe\x13\x37garbage\x00\r\n\r\n", want: []int{400}},
		{name: "TLS ClientHello", req: "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + strings.Repeat("\x00", 32) + "\r\n\r\n", want: []int{400}},
		{name: "HTTP/2 preface", req: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", want: []int{400}},
		{name: "tab in the request line", req: edgeReq("GET\t/Spring26x HTTP/1.1"), want: []int{400}},
		{name: "header line without a colon", req: edgeReq(get, "NoColonHere"), want: []int{400}},
		// Folded into the User-Agent, as RFC 9112, section 5.2 allows: a
		// click like any other.
		{name: "obsolete line folding", req: edgeReq(get, " X-Folded: 1"), want: []int{302}, counts: map[string]int{"clicks": 1, "qualified": 1}},
		{name: "obsolete line folding of Host", req: strings.Replace(edgeReq(get), "Host: "+edgeHost+"\r\n", "Host: "+edgeHost+"\r\n evil.example\r\n", 1), want: []int{400}},
		{name: "unknown code", req: edgeReq("GET /ZZZZZZZZ HTTP/1.1"), want: []int{404}},
		{name: "HEAD of an unknown code", req: edgeReq("HEAD /ZZZZZZZZ HTTP/1.1"), want: []int{404}, head: true},
		{name: "admin path", req: edgeReq("GET /v1/creators/alice/stats?campaign=spring HTTP/1.1", "Authorization: Bearer "+p.token), want: []int{404}},
	}
	if len(rows) < 30 {
		t.Fatalf("BUG: %d rows; the table must hold at least 30", len(rows))
	}
	start := time.Now()
	refused := func() (n float64) {
		for k, v := range p.metrics(t) {
			if strings.HasPrefix(k, "clickgate_public_refused_total{") {
				n += v
			}
		}
		return n
	}
	refused0, wantRefused := refused(), 0
	before := edgeCounts(t, p)
	for i, r := range rows {
		for _, status := range r.want {
			if status != 302 {
				wantRefused++
			}
		}
		answer := mustExchange(t, fmt.Sprintf("127.0.50.%d", i+1), p.public, r.req)
		if got := statusCodes(answer, r.head); !slices.Equal(got, r.want) {
			t.Errorf("%s: unexpected statuses; got %v; want %v\n%q", r.name, got, r.want, answer)
		}
		after := edgeCounts(t, p)
		for reason := range after {
			if d := after[reason] - before[reason]; d != r.counts[reason] {
				t.Errorf("%s: unexpected change of %s; got %+d; want %+d", r.name, reason, d, r.counts[reason])
			}
		}
		before = after
	}
	// Every refusal is counted, by its reason, those fasthttp could not
	// read included.
	if got := refused() - refused0; got != float64(wantRefused) {
		t.Errorf("unexpected refusals counted in clickgate_public_refused_total; got %v; want %d, every answer but a 302", got, wantRefused)
	}
	// Still serving people.
	answer := mustExchange(t, "127.0.50.250", p.public, edgeReq(get))
	if got := statusCodes(answer, false); !slices.Equal(got, []int{302}) {
		t.Fatalf("unexpected answer to a click after the hostile requests: %q", answer)
	}
	// The log neither echoes what attackers sent nor grows with it:
	// fasthttp's errors come at most once a second.
	logs := p.logs()
	for _, s := range []string{"X-Injected", big[:64], "garbage", "evil.example"} {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q, sent by a client", s)
		}
	}
	if n, most := strings.Count(logs, "error when serving connection"), int(time.Since(start)/time.Second)+1; n > most {
		t.Errorf("unexpected fasthttp errors in the log; got %d in %s; want at most one a second\n%s", n, time.Since(start), logs)
	}
}

var dateHeaderRE = regexp.MustCompile(`(?m)^Date: [^\r]*\r\n`)

// TestUnknownCodeProbing checks that unknown codes look alike and that a
// network asking for too many gets a 429 for every code, known or not.
func TestUnknownCodeProbing(t *testing.T) {
	p := startEdge(t, "--probe-max", "5")
	answer := func(ip, code string) string {
		t.Helper()
		return dateHeaderRE.ReplaceAllString(string(mustExchange(t, ip, p.public, edgeReq("GET /"+code+" HTTP/1.1"))), "")
	}
	notFound := answer("127.0.51.1", "ZZZZZZZZ")
	if !strings.HasPrefix(notFound, "HTTP/1.1 404 ") {
		t.Fatalf("unexpected answer to an unknown code: %q", notFound)
	}
	for _, code := range []string{"YYYYYYYY", "Spring26y", "spring26x", "%53pring26x", "AAAA"} {
		if got := answer("127.0.51.1", code); got != notFound {
			t.Fatalf("unexpected answer to /%s; got %q; want the bytes of every unknown code, %q", code, got, notFound)
		}
	}
	// 5 unknown codes so far (the percent-encoded one is not a code).
	tooMany := answer("127.0.51.1", "XXXXXXXX")
	if !strings.HasPrefix(tooMany, "HTTP/1.1 429 ") {
		t.Fatalf("unexpected answer to the sixth unknown code: %q", tooMany)
	}
	if got := answer("127.0.51.1", edgeCode); got != tooMany {
		t.Fatalf("unexpected answer to a known code from the prober; got %q; want %q", got, tooMany)
	}
	if got := answer("127.0.51.2", edgeCode); !strings.HasPrefix(got, "HTTP/1.1 302 ") {
		t.Fatalf("unexpected answer to a known code from another network: %q", got)
	}
	if got := edgeCounts(t, p); got["clicks"] != 1 || got["qualified"] != 1 {
		t.Fatalf("unexpected stats; got %v; want the one click from the other network", got)
	}
	// The refusals are counted on /metrics, by reason.
	req, _ := http.NewRequest("GET", "http://"+p.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`clickgate_public_refused_total{reason="unknown_code"} 5`,
		`clickgate_public_refused_total{reason="malformed_path"} 1`,
		`clickgate_public_refused_total{reason="probes"} 2`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Fatalf("no %s in /metrics:\n%s", want, metrics)
		}
	}
}

// TestConnsPerIP checks --max-conns-per-ip on the real listener.
func TestConnsPerIP(t *testing.T) {
	p := startEdge(t, "--max-conns-per-ip", "3")
	var held []net.Conn
	for range 3 {
		c, err := dialFrom("127.0.52.1", p.public)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The limit counts connections, so the fourth is refused before it
	// sends anything; wait until the server has taken the first three.
	for _, c := range held {
		io.WriteString(c, edgeKeepAlive("GET /healthz HTTP/1.1"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("unexpected answer on a held connection: %v, %v", resp, err)
		}
	}
	click := func(ip string) []int {
		return statusCodes(mustExchange(t, ip, p.public, edgeReq("GET /"+edgeCode+" HTTP/1.1")), false)
	}
	if got := click("127.0.52.1"); !slices.Equal(got, []int{429}) {
		t.Fatalf("unexpected answer to a fourth connection; got %v; want [429]", got)
	}
	if got := click("127.0.52.2"); !slices.Equal(got, []int{302}) {
		t.Fatalf("unexpected answer from another address; got %v; want [302]", got)
	}
	// A closed connection gives its place back once the server sees it.
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for got := click("127.0.52.1"); !slices.Equal(got, []int{302}); got = click("127.0.52.1") {
		if time.Now().After(deadline) {
			t.Fatalf("unexpected answer after a connection closed; got %v; want [302]", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := edgeCounts(t, p); got["clicks"] != 2 || got["qualified"] != 2 {
		t.Fatalf("unexpected stats; got %v; want two clicks", got)
	}
}

// TestMaxConns checks --max-conns on the real listener: a connection past
// it is answered 503 and closed, counted in clickgate_public_refused_total.
func TestMaxConns(t *testing.T) {
	// Without the limits per network, which would refuse the second
	// connection of a /24 first (three quarters of 2).
	p := startEdge(t, "--max-conns", "2", "--max-conns-per-ip", "0")
	for range 2 {
		c, err := dialFrom("127.0.53.1", p.public)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Wait until the server serves it.
		io.WriteString(c, edgeKeepAlive("GET /healthz HTTP/1.1"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("unexpected answer on a held connection: %v, %v", resp, err)
		}
	}
	for _, ip := range []string{"127.0.53.2", "127.0.54.1"} {
		got := statusCodes(mustExchange(t, ip, p.public, edgeReq("GET /"+edgeCode+" HTTP/1.1")), false)
		if !slices.Equal(got, []int{503}) {
			t.Fatalf("unexpected answer to a third connection; got %v; want [503]", got)
		}
	}
	if got := p.metrics(t)[`clickgate_public_refused_total{reason="max_conns"}`]; got != 2 {
		t.Fatalf("unexpected refusals past --max-conns in /metrics; got %v; want 2", got)
	}
	if got := edgeCounts(t, p); got["clicks"] != 0 {
		t.Fatalf("unexpected stats; got %v; want no clicks", got)
	}
}

// TestAdminBodyCap checks that the admin listener refuses bodies over
// 1 MiB, declared or chunked, before its handler runs.
func TestAdminBodyCap(t *testing.T) {
	p := startEdge(t)
	huge := `{"campaign":"spring","creator":"alice","code":"bigbody","destinations":{"default":"https://app.example.com/"},"preview":{"description":"` +
		strings.Repeat("x", 2<<20) + `"}}`
	head := "POST /v1/links HTTP/1.1\r\nHost: " + p.admin + "\r\nAuthorization: Bearer " + p.token + "\r\n"
	for name, r := range map[string]string{
		"declared": head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(huge)) + huge,
		"chunked":  head + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n", len(huge)) + huge + "\r\n0\r\n\r\n",
	} {
		if got := statusCodes(mustExchange(t, "127.0.0.1", p.admin, r), false); !slices.Equal(got, []int{413}) {
			t.Fatalf("unexpected answer to a %s 2 MiB body; got %v; want [413]", name, got)
		}
	}
	if status, _ := p.call(t, "GET", "/v1/links/bigbody", p.token, nil); status != 404 {
		t.Fatalf("unexpected status of the refused link; got %d; want 404", status)
	}
}

// raiseOpenFiles makes sure the test can hold n descriptors.
func raiseOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Fatalf("the open-file limit is %d; the test needs %d (ulimit -n)", lim.Max, n)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("cannot raise the open-file limit to %d: %s", n, err)
	}
}

// TestSlowConnections holds 1,000 connections that send their headers a
// byte every two seconds, slowloris. People are redirected all the while,
// and the server drops the slow ones after --read-timeout.
func TestSlowConnections(t *testing.T) {
	const slow = 1000
	const readTimeout = 4 * time.Second
	raiseOpenFiles(t, 4*slow)
	p := startEdge(t, "--read-timeout", readTimeout.String())

	// Each slow client is its own address, as a botnet's would be; from
	// one address, --max-conns-per-ip would refuse all but 256.
	type result struct {
		opened, closed time.Time
		answer         string
	}
	results := make([]result, slow)
	var opened, done sync.WaitGroup
	dialErrs := make(chan error, slow)
	sem := make(chan struct{}, 100)
	for i := range slow {
		opened.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			sem <- struct{}{}
			c, err := dialFrom(fmt.Sprintf("127.1.%d.%d", i/250, i%250+1), p.public)
			if err == nil {
				_, err = io.WriteString(c, "G")
			}
			<-sem
			opened.Done()
			if err != nil {
				dialErrs <- err
				return
			}
			defer c.Close()
			r := &results[i]
			r.opened = time.Now()
			stop := make(chan struct{})
			go func() {
				line := "ET /" + edgeCode + " HTTP/1.1\r\nHost: " + edgeHost + "\r\n"
				tick := time.NewTicker(2 * time.Second)
				defer tick.Stop()
				for j := 0; ; j = (j + 1) % len(line) {
					select {
					case <-stop:
						return
					case <-tick.C:
						io.WriteString(c, line[j:j+1])
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(readTimeout + 10*time.Second))
			b, _ := io.ReadAll(c) // until the server closes, or the deadline
			r.closed = time.Now()
			r.answer = string(b)
			close(stop)
		}()
	}
	opened.Wait()
	heldAt := time.Now()
	select {
	case err := <-dialErrs:
		t.Fatalf("cannot open the slow connections: %s", err)
	default:
	}

	// 200 people click while the slow connections are held.
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			answer, err := exchange(fmt.Sprintf("127.2.%d.%d", i/250, i%250+1), p.public, edgeReq("GET /"+edgeCode+" HTTP/1.1"))
			if err != nil {
				errs <- err
			} else if got := statusCodes(answer, false); !slices.Equal(got, []int{302}) {
				errs <- fmt.Errorf("unexpected answer to a click: %q", answer)
			} else if d := time.Since(start); d > time.Second {
				errs <- fmt.Errorf("a click took %s behind the slow connections", d)
			}
		}()
	}
	wg.Wait()
	clicked := time.Now()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	done.Wait()
	for i, r := range results {
		switch {
		case r.closed.Before(clicked):
			t.Fatalf("slow connection %d was closed at %s, before the clicks were done at %s: the test proved nothing",
				i, r.closed.Sub(heldAt), clicked.Sub(heldAt))
		case r.closed.Sub(r.opened) > readTimeout+3*time.Second:
			t.Fatalf("slow connection %d stayed open %s; want it dropped after --read-timeout %s", i, r.closed.Sub(r.opened), readTimeout)
		case r.answer != "" && !strings.HasPrefix(r.answer, "HTTP/1.1 408 "):
			t.Fatalf("unexpected answer to slow connection %d: %q", i, r.answer)
		}
	}
	if got := edgeCounts(t, p); got["clicks"] != 200 || got["qualified"] != 200 {
		m := p.metrics(t)
		var keys []string
		for k, v := range m {
			if v != 0 && (strings.Contains(k, "spool") || strings.Contains(k, "commit") || strings.Contains(k, "visits") || strings.Contains(k, "judge") || strings.Contains(k, "refused")) {
				keys = append(keys, fmt.Sprintf("%s=%v", k, v))
			}
		}
		slices.Sort(keys)
		t.Fatalf("unexpected stats; got %v; want 200 qualified clicks\n%s", got, strings.Join(keys, "\n"))
	}
}

// TestEdgeFlags checks that the edge's flags are validated, and read from
// the environment like every flag.
func TestEdgeFlags(t *testing.T) {
	for _, c := range [][]string{
		{"--host", "go.example.test,bad host", "--host"},
		{"--host", "https://go.example.test", "--host"},
		{"--max-header-bytes", "100", "--max-header-bytes"},
		{"--max-conns", "0", "--max-conns"},
		{"--max-conns-per-ip", "-1", "--max-conns-per-ip"},
		{"--read-timeout", "0s", "--read-timeout"},
		{"--probe-max", "70000", "--probe-max"},
		{"--public-url", "go.example.test", "--public-url"},
	} {
		out, err := runServe(t, c[0], c[1])
		if err == nil || !strings.Contains(out, c[2]) {
			t.Fatalf("unexpected result of %s %q; got %v; want an error naming %s\n%s", c[0], c[1], err, c[2], out)
		}
	}
	t.Setenv("CLICKGATE_HOST", "links.example.test, go.example.test")
	p := startEdge(t)
	for host, want := range map[string]int{"links.example.test": 302, "go.example.test:443": 302, "other.example.test": 421} {
		r := strings.Replace(edgeReq("GET /"+edgeCode+" HTTP/1.1"), "Host: "+edgeHost, "Host: "+host, 1)
		if got := statusCodes(mustExchange(t, "127.0.53.1", p.public, r), false); !slices.Equal(got, []int{want}) {
			t.Fatalf("unexpected answer for Host %s; got %v; want [%d]", host, got, want)
		}
	}
}

// TestRefusalReasons: each kind of refusal is counted under its own reason
// in clickgate_public_refused_total, and under no other; a body over
// 1 KiB gets its 413, and a request not sent within --read-timeout its
// 408.
func TestRefusalReasons(t *testing.T) {
	p := startEdge(t, "--read-timeout", "1s")
	get := "GET /" + edgeCode + " HTTP/1.1"
	rows := []struct {
		reason string
		req    string
		want   int
		open   bool // the client keeps sending: the connection is not half-closed
	}{
		{reason: "malformed_request", req: "\x8f\x00\xff\xfe\x13\x37garbage\x00\r\n\r\n", want: 400},
		{reason: "headers_too_large", req: edgeReq(get, "X-Pad: "+strings.Repeat("A", 100<<10)), want: 431},
		{reason: "body_too_large", req: edgeReq("POST /"+edgeCode+" HTTP/1.1", "Content-Length: 2048") + strings.Repeat("A", 2048), want: 413},
		{reason: "body", req: edgeReq(get, "Content-Length: 5") + "hello", want: 400},
		{reason: "method", req: edgeReq("DELETE /" + edgeCode + " HTTP/1.1"), want: 405},
		{reason: "host", req: strings.Replace(edgeReq(get), edgeHost, "evil.example", 1), want: 421},
		{reason: "malformed_path", req: edgeReq("GET /%53pring26x HTTP/1.1"), want: 404},
		{reason: "unknown_code", req: edgeReq("GET /ZZZZZZZZ HTTP/1.1"), want: 404},
		{reason: "timeout", req: get + "\r\nHost: " + edgeHost + "\r\n", want: 408, open: true},
	}
	refused := func() map[string]float64 {
		m := map[string]float64{}
		for k, v := range p.metrics(t) {
			if r, ok := strings.CutPrefix(k, `clickgate_public_refused_total{reason="`); ok {
				m[strings.TrimSuffix(r, `"}`)] = v
			}
		}
		return m
	}
	for i, r := range rows {
		before := refused()
		ip := fmt.Sprintf("127.0.52.%d", i+1)
		var answer []byte
		if r.open {
			c, err := dialFrom(ip, p.public)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, r.req)
			answer, _ = io.ReadAll(c)
			c.Close()
		} else {
			answer = mustExchange(t, ip, p.public, r.req)
		}
		if got := statusCodes(answer, false); !slices.Equal(got, []int{r.want}) {
			t.Errorf("%s: unexpected statuses; got %v; want [%d]\n%q", r.reason, got, r.want, answer)
		}
		after := refused()
		for reason, n := range after {
			want := 0.0
			if reason == r.reason {
				want = 1
			}
			if d := n - before[reason]; d != want {
				t.Errorf("%s: unexpected change of refusals for %q; got %+v; want %+v", r.reason, reason, d, want)
			}
		}
		if _, ok := after[r.reason]; !ok {
			t.Errorf("%s: no such reason in clickgate_public_refused_total", r.reason)
		}
	}
}

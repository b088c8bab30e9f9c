package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// binary is the clickgate binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clickgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "clickgate")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot build clickgate: %s\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `clickgate serve`.
type proc struct {
	cmd           *exec.Cmd
	public, admin string
	data, token   string
	secret        []byte
	mu            sync.Mutex
	log           bytes.Buffer
	exited        chan struct{}
}

var servingRE = regexp.MustCompile(`public=(\S+) admin=(\S+)`)

// startServe runs clickgate serve on free loopback ports and waits until
// it listens. It is stopped with SIGTERM at cleanup and must exit 0.
func startServe(t *testing.T, data string, args ...string) *proc {
	t.Helper()
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data}, args...)
	return startServeCmd(t, data, exec.Command(binary, all...), args...)
}

// startServeCmd is startServe of a command of one's own (a shell that sets
// limits first, say) that runs clickgate serve on data with args.
func startServeCmd(t *testing.T, data string, cmd *exec.Cmd, args ...string) *proc {
	t.Helper()
	p := &proc{data: data, exited: make(chan struct{}), cmd: cmd}
	p.cmd.Env = os.Environ()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("cannot start clickgate: %s", err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				ready <- [2]string{m[1], m[2]}
			}
		}
		p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case a := <-ready:
		p.public, p.admin = a[0], a[1]
	case <-p.exited:
		t.Fatalf("clickgate exited before serving:\n%s", p.logs())
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("clickgate did not start within 30s:\n%s", p.logs())
	}
	t.Cleanup(func() { p.stop(t) })
	p.token = readFile(t, filepath.Join(data, "admin-token"))
	p.secret = []byte(secretFromArgs(args))
	if len(p.secret) == 0 {
		p.secret = []byte(readFile(t, filepath.Join(data, "click-secret")))
	}
	return p
}

func secretFromArgs(args []string) string {
	for i, a := range args {
		if a == "--click-secret" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read %s: %s", path, err)
	}
	return strings.TrimSpace(string(b))
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM and requires a clean exit. Safe to call twice.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("clickgate did not stop within 30s of SIGTERM:\n%s", p.logs())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("unexpected exit code after SIGTERM; got %d; want 0\n%s", code, p.logs())
	}
}

// call makes an admin API call and decodes the JSON answer.
func (p *proc) call(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+p.admin+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("cannot call admin %s %s: %s", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("admin %s %s answered non-JSON %q", method, path, raw)
	}
	return resp.StatusCode, out
}

func (p *proc) mustCall(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	status, out := p.call(t, method, path, p.token, body)
	if status != want {
		t.Fatalf("unexpected status for %s %s; got %d %v; want %d", method, path, status, out, want)
	}
	return out
}

// setup creates a campaign, a creator and a link, and returns the code.
func (p *proc) setup(t *testing.T) string {
	t.Helper()
	now := time.Now().UTC()
	p.mustCall(t, "PUT", "/v1/campaigns/spring", map[string]any{
		"name": "Spring", "starts_at": now.Add(-time.Hour), "ends_at": now.Add(6 * 7 * 24 * time.Hour),
		"eligible_countries": []string{"US"}}, 201)
	p.mustCall(t, "PUT", "/v1/creators/alice", map[string]any{"campaign": "spring", "handle": "@alice", "country": "US"}, 201)
	out := p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": "alice",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	code, _ := out["code"].(string)
	if len(code) != redirect.GeneratedCodeLen || out["url"] != "http://localhost:"+port(p.public)+"/"+code {
		t.Fatalf("unexpected link answer %v", out)
	}
	return code
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func (p *proc) stats(t *testing.T) map[string]any {
	t.Helper()
	return p.mustCall(t, "GET", "/v1/creators/alice/stats?campaign=spring", nil, 200)
}

func wantStats(t *testing.T, got map[string]any, clicks, qualified, duplicates int) {
	t.Helper()
	if got["clicks"] != float64(clicks) || got["qualified"] != float64(qualified) || got["duplicates"] != float64(duplicates) {
		t.Fatalf("unexpected stats; got %v; want clicks=%d qualified=%d duplicates=%d", got, clicks, qualified, duplicates)
	}
}

// clicker is one person's browser at a distinct loopback address.
type clicker struct {
	ip     string
	client *http.Client
}

func newClicker(ip string) *clicker {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &clicker{ip: ip, client: &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1},
		// The redirect is the answer under test, not something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}}
}

// click follows the link once and checks the redirect and its click id.
func (c *clicker) click(p *proc, code string) error {
	return c.clickContext(context.Background(), p, code)
}

func (c *clicker) clickContext(ctx context.Context, p *proc, code string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.public+"/"+code, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 302 {
		return fmt.Errorf("unexpected status from %s; got %d; want 302", c.ip, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	id, ok := strings.CutPrefix(loc, "https://app.example.com/join?"+redirect.DefaultClickParam+"=")
	if !ok {
		return fmt.Errorf("unexpected Location %q", loc)
	}
	_, key := redirect.DeriveKeys(p.secret)
	claims, err := clickid.NewSigner(key).Parse([]byte(id))
	if err != nil {
		return fmt.Errorf("invalid click id %q: %w", id, err)
	}
	if claims.Campaign != "spring" || claims.Creator != "alice" || claims.Link != code {
		return fmt.Errorf("unexpected click id claims %+v", claims)
	}
	return nil
}

// clickAll sends rounds clicks from each clicker, over 64 concurrent
// connections, and fails on any error.
func clickAll(t *testing.T, p *proc, code string, clickers []*clicker, rounds int) {
	t.Helper()
	work := make(chan *clicker)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if err := c.click(p, code); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for range rounds {
		for _, c := range clickers {
			work <- c
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

func clickers(n int) []*clicker {
	cs := make([]*clicker, n)
	for i := range cs {
		cs[i] = newClicker(fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250))
	}
	return cs
}

func TestEmbeddedEndToEnd(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	// The secrets it generated are the node's alone.
	for _, name := range []string{"admin-token", "click-secret", "app-key"} {
		if fi, err := os.Stat(filepath.Join(data, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("unexpected secret %s: %v, %v; want it with mode 0600", name, fi, err)
		}
	}
	code := p.setup(t)
	cs := clickers(100)

	// Count before redirect: once a new visitor has its 302, stats have it.
	for i, c := range cs[:10] {
		if err := c.click(p, code); err != nil {
			t.Fatal(err)
		}
		wantStats(t, p.stats(t), i+1, i+1, 0)
	}
	// 1,000 clicks in all: 10 from each of 100 addresses, 64 at a time.
	clickAll(t, p, code, cs[10:], 1)
	clickAll(t, p, code, cs, 9)
	wantStats(t, p.stats(t), 1000, 100, 900)

	// A restart keeps the catalog, the counters and the dedupe state.
	p.stop(t)
	p = startServe(t, data)
	clickAll(t, p, code, cs, 1)
	wantStats(t, p.stats(t), 1100, 100, 1000)
}

func TestAdminAuthAndPublicIsolation(t *testing.T) {
	p := startServe(t, t.TempDir())
	code := p.setup(t)
	for _, tok := range []string{"", "wrong", p.token + "x"} {
		if status, out := p.call(t, "GET", "/v1/creators/alice/stats?campaign=spring", tok, nil); status != 401 || out["error"] == nil {
			t.Fatalf("unexpected answer with token %q; got %d %v; want 401 with an error", tok, status, out)
		}
	}
	for _, path := range []string{"/v1/campaigns/spring", "/v1/links", "/v1/creators/alice/stats?campaign=spring"} {
		resp, err := http.Get("http://" + p.public + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("unexpected status for admin path %q on the public listener; got %d; want 404", path, resp.StatusCode)
		}
	}
	// Bad destinations are refused and create nothing.
	for _, dest := range []string{
		"javascript:alert(1)", "//evil.example.com/x", "http://app.example.com/", "https://user@app.example.com/",
		"https://app.example.com/\r\nSet-Cookie: a=b", "https://localhost:" + port(p.public) + "/" + code, "",
	} {
		status, out := p.call(t, "POST", "/v1/links", p.token, map[string]any{"campaign": "spring", "creator": "alice",
			"code": "badlink", "destinations": map[string]string{"default": dest}})
		if status != 422 || !strings.Contains(fmt.Sprint(out["error"]), "destinations.default") {
			t.Fatalf("unexpected answer for destination %q; got %d %v; want 422 naming destinations.default", dest, status, out)
		}
	}
	if status, _ := p.call(t, "GET", "/v1/links/badlink", p.token, nil); status != 404 {
		t.Fatalf("unexpected status for a refused link; got %d; want 404", status)
	}
	// The click path is untouched by all of that.
	wantStats(t, p.stats(t), 0, 0, 0)
}

func TestCLI(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "CLICKGATE_ADMIN_URL=http://"+p.admin, "CLICKGATE_DATA="+data)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("clickgate %s failed: %s\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cli("campaigns", "put", "spring", "--starts-at", time.Now().UTC().Add(-time.Hour).Format(time.RFC3339),
		"--ends-at", time.Now().UTC().Add(time.Hour).Format(time.RFC3339), "--eligible-countries", "US,CA", "--cap-cents", "500000")
	camp := p.mustCall(t, "GET", "/v1/campaigns/spring", nil, 200)
	if camp["cap_cents"] != float64(500000) || camp["visit_block_size"] != float64(1000) || camp["dedupe_window"] != "24h0m0s" {
		t.Fatalf("unexpected campaign after CLI put; got %v", camp)
	}
	cli("creators", "put", "alice", "--campaign", "spring", "--country", "CA", "--handle", "@alice")
	var link struct{ Code, URL string }
	if err := json.Unmarshal([]byte(cli("links", "create", "--campaign", "spring", "--creator", "alice",
		"--code", "alice-spring", "--default", "https://app.example.com/join")), &link); err != nil || link.Code != "alice-spring" {
		t.Fatalf("unexpected links create output: %+v, %v", link, err)
	}
	if err := newClicker("127.0.0.2").click(p, "alice-spring"); err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(cli("stats", "--campaign", "spring", "--creator", "alice")), &st); err != nil {
		t.Fatal(err)
	}
	wantStats(t, st, 1, 1, 0)

	// A refused call exits non-zero with the API's message.
	cmd := exec.Command(binary, "creators", "put", "bob", "--campaign", "spring", "--country", "FR")
	cmd.Env = append(os.Environ(), "CLICKGATE_ADMIN_URL=http://"+p.admin, "CLICKGATE_DATA="+data)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `country "FR" is not eligible`) {
		t.Fatalf("unexpected result for an ineligible creator; got %v\n%s", err, out)
	}
}

var _ = context.Background

// TestDashboardAddressTaken: a --dashboard-listen given and taken stops
// the start, naming the address; only the default address, when taken,
// lets the node start without a dashboard.
func TestDashboardAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	out, err := runServe(t, "--dashboard-listen", addr)
	if err == nil || !strings.Contains(out, addr) || !strings.Contains(out, "address already in use") {
		t.Fatalf("unexpected start with --dashboard-listen %s taken; got %v\n%s", addr, err, out)
	}
}

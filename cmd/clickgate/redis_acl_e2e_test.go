package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect"
)

// readmeACL returns the rules of the ACL SETUSER command in README.md,
// with the password placeholder replaced.
func readmeACL(t *testing.T, password string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "ACL SETUSER clickgate ")
	if i < 0 {
		t.Fatalf("README.md has no ACL SETUSER clickgate command")
	}
	cmd := text[i+len("ACL SETUSER clickgate "):]
	var rules []string
	for line := range strings.Lines(cmd) {
		line = strings.TrimSpace(line)
		more := strings.HasSuffix(line, "\\")
		for _, f := range strings.Fields(strings.TrimSuffix(line, "\\")) {
			f = strings.Trim(f, "'")
			if f == ">EDGE-PASSWORD" {
				f = ">" + password
			}
			rules = append(rules, f)
		}
		if !more {
			break
		}
	}
	if len(rules) < 5 || !strings.Contains(strings.Join(rules, " "), ">"+password) {
		t.Fatalf("cannot read the ACL rules in README.md; got %q", rules)
	}
	return rules
}

// TestRedisACL runs a node over TLS as the Redis user README documents,
// through a rediss://user:password@ URL. Everything a node does (catalog
// changes, clicks, tallies, stats, a signup and its webhook, the flush at stop) works, Redis
// refused none of it (ACL LOG is empty) and answered no command with an
// error (INFO errorstats), and the user can do nothing else.
func TestRedisACL(t *testing.T) {
	const edgePassword = "edge-pw-0123456789"
	srv := redistest.StartWith(t, redistest.Options{Password: "admin-pw", TLS: true,
		Args: append([]string{"--user", "clickgate"}, readmeACL(t, edgePassword)...)})
	url := srv.UserURL("clickgate", edgePassword, 0)
	// The node trusts the test's CA as a system one.
	t.Setenv("SSL_CERT_FILE", srv.CAFile())

	// The wrong password stops the node, and its message does not show it.
	wrong := strings.Replace(url, edgePassword, "not-the-password", 1)
	out, err := runServe(t, "--redis", wrong, "--click-secret", e2eSecret)
	if err == nil || strings.Contains(out, "not-the-password") || !strings.Contains(out, "WRONGPASS") {
		t.Fatalf("unexpected result with a wrong password; got %v\n%s", err, out)
	}
	admin := tlsClient(t, srv, srv.URL(0))
	ctx := context.Background()
	for _, cmd := range [][]any{{"ACL", "LOG", "RESET"}, {"CONFIG", "RESETSTAT"}} {
		if err := admin.Do(ctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}

	data := t.TempDir()
	p := startServe(t, data, "--redis", url, "--click-secret", e2eSecret)
	code := p.setup(t)
	clickAll(t, p, code, clickers(20), 2)
	// A bot's click is tallied in memory and added to the store.
	if resp, err := newClicker("127.0.21.1").request(p, "GET", code, "User-Agent", "curl/8.5.0"); err != nil || resp.StatusCode != 302 {
		t.Fatalf("unexpected answer to a bot: %v, %v", resp, err)
	}
	got := p.stats(t)
	wantStats(t, got, 41, 20, 20)
	if got["bots"] != 1.0 {
		t.Fatalf("unexpected bots; got %v; want 1", got["bots"])
	}
	hookedSignup(t, p, data, code)
	if got := p.stats(t); got["signups"] != 1.0 {
		t.Fatalf("unexpected signups; got %v; want 1", got["signups"])
	}
	p.stop(t) // flushes into the ledger, and must exit 0

	if log, err := admin.Do(ctx, "ACL", "LOG").Slice(); err != nil || len(log) != 0 {
		t.Fatalf("unexpected ACL LOG; got %v, %v; want it empty: Redis refused the node something", log, err)
	}
	// Nor did any command fail but a script's first run, which the client
	// follows with the script itself: go-redis's CLIENT SETINFO, which
	// Redis 7.0 does not know and 7.2 refuses to this user, is turned off.
	info, err := admin.Info(ctx, "errorstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Fields(info) {
		if strings.HasPrefix(line, "errorstat_") && !strings.HasPrefix(line, "errorstat_NOSCRIPT:") {
			t.Fatalf("unexpected errors in Redis: %s; want none but NOSCRIPT", line)
		}
	}
	if n, err := admin.Exists(ctx, "cg:{catalog}:version").Result(); err != nil || n != 1 {
		t.Fatalf("unexpected catalog: %d, %v", n, err)
	}
	edge := tlsClient(t, srv, url)
	admin.Set(ctx, "other:key", "x", 0)
	for _, cmd := range [][]any{
		{"GET", "other:key"},
		{"SET", "other:key", "y"},
		{"UNLINK", "cg:{catalog}:version"},
		{"DEL", "cg:{catalog}:version"},
		{"FLUSHALL"},
		{"KEYS", "*"},
		{"SCAN", "0"},
		{"CONFIG", "GET", "requirepass"},
		{"SCRIPT", "FLUSH"},
		{"EVAL", "return redis.call('GET', KEYS[1])", "1", "other:key"},
		{"EVAL", "return redis.call('DEL', KEYS[1])", "1", "cg:{catalog}:version"},
		{"SUBSCRIBE", "cg:events"},
		{"ACL", "WHOAMI"},
	} {
		// A script's own calls are refused with another message.
		if err := edge.Do(ctx, cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") && !strings.Contains(err.Error(), "user executing the script can't run this command") {
			t.Errorf("unexpected answer to %v as the clickgate user; got %v; want a refusal", cmd, err)
		}
	}
	// An ACL of an earlier version, without +info or +mget: the node does
	// not start, and says what is refused.
	for _, cmd := range []string{"info", "mget"} {
		if err := admin.Do(ctx, "ACL", "SETUSER", "clickgate", "-"+cmd).Err(); err != nil {
			t.Fatal(err)
		}
		out, err := runServe(t, "--redis", url, "--click-secret", e2eSecret)
		if err == nil || !strings.Contains(out, "NOPERM") || !strings.Contains(strings.ToLower(out), cmd) {
			t.Errorf("unexpected start with an ACL without +%s; got %v\n%s", cmd, err, out)
		}
		if err := admin.Do(ctx, "ACL", "SETUSER", "clickgate", "+"+cmd).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// runServe runs clickgate serve to its exit and returns its output.
func runServe(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", t.TempDir()}, args...)
	out, err := exec.CommandContext(ctx, binary, all...).CombinedOutput()
	return string(out), err
}

// tlsClient connects to url, trusting srv's CA.
func tlsClient(t *testing.T, srv *redistest.Server, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	opt.TLSConfig.RootCAs = x509.NewCertPool()
	opt.TLSConfig.RootCAs.AppendCertsFromPEM(ca)
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// signupThrough reports a signup through the app backend's endpoint, with the
// click id of a new click on code.
func signupThrough(t *testing.T, p *proc, data, code string) {
	t.Helper()
	resp, err := newClicker("127.0.21.2").request(p, "GET", code, "User-Agent", e2eChrome)
	if err != nil {
		t.Fatal(err)
	}
	_, id, ok := strings.Cut(resp.Header.Get("Location"), redirect.DefaultClickParam+"=")
	if !ok {
		t.Fatalf("no click id in %q", resp.Header.Get("Location"))
	}
	body, _ := json.Marshal(map[string]any{"click_id": id, "user_id": "user-1", "occurred_at": time.Now().UTC()})
	req, _ := http.NewRequest("POST", "http://"+p.admin+"/v1/conversions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+readFile(t, data+"/app-key"))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 201 {
		t.Fatalf("unexpected status of the signup; got %d; want 201", r.StatusCode)
	}
}

// hookedSignup reports a signup (signupThrough) to a webhook endpoint
// added for it, which receives its event, then removes the endpoint: the
// endpoints and the delivery's claim are in Redis.
func hookedSignup(t *testing.T, p *proc, data, code string) {
	t.Helper()
	rcv := newReceiver(t, 0, 0)
	hook := p.mustCall(t, "POST", "/v1/webhooks", map[string]any{"url": rcv.srv.URL, "events": []string{"signup.attributed"}}, 201)
	rcv.mu.Lock()
	rcv.secret = []byte(hook["secret"].(string))
	rcv.mu.Unlock()
	signupThrough(t, p, data, code)
	rcv.waitTypes(t, 10*time.Second, "signup.attributed")
	p.mustCall(t, "DELETE", "/v1/webhooks/"+hook["id"].(string), nil, 200)
}

// TestRedisACLCluster: the README's ACL holds on a Redis Cluster: a node
// on a 3-master cluster as exactly that user counts, attributes and
// flushes, and no node of the cluster refused it anything.
func TestRedisACLCluster(t *testing.T) {
	const edgePassword = "edge-pw-0123456789"
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Password: "admin-pw",
		Args: append([]string{"--user", "clickgate"}, readmeACL(t, edgePassword)...)})
	ctx := context.Background()
	for _, n := range c.Nodes() {
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr(), Password: "admin-pw"})
		defer rdb.Close()
		if err := rdb.Do(ctx, "ACL", "LOG", "RESET").Err(); err != nil {
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	p := startServe(t, data, "--redis", c.UserURL("clickgate", edgePassword), "--redis-cluster", "--partitions", "3",
		"--click-secret", e2eSecret)
	code := p.setup(t)
	clickAll(t, p, code, clickers(20), 2)
	wantStats(t, p.stats(t), 40, 20, 20)
	hookedSignup(t, p, data, code)
	if got := p.stats(t); got["signups"] != 1.0 {
		t.Fatalf("unexpected signups; got %v; want 1", got["signups"])
	}
	p.stop(t) // flushes into the ledger, and must exit 0
	for _, n := range c.Nodes() {
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr(), Password: "admin-pw"})
		defer rdb.Close()
		if log, err := rdb.Do(ctx, "ACL", "LOG").Slice(); err != nil || len(log) != 0 {
			t.Fatalf("unexpected ACL LOG on %s; got %v, %v; want it empty: the node was refused something", n.Addr(), log, err)
		}
	}
}

// Package deploy holds no code: its test runs ../docker-compose.yml the
// way Docker Compose would, without Docker, so that the file's commands are
// the ones checked. composefile_test.go reads the compose file (with
// yaml_test.go) and the Dockerfile, loopback_test.go runs their services on
// loopback, and this file drives them as a user would.
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	composeFile = "../docker-compose.yml"
	dockerfile  = "../Dockerfile"
	// checkTimeout bounds the whole check, the build included.
	checkTimeout = 3 * time.Minute
)

// TestComposeOnLoopback runs docker-compose.yml as `docker compose up
// --wait` would, on loopback: every service's command, environment and
// healthcheck as the file has them (a built service's as the Dockerfile
// adds them up), in the order of depends_on and its conditions; each
// service's address (its name or ipv4_address) and its container ports
// become 127.0.0.1 and free ports, its volumes directories of its own, and
// the binary is built with the Dockerfile's own go build command. Then it
// creates a campaign, a creator and a link through the admin API of the
// edge that flushes, clicks through the other edge, reads the same stats
// through both, runs the one-shot services again as a later `up` would,
// and stops everything as `docker compose down` would, each exiting 0.
func TestComposeOnLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), checkTimeout)
	defer cancel()
	start := time.Now()
	root := t.TempDir()

	// What an operator puts in .env.
	vars := map[string]string{}
	for _, name := range []string{"CLICKGATE_CLICK_SECRET", "CLICKGATE_ADMIN_TOKEN", "CLICKGATE_APP_KEY"} {
		vars[name] = randomHex(32)
	}
	services := loadCompose(t, composeFile, vars)
	img := loadDockerfile(t, dockerfile)
	bin := img.build(ctx, t, filepath.Join(root, "bin"))
	built := time.Since(start)

	pl := newPlan(t, root, services, img, bin)
	t.Cleanup(pl.killAll)
	pl.up(ctx, t)
	upAt := time.Since(start)

	a, b := pl.edges(t)
	scenario(ctx, t, pl, a, b)

	// A later `docker compose up` runs the one-shot services again.
	for _, s := range services {
		if pl.oneShot[s.name] {
			if err := pl.runOnce(ctx, s); err != nil {
				t.Fatalf("one-shot service %s failed when run again, as on a later up: %s", s.name, err)
			}
		}
	}
	checked := time.Since(start)
	pl.down(t)
	t.Logf("built in %s, up in %s, scenario in %s, down in %s",
		built.Round(time.Millisecond), (upAt - built).Round(time.Millisecond),
		(checked - upAt).Round(time.Millisecond), (time.Since(start) - checked).Round(time.Millisecond))
}

// edge is a built service as a client reaches it.
type edge struct {
	s             *service
	public, admin string // 127.0.0.1:port
	token         string
	store         string // its --redis and --partitions
}

// scenario: a link made through a's admin API, clicked through b, counted
// the same through both; only a flushes.
func scenario(ctx context.Context, t *testing.T, pl *plan, a, b *edge) {
	t.Helper()
	now := time.Now().UTC()
	a.mustCall(ctx, t, "PUT", "/v1/campaigns/compose", map[string]any{
		"name": "Compose", "starts_at": now.Add(-time.Hour), "ends_at": now.Add(42 * 24 * time.Hour)}, 201)
	a.mustCall(ctx, t, "PUT", "/v1/creators/alice", map[string]any{"campaign": "compose", "handle": "@alice", "country": "US"}, 201)
	const code, dest = "compose1", "https://example.com/join"
	a.mustCall(ctx, t, "POST", "/v1/links", map[string]any{"campaign": "compose", "creator": "alice", "code": code,
		"destinations": map[string]string{"default": dest}}, 201)

	// b serves the link within its poll interval: one HEAD, a prefetch.
	probe := browser("127.0.77.100")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		status, _, err := probe.open(ctx, "HEAD", "http://"+b.public+"/"+code)
		if err != nil {
			t.Fatalf("cannot reach %s's public listener: %s\n%s", b.s.name, err, pl.logs())
		}
		if status == http.StatusFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %q made through %s not served by %s within 5s; last status %d", code, a.s.name, b.s.name, status)
		}
	}
	const visitors, clicksEach = 3, 2
	for v := range visitors {
		br := browser(fmt.Sprintf("127.0.77.%d", 1+v))
		for range clicksEach {
			status, loc, err := br.open(ctx, "GET", "http://"+b.public+"/"+code)
			if err != nil || status != http.StatusFound || !strings.HasPrefix(loc, dest+"?") {
				t.Fatalf("unexpected answer to a click through %s; got %d %q %v; want 302 to %s?...", b.s.name, status, loc, err, dest)
			}
		}
	}

	// Judging is asynchronous: wait until both edges show every visitor.
	want := map[string]float64{"clicks": 1 + visitors*clicksEach, "qualified": visitors,
		"duplicates": visitors * (clicksEach - 1), "prefetches": 1}
	var sa, sb map[string]any
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sa = a.mustCall(ctx, t, "GET", "/v1/creators/alice/stats?campaign=compose", nil, 200)
		sb = b.mustCall(ctx, t, "GET", "/v1/creators/alice/stats?campaign=compose", nil, 200)
		if hasStats(sa, want) && fmt.Sprint(sa) == fmt.Sprint(sb) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unexpected stats within 15s; got %v through %s and %v through %s; want %v through both",
				sa, a.s.name, sb, b.s.name, want)
		}
	}
	t.Logf("stats through %s and %s: %v", a.s.name, b.s.name, sa)

	a.mustCall(ctx, t, "POST", "/v1/flush", nil, 200)
	b.mustCall(ctx, t, "POST", "/v1/flush", nil, 404)
}

func hasStats(got map[string]any, want map[string]float64) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func (e *edge) mustCall(ctx context.Context, t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.admin+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("cannot call %s %s on %s: %s", method, path, e.s.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != want {
		t.Fatalf("unexpected answer to %s %s on %s; got %d %q; want %d", method, path, e.s.name, resp.StatusCode, raw, want)
	}
	return out
}

// visitor is one person's browser at a loopback address of its own.
type visitor struct{ client *http.Client }

func browser(ip string) *visitor {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &visitor{client: &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}}
}

func (v *visitor) open(ctx context.Context, method, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15")
	resp, err := v.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

// edges returns the built service that flushes and the one that does not,
// reached where their listeners are, after checking what the compose
// file must hold for them: the same store and secrets, exactly one
// flushing, both listeners published, the admin API on the host's
// loopback only.
func (pl *plan) edges(t *testing.T) (flusher, other *edge) {
	t.Helper()
	var es []*edge
	for _, s := range pl.services {
		if !s.build {
			continue
		}
		env := map[string]string{}
		for _, kv := range pl.img.env {
			env[kv[0]] = kv[1]
		}
		for k, v := range s.env {
			env[k] = v
		}
		setting := func(flag, def string) string {
			if i := slices.Index(s.command, flag); i >= 0 && i+1 < len(s.command) {
				return s.command[i+1]
			}
			if v, ok := env["CLICKGATE_"+strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_"))]; ok {
				return v
			}
			return def
		}
		e := &edge{s: s, token: env["CLICKGATE_ADMIN_TOKEN"]}
		for _, l := range []struct {
			flag, def string
			addr      *string
		}{{"--listen", ":8080", &e.public}, {"--admin-listen", "127.0.0.1:8081", &e.admin}} {
			host, cp, err := net.SplitHostPort(setting(l.flag, l.def))
			if err != nil || pl.ports[s.name][cp] == "" {
				t.Fatalf("service %s does not publish its %s port %q", s.name, l.flag, cp)
			}
			if host != "" && host != "0.0.0.0" && host != "::" {
				t.Fatalf("service %s: %s is on %q, which a published port does not reach; want all of the container's addresses", s.name, l.flag, host)
			}
			*l.addr = "127.0.0.1:" + pl.ports[s.name][cp]
			if l.flag == "--admin-listen" && !strings.HasPrefix(s.published[cp], "127.0.0.1:") {
				t.Fatalf("service %s publishes its admin API on %q; want the host's loopback only (127.0.0.1:PORT)", s.name, s.published[cp])
			}
		}
		if !slices.Contains(s.command, "--redis-cluster") && env["CLICKGATE_REDIS_CLUSTER"] != "true" {
			t.Fatalf("service %s does not run with --redis-cluster", s.name)
		}
		e.store = setting("--redis", "") + " --partitions " + setting("--partitions", "1")
		if len(es) > 0 && e.store != es[0].store {
			t.Fatalf("service %s runs on --redis %s; want the same as %s: --redis %s", s.name, e.store, es[0].s.name, es[0].store)
		}
		es = append(es, e)
		if setting("--flush-interval", "1m") != "0" {
			if flusher != nil {
				t.Fatalf("services %s and %s both flush; all edges but one want --flush-interval 0", flusher.s.name, s.name)
			}
			flusher = e
		} else if other == nil {
			other = e
		}
	}
	if flusher == nil || other == nil {
		t.Fatalf("want an edge that flushes and one that does not; got %d edges", len(es))
	}
	for _, e := range es[1:] {
		for _, k := range []string{"CLICKGATE_CLICK_SECRET", "CLICKGATE_ADMIN_TOKEN", "CLICKGATE_APP_KEY"} {
			if e.s.env[k] == "" || e.s.env[k] != es[0].s.env[k] {
				t.Fatalf("service %s: %s is not set, or not the same as on %s", e.s.name, k, es[0].s.name)
			}
		}
	}
	return flusher, other
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

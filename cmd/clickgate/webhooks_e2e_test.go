package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect"
)

// receiver is an app backend's webhook endpoint, over real HTTP: it
// verifies each delivery's signature with its own code (not package
// webhook's), fails the first failFirst deliveries with a 500, and
// processes each event id once (an idempotent receiver), counting every
// delivery of it.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret []byte

	mu        sync.Mutex
	n         int                       // deliveries received
	failFirst int                       // deliveries answered 500 first
	holdAt    int                       // the delivery processed, then held until release is closed (0: none)
	held      chan string               // receives the held delivery's event id
	release   chan struct{}             // closed to answer the held delivery
	received  map[string]int            // deliveries by event id, signed ones only
	processed map[string]map[string]any // events by id, each processed once
	badSigs   int
	changed   chan struct{} // closed and renewed on each processed event
}

func newReceiver(t *testing.T, failFirst, holdAt int) *receiver {
	r := &receiver{t: t, failFirst: failFirst, holdAt: holdAt, held: make(chan string, 1), release: make(chan struct{}),
		received: map[string]int{}, processed: map[string]map[string]any{}, changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.releaseHeld()
		r.srv.Close()
	})
	return r
}

func (r *receiver) releaseHeld() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

// verify checks "t=<unix>,v1=<hex HMAC-SHA256(secret, t.body)>", written
// here from the README's description of the scheme.
func verify(secret []byte, header string, body []byte, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("no timestamp in %q", header)
	}
	if d := now.Sub(time.Unix(t, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %d too far from now", t)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	if got, _ := hex.DecodeString(sig); !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("signature %q does not match", sig)
	}
	return nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	if err := verify(r.secret, req.Header.Get("X-Clickgate-Signature"), body, time.Now()); err != nil {
		r.badSigs++
		r.mu.Unlock()
		r.t.Errorf("a delivery failed its signature: %s\n%s", err, body)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev struct {
		ID   string         `json:"id"`
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || req.Header.Get("X-Clickgate-Event-Id") != ev.ID ||
		req.Header.Get("X-Clickgate-Event-Type") != ev.Type || req.Header.Get("Content-Type") != "application/json" {
		r.mu.Unlock()
		r.t.Errorf("unexpected delivery: headers %v, body %s", req.Header, body)
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	r.n++
	n := r.n
	r.received[ev.ID]++
	if n <= r.failFirst {
		r.mu.Unlock()
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	if r.processed[ev.ID] == nil {
		ev.Data["type"] = ev.Type
		r.processed[ev.ID] = ev.Data
		close(r.changed)
		r.changed = make(chan struct{})
	}
	release := r.release
	r.mu.Unlock()
	if n == r.holdAt {
		// Processed, but the answer waits until clickgate is gone: it
		// never learns of this delivery and makes it again.
		r.held <- ev.ID
		<-release
	}
	w.WriteHeader(http.StatusNoContent)
}

// waitTypes waits until the receiver processed an event of each type.
func (r *receiver) waitTypes(t *testing.T, timeout time.Duration, types ...string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		have := map[string]bool{}
		for _, d := range r.processed {
			have[d["type"].(string)] = true
		}
		changed := r.changed
		missing := []string{}
		for _, typ := range types {
			if !have[typ] {
				missing = append(missing, typ)
			}
		}
		r.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the receiver did not get %v within %s; it processed %v", missing, timeout, r.processed)
		}
	}
}

// TestWebhooksEndToEnd: a receiver fails the first 3 deliveries, processes
// the 4th and holds its answer while clickgate is killed (SIGKILL), and a
// new clickgate on the same data directory delivers everything: a signup,
// the creator's cap reached and the campaign payable, each signed, each
// processed once, the one whose answer was lost delivered again with the
// same id (at least once). With Redis the outbox is the node's own, on
// its disk, as with the embedded store.
func TestWebhooksEndToEnd(t *testing.T) {
	t.Run("Embedded", func(t *testing.T) { testWebhooks(t) })
	t.Run("Redis", func(t *testing.T) {
		testWebhooks(t, "--redis", redistest.Start(t).URL(0), "--click-secret", e2eSecret)
	})
}

func testWebhooks(t *testing.T, storeArgs ...string) {
	rcv := newReceiver(t, 3, 4)
	data := t.TempDir()
	args := append(storeArgs, "--flush-interval", "1s", "--webhook-retry-min", "100ms", "--webhook-retry-max", "400ms")
	p := startServe(t, data, args...)
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "CLICKGATE_ADMIN_URL=http://"+p.admin, "CLICKGATE_DATA="+data)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := cli("webhooks", "add", "--url", rcv.srv.URL+"/hooks/clickgate", "--description", "app backend")
	var ep struct{ ID, Secret string }
	if err != nil || json.Unmarshal([]byte(out), &ep) != nil || !strings.HasPrefix(ep.ID, "wh_") || len(ep.Secret) < 32 {
		t.Fatalf("unexpected webhooks add: %v\n%s", err, out)
	}
	rcv.mu.Lock()
	rcv.secret = []byte(ep.Secret)
	rcv.mu.Unlock()
	// The secret is shown once: never listed.
	if out, err := cli("webhooks", "list"); err != nil || strings.Contains(out, ep.Secret) || !strings.Contains(out, ep.ID) {
		t.Fatalf("unexpected webhooks list: %v\n%s", err, out)
	}

	// A campaign that ends in a few seconds, whose cap one signup reaches.
	now := time.Now().UTC()
	end := now.Add(6 * time.Second).Truncate(time.Second)
	p.mustCall(t, "PUT", "/v1/campaigns/hooks", map[string]any{"starts_at": now.Add(-time.Hour), "ends_at": end,
		"eligible_countries": []string{"US"}, "signup_reward_cents": 1000, "cap_cents": 1000, "signup_grace": "0s"}, 201)
	p.mustCall(t, "PUT", "/v1/creators/alice", map[string]any{"campaign": "hooks", "country": "US"}, 201)
	p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "hooks", "creator": "alice", "code": "alice-hooks",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	resp, err := newClicker("127.0.60.1").request(p, "GET", "alice-hooks", "User-Agent", e2eChrome)
	if err != nil || resp.StatusCode != 302 {
		t.Fatalf("unexpected click answer: %v, %v", resp, err)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	click := loc.Query().Get(redirect.DefaultClickParam)
	app := readFile(t, filepath.Join(data, "app-key"))
	convert := func(p *proc, want int) {
		t.Helper()
		status, out := p.call(t, "POST", "/v1/conversions", app, map[string]any{"click_id": click, "user_id": "user-1", "occurred_at": time.Now().UTC()})
		if status != want {
			t.Fatalf("unexpected conversion answer; got %d %v; want %d", status, out, want)
		}
	}
	convert(p, 201)

	// The 4th delivery is processed, and clickgate killed before it
	// hears the 2xx.
	var lost string
	select {
	case lost = <-rcv.held:
	case <-time.After(30 * time.Second):
		t.Fatalf("no 4th delivery within 30s; the receiver got %v\n%s", rcv.received, p.logs())
	}
	p.cmd.Process.Kill()
	<-p.exited
	rcv.releaseHeld()

	p = startServe(t, data, args...)
	// The app backend sends the conversion again (its answer was lost,
	// say): a duplicate, and the same event id, processed once.
	convert(p, 200)
	rcv.waitTypes(t, 60*time.Second, "signup.attributed", "creator.cap_reached", "campaign.payable")

	rcv.mu.Lock()
	processed, badSigs, redelivered := maps.Clone(rcv.processed), rcv.badSigs, rcv.received[lost]
	rcv.mu.Unlock()
	if len(processed) != 3 || badSigs != 0 {
		t.Fatalf("unexpected events; got %d processed, %d with bad signatures: %v; want 3, 0", len(processed), badSigs, processed)
	}
	if redelivered < 2 {
		t.Fatalf("unexpected deliveries of %s, whose 2xx clickgate never heard; got %d; want at least 2 (at least once)", lost, redelivered)
	}
	want := map[string]map[string]any{
		"signup.attributed":   {"campaign": "hooks", "creator": "alice", "user_id": "user-1"},
		"creator.cap_reached": {"campaign": "hooks", "creator": "alice", "cap_cents": 1000.0, "earned_cents": 1000.0, "signups": 1.0, "status": "payable"},
		"campaign.payable":    {"campaign": "hooks", "statement": "final", "total_cents": 1000.0, "creators": 1.0, "currency": "USD"},
	}
	for id, d := range processed {
		for k, v := range want[d["type"].(string)] {
			if d[k] != v {
				t.Fatalf("unexpected %s of event %s; got %v; want %v (%v)", k, id, d[k], v, d)
			}
		}
	}

	// Every delivery leaves the outbox once its 2xx is on disk.
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := p.mustCall(t, "GET", "/v1/webhooks/"+ep.ID, nil, 200)
		if list["pending"] == 0.0 && list["last_error"] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries still pending: %v", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fams, _ := p.scrape(t)
	if v := value(t, fams, "clickgate_webhook_pending"); v != 0 {
		t.Fatalf("unexpected clickgate_webhook_pending; got %v; want 0", v)
	}
	if v := value(t, fams, "clickgate_webhook_delivered_total"); v < 2 {
		t.Fatalf("unexpected clickgate_webhook_delivered_total after the restart; got %v; want at least 2", v)
	}

	// Removing the endpoint stops its deliveries.
	if out, err := cli("webhooks", "remove", ep.ID); err != nil || !strings.Contains(out, `"removed": true`) {
		t.Fatalf("unexpected webhooks remove: %v\n%s", err, out)
	}
	if out, err := cli("webhooks", "remove", ep.ID); err == nil || !strings.Contains(out, ep.ID) {
		t.Fatalf("unexpected second webhooks remove: %v\n%s", err, out)
	}
}

// TestWebhooksBadInput: every bad endpoint is a 400 that names what is
// wrong, and adds nothing.
func TestWebhooksBadInput(t *testing.T) {
	p := startServe(t, t.TempDir())
	for _, c := range []struct{ body, want string }{
		{`{}`, "url is required"},
		{`{"url":"ftp://example.com/x"}`, "must be http or https"},
		{`{"url":"https://"}`, "has no host"},
		{`{"url":"/relative"}`, "must be http or https"},
		{`{"url":"https://user:pw@example.com/"}`, "user info"},
		{`{"url":"https://example.com/#frag"}`, "fragment"},
		{`{"url":"https://example.com/a b"}`, "without spaces"},
		{`{"url":"https://example.com/\r\nX: y"}`, "printable"},
		{`{"url":"https://example.com/","events":["signup.created"]}`, `unknown type \"signup.created\"`},
		{`{"url":"https://example.com/","secret":"short"}`, "secret must be 32 to 256"},
		{`{"url":"https://example.com/","description":"` + strings.Repeat("x", 257) + `"}`, "description"},
		{`{"url":"https://example.com/","extra":1}`, "unknown field"},
		{`{"url":"https://example.com/"} {}`, "data after the object"},
		{`["https://example.com/"]`, "want an object"},
		{`{"url":42}`, "invalid JSON body"},
		{``, "request body is empty"},
	} {
		req, _ := http.NewRequest("POST", "http://"+p.admin+"/v1/webhooks", strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+p.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(raw), c.want) {
			t.Fatalf("unexpected answer for %q; got %d %s; want 400 containing %q", c.body, resp.StatusCode, raw, c.want)
		}
	}
	if list := p.mustCall(t, "GET", "/v1/webhooks", nil, 200); len(list["webhooks"].([]any)) != 0 {
		t.Fatalf("unexpected endpoints after refused adds: %v", list)
	}
	if status, out := p.call(t, "DELETE", "/v1/webhooks/wh_nope", p.token, nil); status != 404 || !strings.Contains(fmt.Sprint(out["error"]), `"wh_nope"`) {
		t.Fatalf("unexpected answer to removing an unknown endpoint; got %d %v; want 404 naming it", status, out)
	}
	if status, _ := p.call(t, "PUT", "/v1/webhooks", p.token, map[string]any{}); status != 405 {
		t.Fatalf("unexpected status for PUT /v1/webhooks; got %d; want 405", status)
	}
	if status, _ := p.call(t, "GET", "/v1/webhooks", "", nil); status != 401 {
		t.Fatalf("unexpected status without the admin token; got %d; want 401", status)
	}
	// An endpoint with its own secret, for a second node, and some types.
	secret := strings.Repeat("s", 40)
	out := p.mustCall(t, "POST", "/v1/webhooks", map[string]any{"url": "https://partner.example.com/hooks",
		"events": []string{"campaign.payable", "creator.cap_reached"}, "secret": secret}, 201)
	if out["secret"] != secret || fmt.Sprint(out["events"]) != "[campaign.payable creator.cap_reached]" {
		t.Fatalf("unexpected endpoint added: %v", out)
	}
}

// TestWebhooksShared: two nodes on one Redis (one server, or a 3-master
// cluster) share their endpoints. One added through node a's CLI
// receives what node b emits (b takes the conversion and flushes the
// ledger): every event, signed, from b. The same conversion sent again
// to a is a duplicate whose event a emits too, and drops, since b
// claimed it: the receiver gets it once. The endpoint removed through b,
// a's next signup reaches nobody.
func TestWebhooksShared(t *testing.T) {
	t.Run("Redis", func(t *testing.T) {
		testWebhooksShared(t, "--redis", redistest.Start(t).URL(0))
	})
	t.Run("Cluster", func(t *testing.T) {
		testWebhooksShared(t, clusterStoreArgs(redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3}))...)
	})
}

func testWebhooksShared(t *testing.T, storeArgs ...string) {
	rcv := newReceiver(t, 0, 0)
	args := append(storeArgs, "--click-secret", e2eSecret, "--webhook-retry-min", "100ms", "--webhook-retry-max", "400ms")
	a := startServe(t, t.TempDir(), append(args, "--flush-interval", "0")...)
	b := startServe(t, t.TempDir(), append(args, "--flush-interval", "1s")...)
	cli := func(p *proc, args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "CLICKGATE_ADMIN_URL=http://"+p.admin, "CLICKGATE_DATA="+p.data)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("unexpected error of %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var ep struct{ ID, Secret string }
	if out := cli(a, "webhooks", "add", "--url", rcv.srv.URL+"/hooks"); json.Unmarshal([]byte(out), &ep) != nil || !strings.HasPrefix(ep.ID, "wh_") {
		t.Fatalf("unexpected webhooks add: %s", out)
	}
	rcv.mu.Lock()
	rcv.secret = []byte(ep.Secret)
	rcv.mu.Unlock()
	if out := cli(b, "webhooks", "list"); !strings.Contains(out, ep.ID) || strings.Contains(out, ep.Secret) {
		t.Fatalf("unexpected webhooks list on the other node: %s", out)
	}

	now := time.Now().UTC()
	a.mustCall(t, "PUT", "/v1/campaigns/shared", map[string]any{"starts_at": now.Add(-time.Hour), "ends_at": now.Add(6 * time.Second).Truncate(time.Second),
		"eligible_countries": []string{"US"}, "signup_reward_cents": 1000, "cap_cents": 1000, "signup_grace": "0s"}, 201)
	a.mustCall(t, "PUT", "/v1/creators/alice", map[string]any{"campaign": "shared", "country": "US"}, 201)
	a.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "shared", "creator": "alice", "code": "alice-shared",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	// A second campaign, running for an hour, takes the signup after
	// the removal.
	a.mustCall(t, "PUT", "/v1/campaigns/later", map[string]any{"starts_at": now.Add(-time.Hour), "ends_at": now.Add(time.Hour),
		"eligible_countries": []string{"US"}}, 201)
	a.mustCall(t, "PUT", "/v1/creators/bob", map[string]any{"campaign": "later", "country": "US"}, 201)
	a.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "later", "creator": "bob", "code": "bob-later",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	click := func(ip, code string) string {
		t.Helper()
		resp, err := newClicker(ip).request(a, "GET", code, "User-Agent", e2eChrome)
		if err != nil || resp.StatusCode != 302 {
			t.Fatalf("unexpected click answer: %v, %v", resp, err)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc.Query().Get(redirect.DefaultClickParam)
	}
	convert := func(p *proc, click, user string, want int) {
		t.Helper()
		body := map[string]any{"click_id": click, "user_id": user, "occurred_at": time.Now().UTC()}
		if status, out := p.call(t, "POST", "/v1/conversions", readFile(t, filepath.Join(p.data, "app-key")), body); status != want {
			t.Fatalf("unexpected conversion answer; got %d %v; want %d", status, out, want)
		}
	}
	alice := click("127.0.61.1", "alice-shared")
	convert(b, alice, "user-1", 201)
	rcv.waitTypes(t, 10*time.Second, "signup.attributed")
	// The same user through a, before the campaign closes: a duplicate,
	// whose event a emits and drops, b having delivered it.
	convert(a, alice, "user-1", 200)
	rcv.waitTypes(t, 60*time.Second, "creator.cap_reached", "campaign.payable")
	metric := func(p *proc, name string) float64 {
		fams, _ := p.scrape(t)
		return value(t, fams, name)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metric(a, "clickgate_webhook_dropped_total") != 1 || metric(b, "clickgate_webhook_pending") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a dropped %v deliveries, b has %v pending; want 1 and 0", metric(a, "clickgate_webhook_dropped_total"), metric(b, "clickgate_webhook_pending"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, want := metric(a, "clickgate_webhook_delivered_total"), 0.0; got != want {
		t.Fatalf("unexpected deliveries by a; got %v; want %v", got, want)
	}
	if got := metric(b, "clickgate_webhook_delivered_total"); got != 3 {
		t.Fatalf("unexpected deliveries by b; got %v; want 3", got)
	}
	rcv.mu.Lock()
	processed, received := maps.Clone(rcv.processed), maps.Clone(rcv.received)
	rcv.mu.Unlock()
	if len(processed) != 3 || len(received) != 3 {
		t.Fatalf("unexpected events; got %v processed, %v received; want 3, each once", processed, received)
	}
	for id, n := range received {
		if n != 1 {
			t.Fatalf("unexpected deliveries of %s; got %d; want 1", id, n)
		}
	}

	// Removed through b: a's next signup goes nowhere.
	if out := cli(b, "webhooks", "remove", ep.ID); !strings.Contains(out, `"removed": true`) {
		t.Fatalf("unexpected webhooks remove: %s", out)
	}
	convert(a, click("127.0.61.3", "bob-later"), "user-2", 201)
	for {
		list := a.mustCall(t, "GET", "/v1/webhooks", nil, 200)
		if len(list["webhooks"].([]any)) == 0 && metric(a, "clickgate_webhook_pending") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a still has the removed endpoint or its deliveries: %v", list)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := metric(a, "clickgate_webhook_delivered_total"); got != 0 {
		t.Fatalf("unexpected deliveries by a after the removal; got %v; want 0", got)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.received) != 3 || rcv.badSigs != 0 {
		t.Fatalf("unexpected deliveries after the removal; got %v, %d bad signatures; want the 3 before it", rcv.received, rcv.badSigs)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

const e2eSecret = "e2e-secret-0123456789abcdef0123456789"

func TestRedisEndToEnd(t *testing.T) {
	srv := redistest.Start(t)
	a := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret)
	// One node flushes the store into its ledger; the others do not.
	b := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "0")

	// A link created through a's admin API is served by b within a second.
	// The probe is a HEAD: until b serves the code it is a 404 (never
	// counted); once it does, it is one prefetch.
	code := a.setup(t)
	waitServed(t, b, code)

	cs := clickers(100)
	clickAll(t, a, code, cs, 10)
	// Stats flush the answering node's tally of unpaid counts; the probe's
	// prefetch was tallied on b.
	b.stats(t)
	wantStats(t, a.stats(t), 1001, 100, 900)

	// A new visitor through b: committed by b.
	fresh := newClicker("127.0.200.1")
	if err := fresh.click(b, code); err != nil {
		t.Fatal(err)
	}
	commits, ok := b.metrics(t)["clickgate_commit_duration_seconds_count"]
	if !ok || commits < 1 {
		t.Fatalf("no commit counted on node b: %v, %v", commits, ok)
	}
	// Every visitor counted through a is a duplicate through b, and the
	// other way round: each node follows the log, and knows the other's
	// visitors without a round trip.
	learnt := func(p *proc) float64 {
		m := p.metrics(t)
		return m[`clickgate_follow_visits_total{source="log"}`] + m[`clickgate_follow_visits_total{source="judge"}`]
	}
	for deadline := time.Now().Add(5 * time.Second); learnt(b) < 101 || learnt(a) < 101; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the nodes did not learn the 101 visits within 5s: a %v, b %v", learnt(a), learnt(b))
		}
	}
	clickAll(t, b, code, cs, 1)
	if err := fresh.click(a, code); err != nil {
		t.Fatal(err)
	}
	if n := b.metrics(t)["clickgate_commit_duration_seconds_count"]; n != commits {
		t.Fatalf("node b committed %v batches of visitors it follows; want none", n-commits)
	}
	// Stats flush the answering node's tally: b's holds the duplicates of
	// the visitors it knew, a's fresh's.
	a.stats(t)
	wantStats(t, b.stats(t), 1103, 101, 1001)
	wantStats(t, a.stats(t), 1103, 101, 1001)
}

func TestRedisNeedsSharedSecret(t *testing.T) {
	srv := redistest.Start(t)
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--data", t.TempDir(), "--redis", srv.URL(0))
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--click-secret is required with --redis") {
		t.Fatalf("unexpected result without --click-secret on Redis; got %v\n%s", err, out)
	}

	// A node with another secret would count every visitor again: the
	// store, set up by the first node, refuses it.
	startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret)
	cmd = exec.Command(binary, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--data", t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret+"-other")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "dedupe parameters differ") || !strings.Contains(string(out), "--click-secret") {
		t.Fatalf("unexpected result for a node with another secret; got %v\n%s", err, out)
	}
	// The same secret with a trailing newline (from a file) is the same secret.
	startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret+"\n", "--flush-interval", "0")
}

// TestRedisFlushAll: a FLUSHALL under a running node does not turn its
// links into 404s; the node says, once and loudly, that the store was
// reset, and keeps redirecting.
func TestRedisFlushAll(t *testing.T) {
	srv := redistest.Start(t)
	p := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "0", "--poll-interval", "20ms")
	code := p.setup(t)
	flushAll(t, srv)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs(), "the store was reset") {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not say that the store was reset:\n%s", p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 5 {
		if err := newClicker(fmt.Sprintf("127.5.0.%d", i+1)).click(p, code); err != nil {
			t.Fatalf("a link stopped redirecting after FLUSHALL: %v", err)
		}
	}
	if n := strings.Count(p.logs(), "the store was reset"); n != 1 {
		t.Fatalf("unexpected count of reset messages; got %d; want 1 (logged when it starts)", n)
	}
}

// TestCatalogRestore: the catalog exported before a FLUSHALL, imported
// after it, is the same catalog; the node takes it again, a link created
// after it is served, and a second import changes nothing.
func TestCatalogRestore(t *testing.T) {
	srv := redistest.Start(t)
	p := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "0", "--poll-interval", "20ms")
	code := p.setup(t)
	// The terms alice accepted, which a restore must keep.
	const accepted = "2026-05-12T09:30:00Z"
	p.mustCall(t, "PUT", "/v1/creators/alice", map[string]any{"campaign": "spring", "accepted_at": accepted}, 200)
	cli := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(binary, append(args, "--admin-url", "http://"+p.admin, "--admin-token", p.token)...).Output()
		if err != nil {
			t.Fatalf("clickgate %v failed: %v\n%s", args, err, out)
		}
		return out
	}
	file := filepath.Join(t.TempDir(), "catalog.json")
	cli("catalog", "export", "--file", file)
	flushAll(t, srv)
	if out := cli("catalog", "import", "--file", file); !strings.Contains(string(out), `"links": 1`) {
		t.Fatalf("unexpected import answer %s", out)
	}
	if cr := p.mustCall(t, "GET", "/v1/creators/alice?campaign=spring", nil, 200); cr["accepted_at"] != accepted {
		t.Fatalf("unexpected creator after the restore; got %v; want accepted_at %s", cr, accepted)
	}
	// A new link is served: the node took the restored catalog.
	out := p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": "alice",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	fresh := out["code"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := newClicker("127.7.0.1").click(p, fresh); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("a link created after the restore is not served: %v\n%s", err, p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := newClicker("127.7.0.2").click(p, code); err != nil {
		t.Fatalf("the restored link does not redirect: %v", err)
	}
	// Again: everything exists with the same values.
	if out := cli("catalog", "import", "--file", file); !strings.Contains(string(out), `"links": 1`) {
		t.Fatalf("unexpected second import answer %s", out)
	}
	var cat struct{ Links []map[string]any }
	if err := json.Unmarshal(cli("catalog", "export"), &cat); err != nil || len(cat.Links) != 2 {
		t.Fatalf("unexpected catalog after the restore: %v %v", cat, err)
	}
}

// flushAll empties the Redis server, as an operator's FLUSHALL would.
func flushAll(t *testing.T, srv *redistest.Server) {
	t.Helper()
	opt, err := redis.ParseURL(srv.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestLedgerBehind: after a FLUSHALL and a catalog restore, the store's
// totals are below the ledger's. The next flush keeps the ledger's, lists
// the creator as behind, logs it and counts it in
// clickgate_ledger_behind_total; nothing is paid twice when visits come
// again.
func TestLedgerBehind(t *testing.T) {
	srv := redistest.Start(t)
	data := t.TempDir()
	p := startServe(t, data, "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "1h", "--poll-interval", "20ms")
	code := p.setup(t)
	cli := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(binary, append(args, "--admin-url", "http://"+p.admin, "--admin-token", p.token)...).CombinedOutput()
		if err != nil {
			t.Fatalf("clickgate %v failed: %v\n%s\n%s", args, err, out, p.logs())
		}
		return out
	}
	type summary struct {
		Creators int
		Behind   []struct{ Campaign, Creator string }
	}
	flush := func() summary {
		t.Helper()
		var s summary
		if out := cli("flush", "--data", data); json.Unmarshal(out, &s) != nil {
			t.Fatalf("unexpected flush answer %s", out)
		}
		return s
	}
	clickAll(t, p, code, clickers(3), 1)
	p.stats(t) // decided
	if s := flush(); s.Creators != 1 || len(s.Behind) != 0 {
		t.Fatalf("unexpected first flush %+v", s)
	}
	file := filepath.Join(t.TempDir(), "catalog.json")
	cli("catalog", "export", "--file", file)
	flushAll(t, srv)
	cli("catalog", "import", "--file", file)
	// A visitor after the reset: the store counts from 0 again.
	if err := newClicker("127.8.0.1").click(p, code); err != nil {
		t.Fatal(err)
	}
	behind := func() float64 { return p.metrics(t)["clickgate_ledger_behind_total"] }
	behind0 := behind()
	if s := flush(); len(s.Behind) != 1 || s.Behind[0].Creator != "alice" || s.Behind[0].Campaign != "spring" {
		t.Fatalf("unexpected flush after the reset: %+v; want alice of spring behind", s)
	}
	if d := behind() - behind0; d != 1 {
		t.Fatalf("unexpected clickgate_ledger_behind_total after the flush; got %+v; want +1", d)
	}
	if !strings.Contains(p.logs(), "the store's totals are below the ledger's") {
		t.Fatalf("the shortfall was not logged:\n%s", p.logs())
	}
	rep, err := exec.Command(binary, "ledger", "verify", "--data", data, "--click-secret", e2eSecret).Output()
	if err != nil || !strings.Contains(string(rep), `"qualified": 3`) {
		t.Fatalf("the ledger did not keep its totals after the reset:\n%s", rep)
	}
}

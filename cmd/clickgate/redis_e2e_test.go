package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
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
	start := time.Now()
	code := a.setup(t)
	probe := newClicker("127.0.9.9")
	for {
		resp, err := probe.request(b, "HEAD", code)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 302 {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("link created on node a not served by node b within 1s: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cs := clickers(100)
	clickAll(t, a, code, cs, 10)
	// Stats flush the answering node's tally of unpaid counts; the probe's
	// prefetch was tallied on b.
	b.stats(t)
	wantStats(t, a.stats(t), 1001, 100, 900)

	// Every visitor counted through a is a duplicate through b, whose local
	// filter has never seen them: dedupe is shared through Redis.
	clickAll(t, b, code, cs, 1)
	wantStats(t, b.stats(t), 1101, 100, 1000)
	wantStats(t, a.stats(t), 1101, 100, 1000)
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
	opt, err := redis.ParseURL(srv.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
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

package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

const e2eSecret = "e2e-secret-0123456789abcdef0123456789"

func TestRedisEndToEnd(t *testing.T) {
	srv := redistest.Start(t)
	a := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret)
	b := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret)

	code := a.setup(t)
	cs := clickers(100)
	clickAll(t, a, code, cs, 10)
	wantStats(t, a.stats(t), 1000, 100, 900)

	// Every visitor counted through a is a duplicate through b, whose local
	// filter has never seen them: dedupe is shared through Redis.
	clickAll(t, b, code, cs, 1)
	wantStats(t, b.stats(t), 1100, 100, 1000)

	// A link created through a's admin API is served by b within a second.
	start := time.Now()
	out := a.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": "alice",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	code2 := out["code"].(string)
	probe := newClicker("127.0.9.9")
	for {
		err := probe.click(b, code2)
		if err == nil {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("link created on node a not served by node b within 1s: %s", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The probe, counted through b, is a duplicate through a.
	if err := probe.click(a, code2); err != nil {
		t.Fatal(err)
	}
	wantStats(t, a.stats(t), 1102, 101, 1001)
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
	startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret+"\n")
}

package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

// TestFDLimit: under a file descriptor limit too low for --max-conns, an
// explicit --max-conns is refused with what to change, and the default is
// lowered to fit, with a warning.
func TestFDLimit(t *testing.T) {
	run := func(args string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", "-c", "ulimit -n 600 && exec "+binary+
			" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --shutdown-timeout 1s --data "+t.TempDir()+" "+args).CombinedOutput()
		return string(out), err
	}
	out, err := run("--max-conns 1000")
	if err == nil || !strings.Contains(out, "--max-conns 1000 needs 1256 file descriptors, and this process may open 600") {
		t.Fatalf("unexpected result of --max-conns 1000 under ulimit -n 600: %v\n%s", err, out)
	}
	// The default fits itself: the node starts, says so, and serves.
	data := t.TempDir()
	p := startServeCmd(t, data, exec.Command("bash", "-c", "ulimit -n 600 && exec "+binary+
		" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data "+data))
	if !strings.Contains(p.logs(), `msg="lowered --max-conns to fit the file descriptor limit" max_conns=344`) {
		t.Fatalf("the default --max-conns was not lowered to fit:\n%s", p.logs())
	}
	code := p.setup(t)
	if err := newClicker("127.9.0.1").click(p, code); err != nil {
		t.Fatal(err)
	}
}

// TestCommitIntervalRefused: a negative --commit-interval, or one not
// under --commit-timeout (every second batch would be late), stops the
// start with a message naming the flag.
func TestCommitIntervalRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--commit-interval", "-1ms"},
		{"--commit-interval", "250ms"},
		{"--commit-interval", "20ms", "--commit-timeout", "10ms"},
	} {
		out := serveFails(t, append([]string{"--data", t.TempDir()}, args...)...)
		if !strings.Contains(out, "--commit-interval must be at least 0 and less than --commit-timeout") {
			t.Fatalf("unexpected refusal of %v:\n%s", args, out)
		}
	}
}

// TestVelocityCountersRefused: a --velocity-counters outside 4096 to
// 1<<22 stops the start with a message naming the flag.
func TestVelocityCountersRefused(t *testing.T) {
	for _, v := range []string{"0", "4095", "4194305", "-1"} {
		out := serveFails(t, "--data", t.TempDir(), "--velocity-counters", v)
		if !strings.Contains(out, "--velocity-counters must be 4096 to 4194304") {
			t.Fatalf("unexpected refusal of --velocity-counters %s:\n%s", v, out)
		}
	}
}

// TestKeysRefused: an admin token or app key that is too short, or one key
// for both, stops the start with a message naming the flag.
func TestKeysRefused(t *testing.T) {
	long, short := strings.Repeat("k", 32), strings.Repeat("s", 31)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin-token", "x", "--app-key", long}, "--admin-token must be at least 32"},
		{[]string{"--admin-token", short, "--app-key", long}, "--admin-token must be at least 32"},
		{[]string{"--admin-token", long, "--app-key", short}, "--app-key must be at least 32"},
		{[]string{"--admin-token", long, "--app-key", long}, "--app-key must differ from --admin-token"},
	} {
		out := serveFails(t, append([]string{"--data", t.TempDir()}, c.args...)...)
		if !strings.Contains(out, c.want) {
			t.Fatalf("unexpected refusal of %v; want it to say %q:\n%s", c.args, c.want, out)
		}
	}
}

// TestCommitInterval: on either store, a new visitor who comes within
// --commit-interval of the last append waits for the interval to pass,
// and is counted.
func TestCommitInterval(t *testing.T) {
	const interval = 300 * time.Millisecond
	for _, store := range []string{"embedded", "redis"} {
		t.Run(store, func(t *testing.T) {
			args := []string{"--click-secret", e2eSecret, "--commit-interval", interval.String(), "--commit-timeout", "5s"}
			if store == "redis" {
				args = append(args, "--redis", redistest.Start(t).URL(0))
			}
			p := startServe(t, t.TempDir(), args...)
			code := p.setup(t)
			start := time.Now()
			if err := newClicker("127.9.1.1").click(p, code); err != nil {
				t.Fatal(err)
			}
			if err := newClicker("127.9.1.2").click(p, code); err != nil {
				t.Fatal(err)
			}
			// The first append started after start, and the second not
			// within the interval of it: however slow the disk, the
			// second 302 comes no sooner.
			if took := time.Since(start); took < interval {
				t.Fatalf("two new visitors, one after the other, were redirected in %s; want the second append to wait for --commit-interval %s", took, interval)
			}
			wantStats(t, p.stats(t), 2, 2, 0)
		})
	}
}

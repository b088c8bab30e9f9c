package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeRedis runs the commands of README.md's "Running on Redis" as
// written, in one shell: a redis-server and two nodes started in the
// background, the ACL user, the catalog's export and import; then stops
// them as its text says (kill %1 %2, redis-cli shutdown). The only changes
// are the ports, free ones instead of 6379, 9080, 9081, 9090 and 9091
// (redis-cli is given its port with -p), and `make build`, which builds
// into the test's directory.
func TestReadmeRedis(t *testing.T) {
	for _, tool := range []string{"make", "redis-server", "redis-cli", "openssl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's Redis commands need %s: %s", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sh := blocks(section(t, readme, "## Running on Redis", "### "), "sh")
	if len(sh) != 3 {
		t.Fatalf("README's Running on Redis has %d sh blocks; want 3 (the nodes, the ACL user, the catalog)", len(sh))
	}
	// Five distinct ports, free a moment ago (on every address: the
	// README's nodes listen on all of them).
	ports := map[string]string{}
	var held []net.Listener
	for _, p := range []string{"6379", "9080", "9081", "9090", "9091"} {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		ports[p] = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range held {
		ln.Close()
	}
	port := regexp.MustCompile(`\b(6379|9080|9081|9090|9091)\b`)
	dir := t.TempDir()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	build := "make -s -C " + repo + " build BIN=" + filepath.Join(dir, "bin")
	redisCLI := "redis-cli -p " + ports["6379"]

	var script strings.Builder
	// A failed command ends the script: its background nodes go with it.
	script.WriteString("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n")
	for i, b := range sh {
		b = port.ReplaceAllStringFunc(b, func(p string) string { return ports[p] })
		b = regexp.MustCompile(`(?m)^make build$`).ReplaceAllString(b, build)
		b = regexp.MustCompile(`\bredis-cli\b`).ReplaceAllString(b, redisCLI)
		script.WriteString("echo '@@block " + strconv.Itoa(i) + "'\n" + b)
	}
	// What the README says to do afterwards.
	script.WriteString("echo '@@block stop'\nkill %1 %2\nwait\n" + redisCLI + " shutdown\n")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	// The nodes run in the background of the shell: past the deadline
	// (the README's wait for their health checks has none), its whole
	// process group is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	// mktemp -d makes the README's Redis and data directories here.
	cmd.Env = []string{"TMPDIR=" + dir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLICKGATE_") && !strings.HasPrefix(kv, "TMPDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		// --daemonize yes: the server is out of the group.
		exec.Command("redis-cli", "-p", ports["6379"], "shutdown", "nosave").Run()
	})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the README's Redis commands failed: %s\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	parts := regexp.MustCompile(`(?m)^@@block \w+\n`).Split(string(out), -1)[1:]
	if len(parts) != 4 {
		t.Fatalf("unexpected output of the README's Redis commands: %q", out)
	}
	t.Logf("nodes:\n%s\nACL:\n%s\ncatalog:\n%s\nstop:\n%s\nstderr:\n%s", parts[0], parts[1], parts[2], parts[3], stderr.String())
	// "The second runs without one, and says why": the dashboard's default
	// address is the first node's (or, on a busy machine, another's).
	if !strings.Contains(stderr.String(), "no dashboard: its default address is taken") {
		t.Fatalf("no node said why it runs without a dashboard:\n%s", stderr.String())
	}

	// "Both answer ok."
	if strings.Count(parts[0], "ok") < 2 {
		t.Fatalf("the nodes' health checks did not both answer ok:\n%s", parts[0])
	}
	if strings.TrimSpace(parts[1]) != "OK" {
		t.Fatalf("unexpected answer to the README's ACL SETUSER: %q", parts[1])
	}
	// The export wrote a JSON catalog, which the import read back.
	raw, err := os.ReadFile(filepath.Join(dir, "catalog.json"))
	if err != nil {
		t.Fatalf("the README's catalog export wrote no catalog.json: %s", err)
	}
	var catalog map[string]any
	if err := json.Unmarshal(raw, &catalog); err != nil {
		t.Fatalf("the README's catalog export wrote no JSON: %s\n%s", err, raw)
	}
	if !strings.Contains(parts[2], "{") {
		t.Fatalf("the README's catalog commands printed no answer:\n%s", parts[2])
	}
	// Each node shut down cleanly, node a flushing its ledger first.
	logs := stderr.String()
	if strings.Count(logs, `msg="shutting down"`) != 2 || strings.Count(logs, "msg=flushed") != 1 || strings.Contains(logs, "level=ERROR") {
		t.Fatalf("the nodes did not stop as the README says: want two shutdowns, one flush and no error:\n%s", logs)
	}
	if err := exec.Command("redis-cli", "-p", ports["6379"], "ping").Run(); err == nil {
		t.Fatalf("redis-server still answers after the README's redis-cli shutdown")
	}
}

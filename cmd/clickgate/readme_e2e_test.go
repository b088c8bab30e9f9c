package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestReadmeTour runs README.md's tour, its CLI steps, "Paying a
// campaign", and the commands of "Links, lists and QR codes" and
// "Webhooks" as written, in one shell, against the binary `make build`
// makes, started as `make run` would start it (in a directory of its own,
// with ./data), and checks the figures the README states. The only
// changes to the commands are the addresses: the node listens on free
// ports instead of :8080 and 127.0.0.1:8081, and the CLI is pointed at
// its admin listener with CLICKGATE_ADMIN_URL; `make build` builds into
// that directory's bin/.
func TestReadmeTour(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("the README's build needs make: %s", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tour := section(t, readme, "## A tour", "## ")
	paying := section(t, readme, "### Paying a campaign", "## ")
	tourBlocks := blocks(tour, "sh")
	payBlocks := blocks(paying, "sh")
	linkBlocks := blocks(section(t, readme, "#### Links, lists and QR codes", "#"), "sh")
	hookBlocks := blocks(section(t, readme, "#### Webhooks", "#"), "sh")
	if len(tourBlocks) != 2 || len(payBlocks) != 1 || len(linkBlocks) != 1 || len(hookBlocks) != 1 {
		t.Fatalf("the README's tour has %d sh blocks, Paying a campaign %d, Links %d, Webhooks %d; want 2, 1, 1 and 1",
			len(tourBlocks), len(payBlocks), len(linkBlocks), len(hookBlocks))
	}

	dir := t.TempDir()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	build := "make -s -C " + repo + " build BIN=" + filepath.Join(dir, "bin")
	if out, err := exec.Command("sh", "-c", build).CombinedOutput(); err != nil {
		t.Fatalf("make build failed: %s\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(dir, "bin", "clickgate"), "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	cmd.Dir = dir
	p := startServeCmd(t, filepath.Join(dir, "data"), cmd)

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range slices.Concat(tourBlocks, payBlocks, linkBlocks, hookBlocks) {
		b = strings.ReplaceAll(b, "http://127.0.0.1:8081", "http://"+p.admin)
		b = strings.ReplaceAll(b, "http://localhost:8080", "http://"+p.public)
		b = regexp.MustCompile(`(?m)^make build$`).ReplaceAllString(b, build)
		script.WriteString("echo '@@block " + strconv.Itoa(i) + "'\n" + b)
	}
	sh := exec.Command("bash", "-c", script.String())
	sh.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLICKGATE_") {
			sh.Env = append(sh.Env, kv)
		}
	}
	sh.Env = append(sh.Env, "CLICKGATE_ADMIN_URL=http://"+p.admin)
	var stderr bytes.Buffer
	sh.Stderr = &stderr
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("the README's commands failed: %s\n%s\nstderr:\n%s\n%s", err, out, stderr.String(), p.logs())
	}
	parts := regexp.MustCompile(`(?m)^@@block \d+\n`).Split(string(out), -1)[1:]
	if len(parts) != 5 {
		t.Fatalf("unexpected output of the README's commands: %q", out)
	}
	t.Logf("tour:\n%s\nCLI:\n%s\npaying:\n%s\nlinks:\n%s\nwebhooks:\n%s", parts[0], parts[1], parts[2], parts[3], parts[4])

	// The tour: what each click answered, and the stats the README states.
	for _, want := range []string{"HTTP/1.1 302", "cache-control: no-store", "set-cookie: cg_vid=",
		"location: https://apps.apple.com/app/id1?cg_click=", `og:title" content="Join me on Example"`} {
		if !strings.Contains(strings.ToLower(parts[0]), strings.ToLower(want)) {
			t.Fatalf("the tour's output lacks %q:\n%s", want, parts[0])
		}
	}
	stated := regexp.MustCompile("The stats show `([^`]+)`").FindSubmatch(tour)
	if stated == nil {
		t.Fatalf("README's tour states no stats (The stats show `...`)")
	}
	var want map[string]int64
	if err := json.Unmarshal([]byte("{"+strings.ReplaceAll(string(stated[1]), "\n", " ")+"}"), &want); err != nil || len(want) < 5 {
		t.Fatalf("cannot read the README's stated stats %q: %v", stated[1], err)
	}
	for i, part := range parts[:2] {
		got := lastObject(t, part)
		for k, v := range want {
			if got[k] != float64(v) {
				t.Fatalf("unexpected %s in the stats of block %d; got %v; want %d, as the README states\n%s", k, i, got[k], v, part)
			}
		}
	}
	// The CLI: its build reports its version, and only the handle changed.
	version, _, _ := strings.Cut(parts[1], "\n")
	if version == "dev" || version == "" {
		t.Fatalf("bin/clickgate version of the README's build says %q", version)
	}
	if d, err := exec.Command("git", "-C", repo, "describe", "--tags", "--always", "--dirty").Output(); err == nil &&
		version != strings.TrimSpace(string(d)) {
		t.Fatalf("unexpected version of the README's build; got %q; want git describe's %q", version, strings.TrimSpace(string(d)))
	}
	creator := p.mustCall(t, "GET", "/v1/creators/alice?campaign=spring26", nil, 200)
	if creator["country"] != "US" || creator["handle"] != "@alice" || creator["status"] != "active" {
		t.Fatalf("unexpected creator after the CLI's steps: %v", creator)
	}

	// Paying a campaign: the statement's row as the README shows it (but
	// for its reference, which differs on every run), and a ledger that
	// verifies.
	row := regexp.MustCompile(`(?m)^maya,.*$`).Find(paying)
	if row == nil {
		t.Fatalf("README's Paying a campaign shows no statement row")
	}
	fields := strings.Split(string(row), ",")
	wantRow := strings.Join(fields[:len(fields)-1], ",") + ","
	if !strings.Contains(parts[2], "\n"+wantRow+"cg_") {
		t.Fatalf("the statement lacks the README's row %q:\n%s", wantRow, parts[2])
	}
	for _, want := range []string{`"user_id": "user-1001"`, "one click, one signup", "not payable yet", "after campaign", `"ok": true`} {
		if !strings.Contains(parts[2], want) {
			t.Fatalf("the payout steps' output lacks %q:\n%s", want, parts[2])
		}
	}

	// Links, lists and QR codes: the tour's link changed, disabled and
	// served again, its QR code written, the campaign's passthrough off.
	link := p.mustCall(t, "GET", "/v1/links/alice26", nil, 200)
	if dest, _ := link["destinations"].(map[string]any); dest["default"] != "https://example.com/join2" || dest["ios"] != nil || link["disabled"] != false {
		t.Fatalf("unexpected link after the README's link commands: %v", link)
	}
	if png, err := os.ReadFile(filepath.Join(dir, "alice26.png")); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("the README's links qr wrote no PNG: %v", err)
	}
	if c := p.mustCall(t, "GET", "/v1/campaigns/spring26", nil, 200); c["query_passthrough"] != false {
		t.Fatalf("unexpected campaign after the README's link commands: %v", c)
	}
	for _, want := range []string{`"code": "alice26"`, `"disabled": true`} {
		if !strings.Contains(parts[3], want) {
			t.Fatalf("the link commands' output lacks %q:\n%s", want, parts[3])
		}
	}
	// Webhooks: added, listed, removed.
	if !strings.Contains(parts[4], `"url": "https://app.example.com/hooks/clickgate"`) {
		t.Fatalf("the webhook commands' output shows no endpoint:\n%s", parts[4])
	}
	if hooks := p.mustCall(t, "GET", "/v1/webhooks", nil, 200); len(hooks["webhooks"].([]any)) != 0 {
		t.Fatalf("the README's webhook was not removed: %v", hooks)
	}
}

// section returns the part of md from the line heading to the next line
// starting with next.
func section(t *testing.T, md []byte, heading, next string) []byte {
	t.Helper()
	i := bytes.Index(md, []byte("\n"+heading+"\n"))
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	s := md[i+len(heading)+2:]
	if j := bytes.Index(s, []byte("\n"+next)); j >= 0 {
		s = s[:j]
	}
	return s
}

// blocks returns the fenced code blocks of md in language lang.
func blocks(md []byte, lang string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?ms)^```"+lang+"\n(.*?)^```$").FindAllSubmatch(md, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// lastObject decodes the last indented JSON object of out.
func lastObject(t *testing.T, out string) map[string]any {
	t.Helper()
	i := strings.LastIndex(out, "{\n")
	var m map[string]any
	if i < 0 || json.NewDecoder(strings.NewReader(out[i:])).Decode(&m) != nil {
		t.Fatalf("no JSON object at the end of:\n%s", out)
	}
	return m
}

package deploy

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDockerBuildContext builds the image's binary the way `docker build`
// would, without Docker: the files of the repository that ../.dockerignore
// lets into the build context are copied into a directory of their own,
// and the Dockerfile's `go mod download` and `go build` run there, with a
// VERSION build argument that the binary must report. The context must
// hold no state or secret (data/, .env), binary or git history. The
// documented --stop-timeout and the compose file's stop_grace_period must
// exceed serve's --shutdown-timeout, and the image must say STOPSIGNAL.
func TestDockerBuildContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), checkTimeout)
	defer cancel()
	ignore := readDockerignore(t, "../.dockerignore")
	for _, p := range []string{".git/HEAD", ".env", "data/admin-token", "data/click-secret", "data/ledger/ledger.jsonl",
		"data-a/app-key", "bin/clickgate", "clickgate", "ledger.test", "counter/ledger/ledger.test"} {
		if !ignore.excludes(p) {
			t.Fatalf("../.dockerignore lets %q into the build context", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/clickgate/main.go", "counter/ledger/testdata/check_ledger.py", "Dockerfile"} {
		if ignore.excludes(p) {
			t.Fatalf("../.dockerignore keeps %q out of the build context", p)
		}
	}

	// The build context: every file of the tree but those ignored.
	buildCtx := t.TempDir()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if ignore.excludes(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(buildCtx, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(buildCtx, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}

	img := loadDockerfile(t, dockerfile)
	src, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^STOPSIGNAL SIGTERM$`).Match(src) {
		t.Fatalf("%s: no STOPSIGNAL SIGTERM", dockerfile)
	}
	if !regexp.MustCompile(`(?m)^RUN go mod download$`).Match(src) {
		t.Fatalf("%s: no RUN go mod download", dockerfile)
	}
	for _, line := range []string{"go mod download", img.buildCmd} {
		if strings.Contains(line, "go build") {
			line = strings.Replace(os.Expand(line, func(k string) string {
				if k == "VERSION" {
					return "v9.9.9-test"
				}
				return img.args[k]
			}), img.out, filepath.Join(buildCtx, "out", img.binName), 1)
		}
		cmd := exec.CommandContext(ctx, "sh", "-c", line)
		cmd.Dir = buildCtx
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the Dockerfile's %q fails in the build context: %s\n%s", line, err, out)
		}
	}
	bin := filepath.Join(buildCtx, "out", img.binName)
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "v9.9.9-test" {
		t.Fatalf("unexpected version of the image's binary built with VERSION=v9.9.9-test; got %q, %v", out, err)
	}

	// Stopping: docker stop's timeout and compose's grace above the
	// node's own shutdown timeout.
	help, _ := exec.CommandContext(ctx, bin, "serve", "-h").CombinedOutput()
	m := regexp.MustCompile(`-shutdown-timeout duration\n.*\(default (\S+)\)`).FindSubmatch(help)
	if m == nil {
		t.Fatalf("serve -h shows no default --shutdown-timeout:\n%s", help)
	}
	shutdown, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	m = regexp.MustCompile(`--stop-timeout (\d+)`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s documents no docker run --stop-timeout", dockerfile)
	}
	if stop, _ := time.ParseDuration(string(m[1]) + "s"); stop <= shutdown {
		t.Fatalf("%s documents --stop-timeout %s; want more than serve's --shutdown-timeout %s", dockerfile, stop, shutdown)
	}
	vars := map[string]string{"CLICKGATE_CLICK_SECRET": "x", "CLICKGATE_ADMIN_TOKEN": "x", "CLICKGATE_APP_KEY": "x"}
	for _, s := range loadCompose(t, composeFile, vars) {
		if s.build && s.stopGrace <= shutdown {
			t.Fatalf("service %s has stop_grace_period %s; want more than serve's --shutdown-timeout %s", s.name, s.stopGrace, shutdown)
		}
		for port, host := range s.published {
			if port == "8081" && !strings.HasPrefix(host, "127.0.0.1:") {
				t.Fatalf("service %s publishes its admin listener on %q; want the host's loopback", s.name, host)
			}
		}
	}
}

// dockerignore is a .dockerignore's patterns, without exceptions (the
// check refuses "!").
type dockerignore []string

func readDockerignore(t *testing.T, path string) dockerignore {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d dockerignore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '!' {
			t.Fatalf("%s: the check does not read exceptions (%q)", path, line)
		}
		d = append(d, strings.TrimPrefix(filepath.ToSlash(filepath.Clean(line)), "/"))
	}
	return d
}

// excludes reports whether path (slash-separated, relative to the
// context) is kept out: a pattern matches it or a directory above it. A
// leading "**/" matches any number of directories.
func (d dockerignore) excludes(path string) bool {
	for _, p := range d {
		for cur := path; ; {
			if match(p, cur) {
				return true
			}
			i := strings.LastIndexByte(cur, '/')
			if i < 0 {
				break
			}
			cur = cur[:i]
		}
	}
	return false
}

func match(pattern, path string) bool {
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
		for {
			if match(rest, path) {
				return true
			}
			i := strings.IndexByte(path, '/')
			if i < 0 {
				return false
			}
			path = path[i+1:]
		}
	}
	ok, _ := filepath.Match(pattern, path)
	return ok
}

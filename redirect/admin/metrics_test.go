package admin

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestAppendHelp: a bare HELP line gets its text, other lines are kept.
func TestAppendHelp(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(appendHelp(nil, []byte(in))); got != want {
			t.Fatalf("unexpected exposition for %q; got %q; want %q", in, got, want)
		}
	}
	f("", "")
	f("# HELP clickgate_spool_bytes\n# TYPE clickgate_spool_bytes gauge\nclickgate_spool_bytes 0\n",
		"# HELP clickgate_spool_bytes "+metricHelp["clickgate_spool_bytes"]+"\n# TYPE clickgate_spool_bytes gauge\nclickgate_spool_bytes 0\n")
	f("# HELP x_unknown\n", "# HELP x_unknown\n")
	f("# HELP go_goroutines has one\n", "# HELP go_goroutines has one\n")
	f("# HELP clickgate_spool_bytes", "# HELP clickgate_spool_bytes "+metricHelp["clickgate_spool_bytes"]+"\n")
}

// TestMetricsHelp: every family of /metrics in this process has a HELP
// text and a TYPE. (TestMetricsExposition checks those of the real
// binary, with the Prometheus parser.)
func TestMetricsHelp(t *testing.T) {
	h := newHarness(t)
	var rc fasthttp.RequestCtx
	rc.Request.SetRequestURI("/metrics")
	rc.Request.Header.Set("Authorization", "Bearer "+token)
	h.api.Handle(&rc)
	if rc.Response.StatusCode() != 200 {
		t.Fatalf("unexpected /metrics status %d", rc.Response.StatusCode())
	}
	types := map[string]bool{}
	for line := range strings.Lines(string(rc.Response.Body())) {
		line = strings.TrimSuffix(line, "\n")
		if name, ok := strings.CutPrefix(line, "# HELP "); ok {
			if !strings.Contains(name, " ") {
				t.Errorf("unexpected family %s without a help text", name)
			}
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			types[strings.Fields(rest)[0]] = true
		}
		if strings.HasPrefix(line, "clickgate_") && strings.Contains(line, "vmrange") {
			t.Errorf("unexpected vmrange bucket %q", line)
		}
	}
	for _, name := range []string{"clickgate_commit_duration_seconds", "clickgate_redirect_duration_seconds", "go_goroutines"} {
		if !types[name] {
			t.Errorf("no TYPE of %s in /metrics", name)
		}
	}
}

// TestReadyz: /readyz needs no token, and answers 503 with the store's
// error while Ready fails; /healthz stays ok.
func TestReadyz(t *testing.T) {
	h := newHarness(t)
	var down error
	h.api.o.Ready = func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Fatal("unexpected /readyz check without a deadline")
		}
		return down
	}
	f := func(path string, want int, wantBody string) {
		t.Helper()
		var rc fasthttp.RequestCtx
		rc.Request.SetRequestURI(path)
		h.api.Handle(&rc)
		if got := rc.Response.StatusCode(); got != want || string(rc.Response.Body()) != wantBody {
			t.Fatalf("unexpected answer of %s; got %d %q; want %d %q", path, got, rc.Response.Body(), want, wantBody)
		}
	}
	f("/readyz", 200, "ready\n")
	down = errors.New("counter: store unavailable: i/o timeout")
	f("/readyz", 503, "not ready: store: counter: store unavailable: i/o timeout\n")
	f("/healthz", 200, "ok\n")
	down = nil
	f("/readyz", 200, "ready\n")
}

// TestMetricsInReadme: the README's table of metrics names every family
// that has a HELP text here, so an operator finds each in one of them.
func TestMetricsInReadme(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range metricHelp {
		if !strings.HasPrefix(name, "clickgate_") {
			continue
		}
		if !regexp.MustCompile("`" + name + `(\{[^}]*\})?` + "`").Match(readme) {
			t.Errorf("the README does not name metric %s", name)
		}
	}
	// And every metric the README names is one.
	for _, m := range regexp.MustCompile("`(clickgate_[a-z0-9_]+)(\\{[^}]*\\})?`").FindAllSubmatch(readme, -1) {
		name := string(m[1])
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if _, ok := metricHelp[name]; !ok {
			if _, ok := metricHelp[base]; !ok {
				t.Errorf("the README names metric %s, which no code exports", name)
			}
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

// scrape reads /metrics and parses it with the Prometheus text parser,
// which refuses a second HELP or TYPE of a family, a TYPE after its
// samples, a malformed histogram and a name that is not a Prometheus name.
func (p *proc) scrape(t *testing.T) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("cannot read /metrics: %s", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("unexpected /metrics status %d: %s", resp.StatusCode, raw)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %s\n%s", err, raw)
	}
	return fams, string(raw)
}

// value returns the value of the sample of family name whose labels
// include labels (name, value pairs); it fails when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s in /metrics", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool {
				return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with labels %v in /metrics", name, labels)
	return 0
}

// TestMetricsExposition runs the real binary, clicks, flushes, and parses
// its /metrics with the Prometheus text parser: every family has a HELP
// text and a TYPE, every histogram has le buckets (no VictoriaMetrics
// vmrange), clicks by reason add up to the creator's stats, every redirect
// is in the latency histogram, and the flush and payout figures are there.
// Every metric the Grafana dashboard queries is in /metrics.
func TestMetricsExposition(t *testing.T) {
	p := startServe(t, t.TempDir())
	code := p.setup(t)
	people := clickers(3)
	redirects := 0
	for _, c := range append(people, people[0]) { // 3 new visitors and one duplicate
		if err := c.click(p, code); err != nil {
			t.Fatal(err)
		}
		redirects++
	}
	// A crawler is redirected and counted as a bot.
	bot := newClicker("127.0.9.9")
	req, _ := http.NewRequest("GET", "http://"+p.public+"/"+code, nil)
	req.Header.Set("User-Agent", "curl/8.5.0")
	resp, err := bot.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 {
		t.Fatalf("unexpected status of a bot's click; got %d; want 302", resp.StatusCode)
	}
	redirects++
	p.mustCall(t, "POST", "/v1/flush", nil, 200)

	st := p.stats(t)
	var fams map[string]*dto.MetricFamily
	var raw string
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The judge decides a visit within a second of its commit.
		fams, raw = p.scrape(t)
		if value(t, fams, "clickgate_clicks_total", "reason", "qualified") == st["qualified"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	if strings.Contains(raw, "vmrange") {
		t.Fatalf("/metrics has vmrange buckets, which histogram_quantile cannot read:\n%s", raw)
	}
	for name, f := range fams {
		if strings.TrimSpace(f.GetHelp()) == "" {
			t.Errorf("unexpected empty HELP of %s", name)
		}
		if f.GetType() == dto.MetricType_UNTYPED {
			t.Errorf("unexpected family %s without TYPE", name)
		}
		if f.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		// The parser reads buckets from le labels only.
		for _, m := range f.Metric {
			if b := m.GetHistogram().GetBucket(); len(b) < 2 {
				t.Errorf("unexpected histogram %s without le buckets: %v", name, m)
			}
		}
	}
	for _, name := range []string{"clickgate_commit_duration_seconds", "clickgate_redirect_duration_seconds", "clickgate_ledger_flush_duration_seconds"} {
		if fams[name].GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("unexpected type of %s; got %v; want histogram", name, fams[name].GetType())
		}
	}

	f := func(name string, want float64, labels ...string) {
		t.Helper()
		if got := value(t, fams, name, labels...); got != want {
			t.Errorf("unexpected %s%v; got %v; want %v", name, labels, got, want)
		}
	}
	var clicks float64
	for _, m := range fams["clickgate_clicks_total"].Metric {
		clicks += m.GetCounter().GetValue()
	}
	if clicks != st["clicks"] {
		t.Errorf("unexpected sum of clickgate_clicks_total; got %v; want the stats' clicks %v (stats %v)", clicks, st["clicks"], st)
	}
	f("clickgate_clicks_total", 3, "reason", "qualified")
	f("clickgate_clicks_total", 1, "reason", "duplicates")
	f("clickgate_clicks_total", 1, "reason", "bots")
	f("clickgate_redirect_duration_seconds", float64(redirects))
	f("clickgate_build_info", 1, "version", version, "goversion", runtime.Version())
	if free := value(t, fams, "clickgate_data_free_bytes"); free <= 0 {
		t.Errorf("unexpected clickgate_data_free_bytes of a node with room; got %v", free)
	}
	f("clickgate_ledger_flushes_total", 1, "result", "ok")
	f("clickgate_ledger_flush_duration_seconds", 1)
	f("clickgate_campaign_payable", 0, "campaign", "spring")
	f("clickgate_campaign_earned_cents", 0, "campaign", "spring")
	f("clickgate_campaign_creators", 1, "campaign", "spring", "status", "payable")
	f("clickgate_campaign_creators", 0, "campaign", "spring", "status", "suspended")
	if v := value(t, fams, "clickgate_ledger_last_flush_timestamp_seconds"); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("unexpected last flush time %v", v)
	}

	// Every metric the dashboard queries exists.
	for _, name := range dashboardMetrics(t) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && fams[b].GetType() == dto.MetricType_HISTOGRAM {
				base = b
			}
		}
		if fams[base] == nil {
			t.Errorf("the dashboard queries %s, which is not in /metrics", name)
		}
	}

	// The embedded store is ready once open.
	if status, body := get(t, "http://"+p.admin+"/readyz"); status != 200 || body != "ready\n" {
		t.Fatalf("unexpected /readyz of the embedded store; got %d %q; want 200 ready", status, body)
	}
}

var metricNameRE = regexp.MustCompile(`\b(clickgate_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+)`)

// dashboardMetrics returns the metric names in the queries of the Grafana
// dashboard.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/clickgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %s", err)
	}
	var names []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			names = append(names, metricNameRE.FindAllString(tg.Expr, -1)...)
		}
	}
	if len(names) < 10 {
		t.Fatalf("unexpected dashboard with %d metric queries", len(names))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("cannot GET %s: %s", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyz: /readyz on the admin listener fails, with a reason, while
// Redis is frozen (SIGSTOP), within its ping timeout, and passes again once
// Redis is back, and fails while Redis may evict any key or is at its
// maxmemory, on which a node starts and redirects all the same; /healthz
// says ok all along. go-redis's own messages go to
// the process's slog logger: every line of its log is a slog record.
func TestReadyz(t *testing.T) {
	srv := redistest.Start(t)
	p := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "0")
	admin := "http://" + p.admin
	f := func(path string, want int, wantBody string) {
		t.Helper()
		start := time.Now()
		status, body := get(t, admin+path)
		if status != want || !strings.Contains(body, wantBody) {
			t.Fatalf("unexpected %s; got %d %q; want %d %q", path, status, body, want, wantBody)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("unexpected %s answered in %s", path, d)
		}
	}
	f("/readyz", 200, "ready")
	f("/healthz", 200, "ok")

	// On Redis the judges decide visits behind the edge, and count them.
	code := p.setup(t)
	people := clickers(2)
	for _, c := range append(people, people[0]) {
		if err := c.click(p, code); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams, _ := p.scrape(t)
		q, d := value(t, fams, "clickgate_clicks_total", "reason", "qualified"), value(t, fams, "clickgate_clicks_total", "reason", "duplicates")
		if q == 2 && d == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unexpected clicks by reason on Redis; got %v qualified, %v duplicates; want 2, 1", q, d)
		}
		time.Sleep(50 * time.Millisecond)
	}

	srv.Pause(t)
	f("/readyz", 503, "not ready: store:")
	f("/healthz", 200, "ok")
	srv.Resume(t)

	deadline = time.Now().Add(10 * time.Second)
	for {
		status, _ := get(t, admin+"/readyz")
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not pass within 10s of Redis resumed; got %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A Redis that may evict any key is not ready either.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	if err := rdb.ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	f("/readyz", 503, "maxmemory-policy allkeys-lru")
	if err := rdb.ConfigSet(context.Background(), "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	f("/readyz", 200, "ready")
	// Nor is one at its maxmemory, which refuses writes.
	if err := rdb.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	f("/readyz", 503, "is full")
	fams, _ := p.scrape(t)
	if v := value(t, fams, "clickgate_readiness_failures_total"); v != 3 {
		t.Fatalf("unexpected clickgate_readiness_failures_total; got %v; want 3", v)
	}
	// A node starts on it, and redirects; the visit waits in the spool
	// until Redis has room.
	p.stop(t)
	p = startServe(t, p.data, "--redis", srv.URL(0), "--click-secret", e2eSecret, "--flush-interval", "0")
	admin = "http://" + p.admin
	f("/readyz", 503, "is full")
	if err := clickers(3)[2].click(p, code); err != nil {
		t.Fatalf("a click was not redirected on a full Redis: %s", err)
	}
	if err := rdb.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	f("/readyz", 200, "ready")
	for deadline := time.Now().Add(10 * time.Second); statInt(t, p.stats(t), "qualified") != 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the visit spooled while Redis was full was not counted; got %v", p.stats(t))
		}
	}
	p.stop(t)
	for _, line := range strings.Split(strings.TrimSpace(p.logs()), "\n") {
		if !strings.HasPrefix(line, "time=") {
			t.Fatalf("unexpected log line that is not slog's: %q", line)
		}
	}
}

// TestReadyzLogBroken: an embedded node whose visit log cannot be written
// (here, the file size limit of `ulimit -f`: a real EFBIG from the kernel,
// as a full disk gives ENOSPC) fails /readyz from its start, as it cannot
// write the zeros its log's appends go in; still redirects every click,
// spools the visits, logs why it cannot commit, and says in /readyz. Once
// the limit is lifted, as room is made on a full disk, the node writes the
// zeros by itself, with no restart: /readyz passes and the spooled visits
// are counted, each once.
func TestReadyzLogBroken(t *testing.T) {
	data := t.TempDir()
	// 512 KiB: the store, its catalog and checkpoints fit; the 1 MiB of
	// zeros ahead of the visit log's records do not. The soft limit
	// only, which the test may raise again.
	cmd := exec.Command("bash", "-c", `ulimit -S -f 512 && exec "$0" "$@"`, binary, "serve", "--listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--data", data, "--flush-interval", "0")
	p := startServeCmd(t, data, cmd)
	admin := "http://" + p.admin
	if status, body := get(t, admin+"/readyz"); status != 503 || !strings.Contains(body, "the visit log runs out of room") || !strings.Contains(body, "file too large") {
		t.Fatalf("unexpected /readyz of a new node with no room for its visit log; got %d %q; want 503 and why", status, body)
	}
	code := p.setup(t)
	for _, c := range clickers(3) {
		if err := c.click(p, code); err != nil {
			t.Fatalf("a click was not redirected with the visit log broken: %s", err)
		}
	}
	status, body := get(t, admin+"/readyz")
	if status != 503 || !strings.Contains(body, "the visit log cannot take visits") || !strings.Contains(body, "file too large") {
		t.Fatalf("unexpected /readyz with the visit log broken; got %d %q; want 503 and why", status, body)
	}
	if logs := p.logs(); !strings.Contains(logs, "cannot commit visits") || !strings.Contains(logs, `level=WARN msg="visit log: no room ahead of its records`) {
		t.Fatalf("the node did not log that it cannot commit, and why, in its format:\n%s", logs)
	}
	if m := p.metrics(t); m["clickgate_visits_spooled_total"] != 3 {
		t.Fatalf("unexpected visits spooled; got %v; want 3", m["clickgate_visits_spooled_total"])
	}
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(p.cmd.Process.Pid), "--fsize=unlimited").CombinedOutput(); err != nil {
		t.Fatalf("cannot lift the node's file size limit: %s\n%s", err, out)
	}
	// The spool is replayed once the log takes visits again: clicks as
	// well as qualified are exact.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := p.stats(t)
		if statInt(t, st, "qualified") == 3 && statInt(t, st, "clicks") == 3 {
			break
		} else if statInt(t, st, "clicks") > 3 || time.Now().After(deadline) {
			t.Fatalf("unexpected stats once the log can be written; got %v; want 3 clicks, 3 qualified", st)
		}
	}
	if status, body := get(t, admin+"/readyz"); status != 200 {
		t.Fatalf("unexpected /readyz once the log can be written; got %d %q; want 200", status, body)
	}
	if logs := p.logs(); !strings.Contains(logs, "visit log: room ahead of its records again") {
		t.Fatalf("the node did not log the room regained:\n%s", logs)
	}
	// A restart finds the same counts.
	p.stop(t)
	p = startServe(t, data, "--flush-interval", "0")
	if st := p.stats(t); statInt(t, st, "qualified") != 3 || statInt(t, st, "clicks") != 3 {
		t.Fatalf("unexpected stats after a restart; got %v; want 3 clicks, 3 qualified", st)
	}
}

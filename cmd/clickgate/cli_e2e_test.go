package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCLIFields runs the admin commands of the real binary: every field
// the API has, partial updates, dates as dates, subcommands listed on -h,
// and a 404 that names what is missing. Bad input exits non-zero and
// changes nothing.
func TestCLIFields(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	cli := cliRun{t, p}
	run, ok, refused := cli.run, cli.ok, cli.refused
	field := func(obj map[string]any, path ...string) any {
		t.Helper()
		var v any = obj
		for _, k := range path {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	want := func(obj map[string]any, want any, path ...string) {
		t.Helper()
		if got := field(obj, path...); got != want {
			t.Fatalf("unexpected %s; got %v; want %v (in %v)", strings.Join(path, "."), got, want, obj)
		}
	}
	campaign := func() map[string]any { return p.mustCall(t, "GET", "/v1/campaigns/fall", nil, 200) }

	// Every command with subcommands lists them on -h.
	for cmd, subs := range map[string][]string{
		"campaigns": {"put", "get"}, "creators": {"put", "get"}, "links": {"create", "get", "import"},
		"catalog": {"export", "import"}, "ledger": {"verify"},
	} {
		stdout, _, code := run(cmd, "-h")
		for _, sub := range subs {
			if code != 0 || !strings.Contains(stdout, "clickgate "+cmd+" "+sub) {
				t.Fatalf("unexpected %s -h; got exit %d\n%s\nwant %q listed", cmd, code, stdout, cmd+" "+sub)
			}
		}
		refused(2, "clickgate "+cmd+" "+subs[0], cmd)
	}

	// Dates as days or RFC 3339 times; durations; the preview card.
	c := ok("campaigns", "put", "fall", "--starts-at", "2027-01-01", "--ends-at", "2027-02-12T09:00:00-07:00",
		"--signup-grace", "72h", "--attribution-window", "168h", "--preview-title", "Join me", "--preview-description", "Sign up")
	want(c, "2027-01-01T00:00:00Z", "starts_at")
	want(c, "2027-02-12T16:00:00Z", "ends_at")
	want(c, "72h0m0s", "signup_grace")
	want(c, "168h0m0s", "attribution_window")
	want(c, "Join me", "preview", "title")
	want(c, "Sign up", "preview", "description")
	// One field changes one field.
	c = ok("campaigns", "put", "fall", "--preview-image", "https://cdn.example.com/card.png")
	want(c, "Join me", "preview", "title")
	want(c, "https://cdn.example.com/card.png", "preview", "image")
	want(c, "72h0m0s", "signup_grace")
	c = ok("campaigns", "put", "fall", "--eligible-countries", "US,ca")
	if got := field(c, "eligible_countries"); len(got.([]any)) != 2 {
		t.Fatalf("unexpected eligible_countries; got %v", got)
	}
	before := campaign()
	refused(2, `--starts-at "01/02/2027": want a day (2026-05-11`, "campaigns", "put", "fall", "--starts-at", "01/02/2027")
	refused(2, `--ends-at "2027-02-30"`, "campaigns", "put", "fall", "--ends-at", "2027-02-30")
	refused(2, `--signup-grace "3 days": want a duration`, "campaigns", "put", "fall", "--signup-grace", "3 days")
	refused(1, `422 Unprocessable Entity: preview.image`, "campaigns", "put", "fall", "--preview-image", "http://insecure.example.com/a.png")
	if after := campaign(); !jsonEqual(before, after) {
		t.Fatalf("refused puts changed the campaign; got %v; want %v", after, before)
	}
	refused(2, "creators put: --campaign is required", "creators", "put", "alice", "--country", "US")
	// What the flag parser refuses is a usage error too.
	refused(2, "flag provided but not defined: -bogus", "links", "create", "--bogus", "x")
	refused(2, "flag needs an argument: -default", "links", "create", "--default")
	refused(2, `invalid value "abc" for flag -limit`, "links", "list", "--limit", "abc")
	refused(2, "flag provided but not defined: -bogus", "serve", "--bogus")

	// A creator's fields one at a time.
	cr := ok("creators", "put", "alice", "--campaign", "fall", "--country", "US", "--handle", "@alice")
	want(cr, "active", "status")
	cr = ok("creators", "put", "alice", "--campaign", "fall", "--handle", "@alice_b")
	want(cr, "US", "country")
	want(cr, "@alice_b", "handle")
	cr = ok("creators", "put", "alice", "--campaign", "fall", "--status", "invited")
	want(cr, "@alice_b", "handle")
	want(cr, "invited", "status")
	want(ok("creators", "get", "alice", "--campaign", "fall"), "invited", "status")
	refused(1, `422 Unprocessable Entity: country "FR" is not eligible`, "creators", "put", "alice", "--campaign", "fall", "--country", "FR")
	want(ok("creators", "get", "alice", "--campaign", "fall"), "US", "country")

	// A link with its own preview.
	l := ok("links", "create", "--campaign", "fall", "--creator", "alice", "--code", "alice-fall",
		"--default", "https://example.com/join", "--preview-title", "Alice's invite")
	want(l, "alice-fall", "code")
	l = ok("links", "get", "alice-fall")
	want(l, "Alice's invite", "preview", "title")
	want(l, "https://example.com/join", "destinations", "default")

	// A 404 names what is missing.
	refused(1, `404 Not Found: creator "bob" does not exist in campaign "fall"`, "creators", "get", "bob", "--campaign", "fall")
	refused(1, `404 Not Found: campaign "winter" does not exist`, "creators", "get", "alice", "--campaign", "winter")
	refused(1, `404 Not Found: campaign "winter" does not exist`, "campaigns", "get", "winter")
	refused(1, `404 Not Found: link "NOPE1234" does not exist`, "links", "get", "NOPE1234")
	refused(1, `404 Not Found: creator "bob" does not exist in campaign "fall"`, "stats", "--campaign", "fall", "--creator", "bob")
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// cliRun runs the real binary's admin commands against p: run gives its
// output and exit code, ok the JSON object it printed (exit 0 wanted),
// refused checks an exit code and a message on stderr.
type cliRun struct {
	t testing.TB
	p *proc
}

func (c cliRun) run(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "CLICKGATE_ADMIN_URL=http://"+c.p.admin, "CLICKGATE_DATA="+c.p.data)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func (c cliRun) ok(args ...string) map[string]any {
	c.t.Helper()
	stdout, stderr, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("clickgate %s exited %d:\n%s", strings.Join(args, " "), code, stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		c.t.Fatalf("clickgate %s printed no JSON object: %q", strings.Join(args, " "), stdout)
	}
	return out
}

func (c cliRun) refused(wantCode int, wantErr string, args ...string) {
	c.t.Helper()
	_, stderr, code := c.run(args...)
	if code != wantCode || !strings.Contains(stderr, wantErr) {
		c.t.Fatalf("unexpected result of clickgate %s; got exit %d %q; want exit %d and %q", strings.Join(args, " "), code, stderr, wantCode, wantErr)
	}
}

package main

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect"
)

// TestConversionsEndToEnd reports signups to the binary with the click ids
// of its own redirects, on each store: only a person's click earns one, for
// one user.
func TestConversionsEndToEnd(t *testing.T) {
	t.Run("Embedded", func(t *testing.T) { testConversions(t) })
	t.Run("Redis", func(t *testing.T) {
		srv := redistest.Start(t)
		testConversions(t, "--redis", srv.URL(0), "--click-secret", e2eSecret)
	})
}

func testConversions(t *testing.T, args ...string) {
	data := t.TempDir()
	p := startServe(t, data, args...)
	code := p.setup(t)
	appKey := readFile(t, filepath.Join(data, "app-key"))

	// clickID follows the link from ip and returns the click id of the
	// redirect.
	clickID := func(ip, method string, headers ...string) string {
		t.Helper()
		resp, err := newClicker(ip).request(p, method, code, headers...)
		if err != nil || resp.StatusCode != 302 {
			t.Fatalf("unexpected answer to %s from %s: %v, %v", method, ip, resp, err)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		id := loc.Query().Get(redirect.DefaultClickParam)
		if id == "" {
			t.Fatalf("no click id in %q", loc)
		}
		return id
	}
	convert := func(id, user string, status int, msg string) {
		t.Helper()
		got, out := p.call(t, "POST", "/v1/conversions", appKey, map[string]any{"click_id": id, "user_id": user, "occurred_at": time.Now().UTC()})
		js, _ := json.Marshal(out)
		if got != status || !strings.Contains(string(js), msg) {
			t.Fatalf("unexpected answer for user %q; got %d %v; want %d containing %q", user, got, out, status, msg)
		}
	}
	const notAttributable = "not an attributable person's click"

	convert(clickID("127.0.40.1", "GET", "User-Agent", "curl/8.5.0"), "user-1", 422, notAttributable)
	convert(clickID("127.0.40.2", "HEAD", "User-Agent", e2eChrome), "user-1", 422, notAttributable)
	browser := clickID("127.0.40.3", "GET", "User-Agent", e2eChrome)
	convert(browser, "user-1", 201, `"duplicate":false`)
	convert(browser, "user-1", 200, `"duplicate":true`)
	convert(browser, "user-2", 409, "used by another user")
	// The same person's next click is another id, which another user may
	// come with.
	again := clickID("127.0.40.3", "GET", "User-Agent", e2eChrome)
	if again == browser {
		t.Fatalf("unexpected equal click ids %q of two clicks", again)
	}
	convert(again, "user-2", 201, `"duplicate":false`)

	got := p.stats(t)
	if got["signups"] != 2.0 || got["qualified"] != 1.0 || got["duplicates"] != 1.0 {
		t.Fatalf("unexpected stats; got %v; want signups=2 qualified=1 duplicates=1", got)
	}
}

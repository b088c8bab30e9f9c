package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPayoutsGolden runs a campaign that ends a few seconds after it is
// seeded, with no click after its end, through the binary on both stores,
// and compares the sealed statement byte for byte with
// testdata/payouts.golden.csv. The amounts, checked by hand:
//
//	alice  3 qualified, 1 signup: 1 block × 500 + 1 × 1000 = 1500, capped at 1200
//	bob    2 qualified:           1 block × 500            =  500
//	carol  suspended; its click is "inactive", not qualified: 0
//	sam    suspended: 0
//
// "running": the node keeps running with a 1 s flush interval, and the
// statement is served within one flush interval of the end. "stopped":
// the node, flushing hourly, is stopped after the end, and the flush at
// stop seals it. Then a backdated conversion, carol's reactivation and a
// price change, made after the statement was sealed, leave it unchanged.
func TestPayoutsGolden(t *testing.T) {
	for _, store := range []string{"embedded", "redis"} {
		for _, mode := range []string{"running", "stopped"} {
			t.Run(store+"/"+mode, func(t *testing.T) {
				t.Parallel()
				var args []string
				if store == "redis" {
					args = []string{"--redis", redistest.Start(t).URL(0), "--click-secret", e2eSecret}
				}
				testPayoutsGolden(t, mode == "running", args)
			})
		}
	}
}

const flushEvery = time.Second

func testPayoutsGolden(t *testing.T, running bool, args []string) {
	data := t.TempDir()
	interval := time.Hour
	if running {
		interval = flushEvery
	}
	p := startServe(t, data, append(args, "--flush-interval", interval.String())...)
	app := readFile(t, filepath.Join(data, "app-key"))
	now := time.Now().UTC()
	end := now.Add(6 * time.Second).Truncate(time.Second)
	p.mustCall(t, "PUT", "/v1/campaigns/golden", map[string]any{"starts_at": now.Add(-time.Hour), "ends_at": end,
		"eligible_countries": []string{"US"}, "visit_block_size": 2, "visit_block_reward_cents": 500,
		"signup_reward_cents": 1000, "cap_cents": 1200, "signup_grace": "0s"}, 201)
	code := map[string]string{}
	for _, c := range []struct{ id, handle, status string }{
		{"alice", "@alice", "active"}, {"bob", "=bob", "active"}, {"carol", "carol", "suspended"}, {"sam", "sam", "suspended"}} {
		p.mustCall(t, "PUT", "/v1/creators/"+c.id, map[string]any{"campaign": "golden", "country": "US", "handle": c.handle, "status": c.status}, 201)
		code[c.id] = c.id + "-link"
		p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "golden", "creator": c.id, "code": code[c.id],
			"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	}
	var aliceClicks, carolClicks []string
	for creator, n := range map[string]int{"alice": 3, "bob": 2, "carol": 1} {
		for i := range n {
			resp, err := newClicker(fmt.Sprintf("127.3.%d.%d", len(creator), i+1)).request(p, "GET", code[creator], "User-Agent", e2eChrome)
			if err != nil || resp.StatusCode != 302 {
				t.Fatalf("click on %s failed: %v", creator, err)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			switch creator {
			case "alice":
				aliceClicks = append(aliceClicks, loc.Query().Get("cg_click"))
			case "carol":
				carolClicks = append(carolClicks, loc.Query().Get("cg_click"))
			}
		}
	}
	if status, out := convert(t, p, app, aliceClicks[0], "new-user-1", time.Now()); status != 201 {
		t.Fatalf("unexpected conversion answer; got %d %v; want 201", status, out)
	}
	// Not payable while the campaign runs, and the answer says when.
	if status, out := p.call(t, "GET", "/v1/campaigns/golden/payouts?format=json", p.token, nil); status != 409 ||
		!strings.Contains(fmt.Sprint(out["error"]), "payable after "+end.Format(time.RFC3339)) ||
		!strings.Contains(fmt.Sprint(out["error"]), "the next flush is due at") {
		t.Fatalf("unexpected payouts answer before the end; got %d %v; want 409 saying when", status, out)
	}
	// Before the first flush the campaign is not in the ledger; running,
	// a flush (every second) may have written it already: not payable.
	if out, err := payoutsCLI(p, args); err == nil || !strings.Contains(string(out), "not in the ledger: not flushed yet") &&
		!(running && strings.Contains(string(out), "not payable yet: campaign \"golden\" is payable after "+end.Format(time.RFC3339))) {
		t.Fatalf("clickgate payouts before the end: unexpected %v\n%s", err, out)
	}

	var got []byte
	if running {
		// No click after the end: the flusher alone makes it payable.
		deadline := end.Add(flushEvery + 3*time.Second) // one interval, and slack for a loaded machine
		for {
			status, body := p.raw(t, "GET", "/v1/campaigns/golden/payouts?format=csv")
			if status == 200 {
				got = body
				break
			}
			if status != 409 || time.Now().After(deadline) {
				t.Fatalf("statement not served within one flush interval of the end: %d %s", status, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The flush logs after it wrote the ledger, which the answer read.
		for logged := time.Now().Add(5 * time.Second); !strings.Contains(p.logs(), "sealed=[golden]"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(logged) {
				t.Fatalf("no flush logged the sealed statement:\n%s", p.logs())
			}
		}
	} else {
		time.Sleep(time.Until(end.Add(100 * time.Millisecond)))
		p.stop(t)
		out, err := payoutsCLI(p, args)
		if err != nil {
			t.Fatalf("clickgate payouts after the stop failed: %v\n%s", err, out)
		}
		got = out
		p = startServe(t, data, append(args, "--flush-interval", interval.String())...)
	}
	want := golden(t, got)

	// After the seal, nothing changes what is paid.
	if status, out := convert(t, p, app, aliceClicks[1], "new-user-2", end.Add(-time.Second)); status != 409 ||
		!strings.Contains(fmt.Sprint(out["error"]), "after") {
		t.Fatalf("unexpected answer to a backdated conversion; got %d %v; want 409", status, out)
	}
	p.mustCall(t, "PUT", "/v1/creators/carol", map[string]any{"campaign": "golden", "status": "active"}, 200)
	if status, out := convert(t, p, app, carolClicks[0], "new-user-3", end.Add(-time.Second)); status != 409 && status != 422 {
		t.Fatalf("unexpected answer to a reactivated creator's conversion; got %d %v; want 409 or 422", status, out)
	}
	if status, out := p.call(t, "PUT", "/v1/campaigns/golden", p.token, map[string]any{"signup_reward_cents": 50000}); status != 422 ||
		!strings.HasPrefix(fmt.Sprint(out["error"]), "signup_reward_cents cannot change") {
		t.Fatalf("unexpected answer to a price change; got %d %v; want 422 naming signup_reward_cents", status, out)
	}
	flushed := p.mustCall(t, "POST", "/v1/flush", nil, 200)
	if fmt.Sprint(flushed["sealed"]) != "[]" || flushed["last_seq"].(float64) < 3 {
		t.Fatalf("unexpected flush answer after the seal; got %v; want nothing sealed again", flushed)
	}
	if status, body := p.raw(t, "GET", "/v1/campaigns/golden/payouts?format=csv"); status != 200 || !bytes.Equal(body, want) {
		t.Fatalf("the sealed statement changed:\n%s\nwant:\n%s", body, want)
	}
	p.stop(t)
	if out, err := payoutsCLI(p, args); err != nil || !bytes.Equal(out, want) {
		t.Fatalf("clickgate payouts differs from the sealed statement: %v\n%s", err, out)
	}
	// The statement names the head it came from, which the ledger extends.
	var st struct {
		LedgerHead string `json:"ledger_head"`
	}
	out, err := payoutsCLI(p, args, "--format", "json")
	if err := json.Unmarshal(out, &st); err != nil || len(st.LedgerHead) != 64 {
		t.Fatalf("unexpected JSON statement: %v\n%s", err, out)
	}
	if out, err = verifyCLI(p, args, "--head", st.LedgerHead); err != nil {
		t.Fatalf("ledger verify --head of the statement's head failed: %v\n%s", err, out)
	}
}

// golden compares got with testdata/payouts.golden.csv (rewritten with
// -update) and returns the file's bytes.
func golden(t *testing.T, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", "payouts.golden.csv")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("payouts differ from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
	return want
}

// convert reports a signup with the app key.
func convert(t *testing.T, p *proc, appKey, clickID, user string, at time.Time) (int, map[string]any) {
	t.Helper()
	return p.call(t, "POST", "/v1/conversions", appKey, map[string]any{"click_id": clickID, "user_id": user, "occurred_at": at.UTC()})
}

// raw makes an admin call with the admin token and returns the raw body.
func (p *proc) raw(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+p.admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("cannot call admin %s %s: %s", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// payoutsCLI runs clickgate payouts on the node's ledger; stdout only.
func payoutsCLI(p *proc, storeArgs []string, args ...string) ([]byte, error) {
	return ledgerCLI(p, "payouts", storeArgs, append([]string{"--campaign", "golden"}, args...)...)
}

func verifyCLI(p *proc, storeArgs []string, args ...string) ([]byte, error) {
	return ledgerCLI(p, "ledger verify", storeArgs, args...)
}

// ledgerCLI runs a ledger command of the binary on p's ledger, with the
// click secret the node was given, if any.
func ledgerCLI(p *proc, cmd string, storeArgs []string, args ...string) ([]byte, error) {
	all := append(strings.Fields(cmd), "--data", p.data)
	if s := secretFromArgs(storeArgs); s != "" {
		all = append(all, "--click-secret", s)
	}
	c := exec.Command(binary, append(all, args...)...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

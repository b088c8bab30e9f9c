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
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPayoutsGolden runs a seeded campaign through the binary (clicks, a
// signup, the flush at stop) and compares `clickgate payouts` byte for byte
// with testdata/payouts.golden.csv. The amounts, checked by hand:
//
//	alice  3 qualified, 1 signup: 1 block × 500 + 1 × 1000 = 1500, capped at 1200
//	bob    2 qualified:           1 block × 500            =  500
//	sam    suspended; its click is "inactive", not qualified: 0
func TestPayoutsGolden(t *testing.T) {
	data := t.TempDir()
	// The flusher is on, but only the flush at stop runs.
	p := startServe(t, data, "--flush-interval", "1h")
	now := time.Now().UTC()
	p.mustCall(t, "PUT", "/v1/campaigns/golden", map[string]any{"starts_at": now.Add(-time.Hour), "ends_at": now.Add(time.Hour),
		"eligible_countries": []string{"US"}, "visit_block_size": 2, "visit_block_reward_cents": 500,
		"signup_reward_cents": 1000, "cap_cents": 1200}, 201)
	code := map[string]string{}
	for _, c := range []struct{ id, handle, status string }{{"alice", "@alice", "active"}, {"bob", "=bob", "active"}, {"sam", "sam", "suspended"}} {
		p.mustCall(t, "PUT", "/v1/creators/"+c.id, map[string]any{"campaign": "golden", "country": "US", "handle": c.handle, "status": c.status}, 201)
		code[c.id] = c.id + "-link"
		p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "golden", "creator": c.id, "code": code[c.id],
			"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	}
	var aliceClick string
	for creator, n := range map[string]int{"alice": 3, "bob": 2, "sam": 1} {
		for i := range n {
			resp, err := newClicker(fmt.Sprintf("127.3.%d.%d", len(creator), i+1)).request(p, "GET", code[creator], "User-Agent", e2eChrome)
			if err != nil || resp.StatusCode != 302 {
				t.Fatalf("click on %s failed: %v", creator, err)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if creator == "alice" {
				aliceClick = loc.Query().Get("cg_click")
			}
		}
	}
	body, _ := json.Marshal(map[string]any{"click_id": aliceClick, "user_id": "new-user-1", "occurred_at": now})
	req, _ := http.NewRequest("POST", "http://"+p.admin+"/v1/conversions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+readFile(t, filepath.Join(data, "app-key")))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("conversion failed: %v %v", resp, err)
	}
	// A statement is refused while the campaign runs: it would miss
	// visits and signups still to come.
	// (The not-payable rule itself is tested in counter/payout.)
	if out, err := exec.Command(binary, "payouts", "--campaign", "golden", "--ledger", filepath.Join(data, "ledger")).CombinedOutput(); err == nil {
		t.Fatalf("payouts before the campaign ended succeeded:\n%s", out)
	}
	// The campaign ends; the stop flushes the final totals and terms into
	// the ledger, and payouts come from the ledger alone, with no service.
	p.mustCall(t, "PUT", "/v1/campaigns/golden", map[string]any{"ends_at": time.Now().UTC()}, 200)
	p.stop(t)
	got, err := exec.Command(binary, "payouts", "--campaign", "golden", "--ledger", filepath.Join(data, "ledger")).Output()
	if err != nil {
		t.Fatalf("clickgate payouts failed: %v", err)
	}
	golden := filepath.Join("testdata", "payouts.golden.csv")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("payouts differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
	// The flushing node's admin API serves the same statement.
	p = startServe(t, data, "--flush-interval", "1h")
	req, _ = http.NewRequest("GET", "http://"+p.admin+"/v1/campaigns/golden/payouts?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("GET payouts differs from %s: %d\n%s", golden, resp.StatusCode, body)
	}
}

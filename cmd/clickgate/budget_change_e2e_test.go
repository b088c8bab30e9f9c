package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBudgetChangeEndToEnd changes the budgets of the embedded store
// across restarts of the real binary: a clean stop and a start with
// other budgets adopts them at the judge's checkpoint, logs the change
// and applies it to the visits after, the day's counts carried over; a
// kill after visits judged under the new budgets, and a start with yet
// others, judges those visits again under the budgets they were judged
// with, so the counts do not move, and only then adopts the others.
func TestBudgetChangeEndToEnd(t *testing.T) {
	// The budgets are per UTC day: start well inside one.
	if left := time.Until(time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)); left < 2*time.Minute {
		time.Sleep(left + time.Second)
	}
	data := t.TempDir()
	budget := func(n string) []string { return []string{"--budget-network", n} }
	p := startServe(t, data, budget("3")...)
	code := p.setup(t)
	clicks := 0
	click := func(ip string) {
		t.Helper()
		clicks++
		resp, err := newClicker(ip).request(p, "GET", code, "User-Agent", budgetUA(5000+clicks))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 302 {
			t.Fatalf("unexpected status of click %d from %s; got %d; want 302", clicks, ip, resp.StatusCode)
		}
	}
	want := func(what string, qualified, budget int) {
		t.Helper()
		st := p.stats(t)
		if q, b := statInt(t, st, "qualified"), statInt(t, st, "budget"); q != qualified || b != budget {
			t.Fatalf("unexpected counts %s; got qualified %d, budget %d; want %d and %d (%v)", what, q, b, qualified, budget, st)
		}
	}
	changed := func(from, to, replayed string) {
		t.Helper()
		re := regexp.MustCompile(`policy changed.* old="[^"]*budget_network=` + from + ` [^"]*" new="[^"]*budget_network=` + to + ` [^"]*" replayed=` + replayed)
		if out := p.logs(); !re.MatchString(out) {
			t.Fatalf("unexpected log of a start with other budgets; want a change from %s to %s, replayed %s:\n%s", from, to, replayed, out)
		}
	}
	// Five people behind one address: 3 are paid at --budget-network 3.
	const farm = "127.0.66.1"
	for range 5 {
		click(farm)
	}
	want("at --budget-network 3", 3, 2)

	// A clean stop leaves nothing to judge again: 6 is adopted at once,
	// and the address has 3 of them left today.
	p.stop(t)
	p = startServe(t, data, budget("6")...)
	changed("3", "6", "0")
	want("after the change to 6", 3, 2)
	for range 4 {
		click(farm)
	}
	want("at --budget-network 6", 6, 3)

	// A kill: the visits judged since the change are judged again under
	// 6, as they were, before 2 is adopted.
	p.cmd.Process.Kill()
	<-p.exited
	p = startServe(t, data, budget("2")...)
	changed("6", "2", `[1-9]\d*`)
	want("after a kill and the change to 2", 6, 3)
	click(farm)
	want("of an address past the new budget of 2", 6, 4)
	for range 3 {
		click("127.0.66.2")
	}
	want("of another address at --budget-network 2", 8, 5)

	// The same budgets again: nothing to change.
	p.stop(t)
	p = startServe(t, data, budget("2")...)
	if out := p.logs(); strings.Contains(out, "policy changed") {
		t.Fatalf("unexpected change of policy at a start with the same budgets:\n%s", out)
	}
	want("after a restart with the same budgets", 8, 5)
}

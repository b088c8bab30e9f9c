package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// budgetUA is the i-th of many Chrome User-Agents, as a farm rotates them:
// each makes a new visitor.
func budgetUA(i int) string {
	return fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.%d.%d Safari/537.36", 6000+i, i%200)
}

// TestBudgetsEndToEnd runs the real binary on the embedded store at the
// default budgets (20 qualified visits a day per network, 300 per block,
// per campaign) and checks what the README's "Network budgets" says: one
// address rotating User-Agents is paid for 20 visitors a day, through a
// kill and a restart; the addresses of one /24 together for 300; an IPv6
// /56 behind a trusted proxy for 300, its /48's budget; a person on
// another /24 or /48 still qualifies; every click is redirected; and a
// restart with other budgets adopts them, says so, and applies them to
// the visits after (TestBudgetChangeEndToEnd tries more).
func TestBudgetsEndToEnd(t *testing.T) {
	// The budgets are per UTC day: start well inside one.
	if left := time.Until(time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)); left < 2*time.Minute {
		time.Sleep(left + time.Second)
	}
	data := t.TempDir()
	const proxy = "127.0.70.1"
	args := []string{"--trusted-proxies", proxy}
	p := startServe(t, data, args...)
	code := p.setup(t)

	click := func(c *clicker, ua string, headers ...string) {
		t.Helper()
		resp, err := c.request(p, "GET", code, append([]string{"User-Agent", ua}, headers...)...)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 302 {
			t.Fatalf("unexpected status of a click from %s; got %d; want 302", c.ip, resp.StatusCode)
		}
	}
	var seen struct{ qualified, budget, clicks int }
	want := func(what string, qualified, budget int) {
		t.Helper()
		st := p.stats(t)
		q, b, c := statInt(t, st, "qualified")-seen.qualified, statInt(t, st, "budget")-seen.budget, statInt(t, st, "clicks")-seen.clicks
		if q != qualified || b != budget || c != qualified+budget {
			t.Fatalf("unexpected counts of %s; got qualified %d, budget %d of %d clicks; want %d and %d (%v)", what, q, b, c, qualified, budget, st)
		}
		seen.qualified, seen.budget, seen.clicks = seen.qualified+q, seen.budget+b, seen.clicks+c
	}

	// One address, 25 User-Agents (within --velocity-max, 30 in 10
	// minutes, which the judge keeps across restarts too), a SIGKILL after
	// 10 and a restart after 20: the budget of the day is in the log the
	// judge replays and in its checkpoint.
	farm := "127.0.60.1"
	for i := range 10 {
		click(newClicker(farm), budgetUA(i))
	}
	p.cmd.Process.Kill()
	<-p.exited
	p = startServe(t, data, args...)
	for i := 10; i < 20; i++ {
		click(newClicker(farm), budgetUA(i))
	}
	p.stop(t)
	p = startServe(t, data, args...)
	for i := 20; i < 25; i++ {
		click(newClicker(farm), budgetUA(i))
	}
	want("one address rotating 25 User-Agents", 20, 5)

	// A /24: 16 addresses with 20 User-Agents each, round after round.
	sweep := make([]*clicker, 16)
	for i := range sweep {
		sweep[i] = newClicker(fmt.Sprintf("127.0.61.%d", i+1))
	}
	for round := range 20 {
		for i, c := range sweep {
			click(c, budgetUA(1000+20*i+round))
		}
	}
	want("16 addresses of one /24 with 20 User-Agents each", 300, 20)
	// A person on another /24 is paid as ever.
	click(newClicker("127.0.62.1"), e2eChrome)
	want("a person on another /24", 1, 0)

	// An IPv6 /56 behind a trusted proxy: 40 of its 256 /64 networks, 10
	// people each, are one /48 block.
	via := newClicker(proxy)
	for n := range 40 {
		for i := range 10 {
			click(via, budgetUA(2000+10*n+i), "X-Forwarded-For", fmt.Sprintf("2001:db8:0:ab%02x::%x", n, i+1))
		}
	}
	want("40 networks of an IPv6 /56", 300, 100)
	click(via, e2eChrome, "X-Forwarded-For", "2001:db8:1::1")
	want("a person on another /48", 1, 0)

	// The judge's checkpoint holds the budgets it was made with: a
	// restart with others adopts them at that checkpoint and says so. The
	// day's counts carry over: the farm has spent more than 5 today.
	p.stop(t)
	p = startServe(t, data, append([]string{"--budget-network", "5"}, args...)...)
	if out := p.logs(); !strings.Contains(out, "policy changed") || !strings.Contains(out, "budget_network=20") || !strings.Contains(out, "budget_network=5") {
		t.Fatalf("unexpected log of a restart with other budgets:\n%s", out)
	}
	want("after a restart with other budgets", 0, 0)
	click(newClicker(farm), budgetUA(25))
	want("of the farm's address over its new budget", 0, 1)
	for i := range 7 {
		click(newClicker("127.0.63.1"), budgetUA(3000+i))
	}
	want("of an address at the new budget of 5", 5, 2)
}

// TestRedisBudgetsAcrossNodes: on Redis, two nodes share the budgets, since
// every node's visits are in the one log the partition's judge decides,
// and a restart of both does not reset them.
func TestRedisBudgetsAcrossNodes(t *testing.T) {
	srv := faultRedis(t)
	da, db := t.TempDir(), t.TempDir()
	start := func() (*proc, *proc) {
		args := []string{"--budget-network", "6", "--budget-block", "10"}
		return faultServe(t, srv, da, args...), faultServe(t, srv, db, args...)
	}
	a, b := start()
	code := a.setup(t)
	waitServed(t, b, code)
	n := 0
	click := func(ip string) {
		t.Helper()
		p := a
		if n%2 == 1 {
			p = b
		}
		n++
		resp, err := newClicker(ip).request(p, "GET", code, "User-Agent", budgetUA(n))
		if err != nil || resp.StatusCode != 302 {
			t.Fatalf("click %d from %s: %v, %v", n, ip, resp, err)
		}
	}
	want := func(what string, qualified, budget int) {
		t.Helper()
		judgedAll(t, srv, "spring", 1)
		for _, p := range []*proc{a, b} {
			if st := p.stats(t); statInt(t, st, "qualified") != qualified || statInt(t, st, "budget") != budget {
				t.Fatalf("unexpected counts %s; got %v; want %d qualified and %d budget", what, st, qualified, budget)
			}
		}
	}
	for range 12 {
		click("127.0.64.1")
	}
	want("of one address through two nodes", 6, 6)
	a.stop(t)
	b.stop(t)
	a, b = start()
	for range 4 {
		click("127.0.64.1")
	}
	want("after a restart of both nodes", 6, 10)
	for i := range 12 {
		click(fmt.Sprintf("127.0.64.%d", 2+i%4))
	}
	want("of its /24", 10, 18)
	click("127.0.65.1")
	want("with a person on another /24", 11, 18)
}

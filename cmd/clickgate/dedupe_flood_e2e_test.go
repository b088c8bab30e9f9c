package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestDedupeFloodEndToEnd is issue 12's flood on the real binary and the
// embedded store, its filters sized for 1,600 visitors per campaign
// window: 6,400 fake visitors of alice qualified by the judge (4 times
// that, each marking two keys, its network key and its new cookie), then
// 1,000 real visitors of bob in the same campaign and window. The judge's
// filter of the window grows layers, the log and the metrics say so, and
// bob's visitors are false duplicates within the configured rate (0.001).
//
// The fakes come in rounds of 1,600, from 160 addresses in 8 /24s of their
// own, 10 User-Agents each: 10 qualified visits an address and 200 a /24
// are within the default budgets (20 and 300) and velocity (30 in 10
// minutes), so every fake the judge sees qualifies, unless a false
// duplicate, and marks its two keys. A budget would stop a smaller farm
// before its keys reach the filter, which the flood must not depend on.
//
// Both filters are under test: the judge's grows layers, and the edge's
// own filter of known visitors (counter.LocalFilter, in front of the
// judge) forgets its oldest generation instead of filling up.
func TestDedupeFloodEndToEnd(t *testing.T) {
	const (
		expected = 1600
		fakes    = 4 * expected
		people   = 1000
		fp       = 0.001
		// 3 times the mean at the rate, plus a few: bob's visitors are
		// also tested by the edge's filter, within twice the rate, for
		// about 2 false duplicates more. A Poisson count of mean 4 is
		// over 11 about once in 1,000.
		bound = int(3*fp*people) + 8
	)
	data := t.TempDir()
	args := []string{"--dedupe-expected", fmt.Sprint(expected)}
	p := startServe(t, data, args...)
	alice := p.setup(t)
	p.mustCall(t, "PUT", "/v1/creators/bob", map[string]any{"campaign": "spring", "handle": "@bob", "country": "US"}, 201)
	out := p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": "bob",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	bob, _ := out["code"].(string)

	// run sends n clicks from each of the addresses, over 64 connections
	// at a time, the i-th click of an address with User-Agent ua(a, i).
	run := func(code string, addrs []string, n int, ua func(a, i int) string) {
		t.Helper()
		work := make(chan int)
		errs := make(chan error, 1)
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for a := range work {
					c := newClicker(addrs[a])
					for i := range n {
						resp, err := c.request(p, "GET", code, "User-Agent", ua(a, i))
						if err == nil && resp.StatusCode != 302 {
							err = fmt.Errorf("unexpected status of a click from %s; got %d; want 302", addrs[a], resp.StatusCode)
						}
						if err != nil {
							select {
							case errs <- err:
							default:
							}
							return
						}
					}
					c.client.CloseIdleConnections()
				}
			})
		}
		for a := range addrs {
			work <- a
		}
		close(work)
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}
	stats := func(creator string) (qualified, duplicates, clicks int) {
		st := p.mustCall(t, "GET", "/v1/creators/"+creator+"/stats?campaign=spring", nil, 200)
		return statInt(t, st, "qualified"), statInt(t, st, "duplicates"), statInt(t, st, "clicks")
	}

	var q, d, c int
	for round := 0; q < fakes; round++ {
		if round == 6 {
			t.Fatalf("unexpected flood; got %d qualified, %d duplicates of %d clicks after %d rounds; want %d qualified", q, d, c, round, fakes)
		}
		farm := make([]string, 0, 160)
		for b := range 8 {
			for a := range 20 {
				farm = append(farm, fmt.Sprintf("127.77.%d.%d", 8*round+b, a+1))
			}
		}
		run(alice, farm, 10, func(a, i int) string { return budgetUA(1600*round + 10*a + i) })
		q, d, c = stats("alice")
		t.Logf("round %d: alice has %d qualified, %d duplicates of %d clicks", round, q, d, c)
	}
	m := p.metrics(t)
	if logs := p.logs(); !strings.Contains(logs, "a dedupe window grew a layer") || strings.Contains(logs, "has all its layers") || m["clickgate_dedupe_layers_added_total"] < 2 {
		t.Fatalf("unexpected report of the flood; got %v layers added; want at least 2 (%d keys in filters sized for %d), logged, and room for more:\n%s",
			m["clickgate_dedupe_layers_added_total"], 2*q, 2*expected, linesWith(logs, "dedupe"))
	}
	if m["clickgate_dedupe_window_layers"] != 3 || m["clickgate_dedupe_false_positive_rate"] > 2*fp {
		t.Fatalf("unexpected metrics after the flood; got %v layers, rate %v; want 3, under %v",
			m["clickgate_dedupe_window_layers"], m["clickgate_dedupe_false_positive_rate"], 2*fp)
	}

	flood := q

	// Real people: one click each, from addresses of their own, 250 per
	// /24.
	real := make([]string, people)
	for i := range real {
		real[i] = fmt.Sprintf("127.78.%d.%d", i/250, 1+i%250)
	}
	run(bob, real, 1, func(int, int) string { return e2eChrome })
	q, d, c = stats("bob")
	t.Logf("after %d fakes of alice qualified: %d of bob's %d visitors qualified, %d false duplicates (at most %d)\n%s",
		flood, q, people, d, bound, linesWith(p.logs(), "dedupe window"))
	if c != people || q+d != people || d > bound {
		t.Fatalf("unexpected counts of bob's real visitors after the flood; got %d qualified, %d duplicates of %d clicks; want %d clicks, at most %d duplicates",
			q, d, c, people, bound)
	}
}

// linesWith returns the lines of s that contain word.
func linesWith(s, word string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, word) {
			b.WriteString(line)
		}
	}
	return b.String()
}

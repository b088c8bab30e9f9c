package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

// request sends one request from c and returns the response, body read.
func (c *clicker) request(p *proc, method, code string, headers ...string) (*http.Response, error) {
	req, _ := http.NewRequest(method, "http://"+p.public+"/"+code, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

const (
	e2eChrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	e2eTikTok = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 musical_ly_34.1.2 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/US"
)

func TestRedisMixedStream(t *testing.T) {
	srv := redistest.Start(t)
	p := startServe(t, t.TempDir(), "--redis", srv.URL(0), "--click-secret", e2eSecret, "--velocity-max", "5", "--velocity-window", "10m")
	code := p.setup(t)
	now := time.Now().UTC()
	p.mustCall(t, "PUT", "/v1/creators/sam", map[string]any{"campaign": "spring", "country": "US", "status": "suspended"}, 201)
	sam := p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": "sam",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)["code"].(string)
	p.mustCall(t, "PUT", "/v1/campaigns/summer", map[string]any{"starts_at": now.Add(24 * time.Hour), "ends_at": now.Add(48 * time.Hour)}, 201)
	p.mustCall(t, "PUT", "/v1/creators/alice", map[string]any{"campaign": "summer", "country": "US"}, 201)
	summer := p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "summer", "creator": "alice",
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)["code"].(string)

	var mu sync.Mutex
	var failures []string
	expect := func(c *clicker, method, code string, status int, headers ...string) *http.Response {
		resp, err := c.request(p, method, code, headers...)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			failures = append(failures, err.Error())
		case resp.StatusCode != status:
			failures = append(failures, fmt.Sprintf("%s %s from %s with %q: got %d; want %d", method, code, c.ip, headers, resp.StatusCode, status))
		case status == 302 && !strings.HasPrefix(resp.Header.Get("Location"), "https://app.example.com/join?cg_click="):
			failures = append(failures, fmt.Sprintf("%s %s from %s: no redirect to the destination: %q", method, code, c.ip, resp.Header.Get("Location")))
		}
		return resp
	}

	// 40 people click three times each, 16 at a time; half of them send
	// back the visitor cookie they were given, as a browser would.
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c := newClicker(fmt.Sprintf("127.0.10.%d", i+1))
				ua := e2eChrome
				if i%2 == 1 {
					ua = e2eTikTok
				}
				resp := expect(c, "GET", code, 302, "User-Agent", ua)
				cookie := ""
				if resp != nil && i < 20 {
					for _, ck := range resp.Cookies() {
						if ck.Name == "cg_vid" {
							cookie = "cg_vid=" + ck.Value
						}
					}
				}
				for range 2 {
					expect(c, "GET", code, 302, "User-Agent", ua, "Cookie", cookie)
				}
			}
		}()
	}
	for i := range 40 {
		work <- i
	}
	close(work)
	wg.Wait()

	// Crawlers and tools, each its own address: redirected, not paid.
	for i, ua := range []string{
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		"curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1", "Wget/1.21.4",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
		"okhttp/4.12.0", "",
	} {
		expect(newClicker(fmt.Sprintf("127.0.11.%d", i+1)), "GET", code, 302, "User-Agent", ua)
	}
	// Link-preview fetchers: a 200 page, not paid.
	for i, ua := range []string{
		"Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
		"Twitterbot/1.0",
		"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
		"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
		"TelegramBot (like TwitterBot)",
		"WhatsApp/2.23.20.0",
	} {
		expect(newClicker(fmt.Sprintf("127.0.12.%d", i+1)), "GET", code, 200, "User-Agent", ua)
	}
	// Prefetches and HEAD: redirected, not paid.
	for i := range 5 {
		c := newClicker(fmt.Sprintf("127.0.13.%d", i+1))
		expect(c, "GET", code, 302, "User-Agent", e2eChrome, "Sec-Purpose", "prefetch")
		expect(c, "HEAD", code, 302, "User-Agent", e2eChrome)
	}
	// A click farm that repeats itself: one address, 25 clicks. The first
	// is qualified and its repeats are duplicates, which the judge never
	// sees, until the edge's guard, 4 times --velocity-max (20 clicks),
	// flags the last 5 as velocity.
	farm := newClicker("127.0.14.1")
	for range 25 {
		expect(farm, "GET", code, 302, "User-Agent", e2eChrome)
	}
	// A farm that rotates User-Agents, each a new visitor: the judge
	// qualifies 5 (--velocity-max) and flags the other 3.
	rotator := newClicker("127.0.14.2")
	for i := range 8 {
		expect(rotator, "GET", code, 302, "User-Agent", strings.Replace(e2eChrome, "124.0", fmt.Sprint(100+i, ".0"), 1))
	}
	// A suspended creator and a campaign that has not started.
	for i := range 3 {
		expect(newClicker(fmt.Sprintf("127.0.15.%d", i+1)), "GET", sam, 302, "User-Agent", e2eChrome)
	}
	for i := range 2 {
		expect(newClicker(fmt.Sprintf("127.0.16.%d", i+1)), "GET", summer, 302, "User-Agent", e2eChrome)
	}
	for _, f := range failures {
		t.Error(f)
	}

	want := func(path string, counts map[string]int) {
		t.Helper()
		got := p.mustCall(t, "GET", path, nil, 200)
		total := 0
		for _, n := range counts {
			total += n
		}
		counts["clicks"] = total
		for _, r := range []string{"clicks", "qualified", "duplicates", "bots", "previews", "prefetches", "velocity", "out_of_window", "inactive", "uncounted"} {
			if got[r] != float64(counts[r]) {
				t.Errorf("unexpected %s for %s; got %v; want %d (all: %v)", r, path, got[r], counts[r], got)
			}
		}
	}
	want("/v1/creators/alice/stats?campaign=spring", map[string]int{"qualified": 46, "duplicates": 99, "bots": 10, "previews": 6, "prefetches": 10, "velocity": 8})
	want("/v1/creators/sam/stats?campaign=spring", map[string]int{"inactive": 3})
	want("/v1/creators/alice/stats?campaign=summer", map[string]int{"out_of_window": 2})
}

// TestEmbeddedVelocity: on the embedded store the judge decides
// --velocity-max from the visits it judges, and keeps its counts across a
// restart; repeat clicks of known visitors never reach it, so a household
// whose people click again and again is not flagged until the edge's
// guard, 4 times the limit.
func TestEmbeddedVelocity(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data, "--velocity-max", "5")
	code := p.setup(t)
	click := func(c *clicker, ua string) {
		t.Helper()
		resp, err := c.request(p, "GET", code, "User-Agent", ua)
		if err != nil || resp.StatusCode != 302 {
			t.Fatalf("click from %s: %v, %v", c.ip, resp, err)
		}
	}
	want := func(what string, qualified, duplicates, velocity int) {
		t.Helper()
		st := p.stats(t)
		if statInt(t, st, "qualified") != qualified || statInt(t, st, "duplicates") != duplicates || statInt(t, st, "velocity") != velocity {
			t.Fatalf("unexpected counts %s; got %v; want %d qualified, %d duplicates, %d velocity", what, st, qualified, duplicates, velocity)
		}
	}
	ua := func(i int) string { return strings.Replace(e2eChrome, "124.0", fmt.Sprint(100+i, ".0"), 1) }

	// A farm rotating User-Agents, 4 before a restart and 4 after.
	farm := newClicker("127.0.17.1")
	for i := range 4 {
		click(farm, ua(i))
	}
	p.stop(t)
	p = startServe(t, data, "--velocity-max", "5")
	for i := 4; i < 8; i++ {
		click(farm, ua(i))
	}
	want("of a farm across a restart", 5, 0, 3)

	// A household of 5 people, 4 clicks each: 20 clicks, the guard's
	// limit; the 21st is flagged by the guard.
	home := newClicker("127.0.17.2")
	for range 4 {
		for i := range 5 {
			click(home, ua(i))
		}
	}
	want("of a household at the guard", 10, 15, 3)
	click(home, ua(0))
	want("of a household past the guard", 10, 15, 4)
}

package useragent

import (
	"strings"
	"testing"
)

func TestInAppBrowser(t *testing.T) {
	f := func(ua string, want bool) {
		t.Helper()
		if got := inAppBrowser([]byte(ua), hasEngineToken([]byte(ua))); got != want {
			t.Errorf("unexpected inAppBrowser for %q; got %v; want %v", ua, got, want)
		}
	}
	f("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/22B83 Instagram 354.0", true)
	f("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.7390.124 Mobile Safari/537.36 [WA4A/2.25.32.75;]", true)
	f("MOZILLA/5.0 (LINUX; ANDROID 14; WV) APPLEWEBKIT/537.36 (KHTML, LIKE GECKO) INSTAGRAM", true)
	// A device name in parentheses ends the platform early; it still has a letter.
	f("Mozilla/5.0 (Linux; Android 7.0; Moto G (4) Build/NPJ25.93-14; wv) AppleWebKit/537.36 (KHTML, like Gecko) Instagram 10.16.1", true)
	f("Instagram 404.0.0.48.76 Android (35/15; 420dpi; 1080x2400; Google/google; Pixel 7)", false)
	f("Mozilla/4.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Instagram", false)
	f("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko) Instagram 300.0", false)
	f("Mozilla/5.0 () AppleWebKit/537.36 (KHTML, like Gecko) Instagram 300.0", false)
	f("Mozilla/5.0 (1.0; 2) AppleWebKit/537.36 (KHTML, like Gecko) Instagram 300.0", false)
	f("Mozilla/5.0 (compatible; Yeti/1.1) AppleWebKit/537.36 (KHTML, like Gecko) Instagram", false)
	f("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X Instagram", false)
	f("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Instagram", false) // no engine
	f("Mozilla/5.0 (", false)
	f("", false)
}

func TestHasEmail(t *testing.T) {
	f := func(ua string, want bool) {
		t.Helper()
		if got := hasEmail([]byte(ua)); got != want {
			t.Errorf("unexpected hasEmail for %q; got %v; want %v", ua, got, want)
		}
		if got := refEmail.MatchString(strings.ToLower(ua)); got != want {
			t.Fatalf("BUG: the reference disagrees on %q; got %v; want %v", ua, got, want)
		}
	}
	f("Hype Machine/4.0 hypem.com (anthony@hypem.com)", true)
	f("Mozilla/5.0 (compatible; Claude-SearchBot/1.0; +claudebot@anthropic.com)", true)
	f("cohere-training-data-crawler (+crawler@cohere.ai)", true)
	f("x_@a-b.CO", true)
	f("a@b.cd", true)
	f("first @ only, then a@b.cd", true)
	f("Mozilla/5.0 (…) Mobile Safari/537.36 (Ecosia android@150.0.0.0)", false)
	f("(Ecosia ios@11.5.2.2615)", false)
	f("@example.com", false)   // no local part
	f(" @example.com", false)  // nor here
	f("a@.com", false)         // no host label
	f("a@example.c", false)    // one-letter ending
	f("a@example.c0m", false)  // not two letters after the dot
	f("a@example", false)      // no dot
	f("a@example.", false)     // nothing after it
	f("a@b@example.com", true) // the second '@'
	f("@", false)
	f("", false)
}

// TestCrawlerListWithMarker appends in-app markers to every example UA of
// the crawler list: the result is a person only when it is an in-app
// browser's UA (inAppBrowser), whatever the robot.
func TestCrawlerListWithMarker(t *testing.T) {
	markers := []string{" Instagram 355.1.0.44.103", " [FBAN/FBIOS;FBAV/488.0.0.68.101]", " musical_ly_33.2.1", " Snapchat/12.72.0.39", " discord/1.0.9003"}
	n, people := 0, 0
	for _, c := range crawlerList {
		if _, ok := excludedCrawlerPatterns[c.Pattern]; ok {
			continue
		}
		for _, ua := range c.Instances {
			for _, m := range markers {
				b := []byte(ua + m)
				n++
				if Classify(b) != Person {
					continue
				}
				people++
				if !inAppBrowser(b, hasEngineToken(b)) {
					t.Errorf("unexpected class for %q (pattern %q); got person; want bot: it is no in-app browser's UA", b, c.Pattern)
				}
			}
		}
	}
	// The rest are robots that send a whole browser UA and add their name,
	// which the crawler list knows; with a marker they are in-app browsers'
	// UAs, and the marker outweighs the crawler list (see the package doc).
	t.Logf("%d of %d crawler examples with a marker appended classified as people, all in-app browsers' UAs", people, n)
}

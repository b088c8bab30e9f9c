//go:build !race

package useragent

import "testing"

func TestClassifyAllocs(t *testing.T) {
	for name, ua := range map[string][]byte{
		"desktop": benchDesktop,
		"in-app":  benchInApp,
		"bot":     benchBot,
		"random":  benchRandom,
		// Crawler-list patterns that need their regexp run.
		"regexp": []byte("curl/8.4.0"),
		"sentry": []byte("Mozilla/5.0 (X11; Linux x86_64) sentry/23.1"),
		// The rules of plausible.go.
		"e-mail":         []byte("Hype Machine/4.0 hypem.com (anthony@hypem.com)"),
		"not e-mail":     []byte("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0.0.0 Mobile Safari/537.36 (Ecosia android@150.0.0.0)"),
		"app's client":   []byte("com.google.ios.youtube/19.49.7 (iPhone16,2; U; CPU iOS 17_5_1 like Mac OS X;)"),
		"robots' in-app": []byte("Mozilla/5.0 (compatible; Yeti/1.1) AppleWebKit/537.36 (KHTML, like Gecko) Instagram"),
	} {
		n := testing.AllocsPerRun(1000, func() { Classify(ua) })
		if n != 0 {
			t.Errorf("unexpected allocations for %s %q; got %v; want 0", name, ua, n)
		}
	}
}

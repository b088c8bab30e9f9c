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
	} {
		n := testing.AllocsPerRun(1000, func() { Classify(ua) })
		if n != 0 {
			t.Errorf("unexpected allocations for %s %q; got %v; want 0", name, ua, n)
		}
	}
}

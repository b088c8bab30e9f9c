package counter

import (
	"errors"
	"testing"
	"time"
)

func TestCampaignRules(t *testing.T) {
	c := Campaign{StartsAt: time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC), EndsAt: time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC)}
	running := func(at time.Time, want bool) {
		t.Helper()
		if got := c.Running(at); got != want {
			t.Fatalf("unexpected Running for %s; got %v; want %v", at, got, want)
		}
	}
	running(c.StartsAt.Add(-time.Nanosecond), false)
	running(c.StartsAt, true)
	running(c.EndsAt.Add(-time.Nanosecond), true)
	running(c.EndsAt, false)

	eligible := func(country string, want bool) {
		t.Helper()
		if got := c.Eligible(country); got != want {
			t.Fatalf("unexpected Eligible for %q with %q; got %v; want %v", country, c.EligibleCountries, got, want)
		}
	}
	eligible("FR", true) // none listed: every country
	c.EligibleCountries = []string{"US"}
	eligible("US", true)
	eligible("FR", false)

	for s, want := range map[string]bool{"invited": true, "active": true, "suspended": true, "": false, "Active": false} {
		if got := ValidStatus(s); got != want {
			t.Fatalf("unexpected ValidStatus for %q; got %v; want %v", s, got, want)
		}
	}
}

func TestDestinationsValidate(t *testing.T) {
	refuse := func(url string) error {
		if url == "http://bad" {
			return errors.New("want https")
		}
		return nil
	}
	f := func(d Destinations, want string) {
		t.Helper()
		err := d.Validate(refuse)
		if got := ""; err != nil {
			got = err.Error()
			if got != want {
				t.Fatalf("unexpected error for %+v; got %q; want %q", d, got, want)
			}
		} else if want != "" {
			t.Fatalf("unexpected success for %+v; want %q", d, want)
		}
	}
	f(Destinations{Default: "https://a"}, "")
	f(Destinations{}, "") // a required default is the caller's rule
	f(Destinations{Default: "https://a", Android: "http://bad"}, "destinations.android: want https")
	f(Destinations{Default: "http://bad", IOS: "http://bad"}, "destinations.default: want https")
}

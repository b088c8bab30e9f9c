package counter

import (
	"strings"
	"testing"
	"time"
)

func TestCampaignCheckChange(t *testing.T) {
	start := time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC)
	base := Campaign{ID: "spring", StartsAt: start, EndsAt: start.Add(42 * 24 * time.Hour), SignupRewardCents: 10000,
		VisitBlockSize: 1000, VisitBlockRewardCents: 10000, CapCents: 2000000, EligibleCountries: []string{"US", "CA"},
		AttributionWindow: Duration(720 * time.Hour), SignupGrace: Duration(72 * time.Hour)}
	before, during, after := start.Add(-time.Hour), start.Add(time.Hour), base.EndsAt.Add(time.Hour)
	f := func(name string, change func(c *Campaign), now time.Time, wantField string) {
		t.Helper()
		next := base
		next.EligibleCountries = append([]string(nil), base.EligibleCountries...)
		change(&next)
		err := base.CheckChange(&next, now)
		switch {
		case wantField == "" && err != nil:
			t.Fatalf("unexpected error for %q; got %v; want none", name, err)
		case wantField != "" && (err == nil || !strings.HasPrefix(err.Error(), wantField+" cannot change")):
			t.Fatalf("unexpected error for %q; got %v; want one naming %s", name, err, wantField)
		}
	}
	f("nothing", func(c *Campaign) {}, during, "")
	f("name", func(c *Campaign) { c.Name = "Spring" }, during, "")
	f("preview", func(c *Campaign) { c.Preview.Title = "Join" }, after, "")
	f("countries reordered", func(c *Campaign) { c.EligibleCountries = []string{"CA", "US"} }, during, "")
	f("price before start", func(c *Campaign) { c.SignupRewardCents = 50000 }, before, "")
	f("price", func(c *Campaign) { c.SignupRewardCents = 50000 }, during, "signup_reward_cents")
	f("price after end", func(c *Campaign) { c.SignupRewardCents = 50000 }, after, "signup_reward_cents")
	f("block size", func(c *Campaign) { c.VisitBlockSize = 10 }, during, "visit_block_size")
	f("block reward", func(c *Campaign) { c.VisitBlockRewardCents = 1 }, during, "visit_block_reward_cents")
	f("countries", func(c *Campaign) { c.EligibleCountries = []string{"US"} }, during, "eligible_countries")
	f("grace", func(c *Campaign) { c.SignupGrace = 0 }, during, "signup_grace")
	f("attribution", func(c *Campaign) { c.AttributionWindow = Duration(time.Hour) }, during, "attribution_window")
	f("start", func(c *Campaign) { c.StartsAt = c.StartsAt.Add(time.Hour) }, during, "starts_at")
	f("cap up", func(c *Campaign) { c.CapCents *= 2 }, during, "")
	f("cap down", func(c *Campaign) { c.CapCents /= 2 }, during, "cap_cents")
	f("cap up after end", func(c *Campaign) { c.CapCents *= 2 }, after, "cap_cents")
	f("end later", func(c *Campaign) { c.EndsAt = c.EndsAt.Add(24 * time.Hour) }, during, "")
	f("end earlier", func(c *Campaign) { c.EndsAt = c.EndsAt.Add(-24 * time.Hour) }, during, "ends_at")
	f("end later after end", func(c *Campaign) { c.EndsAt = c.EndsAt.Add(24 * time.Hour) }, after, "ends_at")
}

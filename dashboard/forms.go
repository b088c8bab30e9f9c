package dashboard

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// The forms' fields are read here into the admin API's requests. Only the
// shapes people type are parsed (dollars, days, lists); every rule of the
// domain is the API's to check.

// formError is a field a person typed that cannot be read.
type formError struct{ field, msg string }

func (e *formError) Error() string { return e.field + ": " + e.msg }

// maxDollars bounds an amount typed in dollars, far above any reward or
// cap, so that its cents fit in int64 with room.
const maxDollars = 1_000_000_000

// parseCents reads an amount in dollars as people type it: "100",
// "100.5", "$1,250.00". At most two decimals; no sign.
func parseCents(s string) (int64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "$")
	s = strings.ReplaceAll(s, ",", "")
	if s == "" {
		return 0, errors.New("want an amount in dollars, such as 100 or 12.50")
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 2 || !hasFrac && frac != "" {
		return 0, fmt.Errorf("%q is not an amount in dollars such as 100 or 12.50", s)
	}
	var w, f int64
	if whole != "" {
		if !digits(whole) || len(whole) > 10 {
			return 0, fmt.Errorf("%q is not an amount in dollars such as 100 or 12.50", s)
		}
		w, _ = strconv.ParseInt(whole, 10, 64)
	}
	if frac != "" {
		if !digits(frac) {
			return 0, fmt.Errorf("%q is not an amount in dollars such as 100 or 12.50", s)
		}
		f, _ = strconv.ParseInt(frac, 10, 64)
		if len(frac) == 1 {
			f *= 10
		}
	}
	if w > maxDollars {
		return 0, fmt.Errorf("%q is more than $%d", s, maxDollars)
	}
	return w*100 + f, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseDay reads a day (2026-05-11), the start of that day UTC, or an
// RFC 3339 time.
func parseDay(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a day such as 2026-05-11", s)
}

// parseCount reads a whole number such as a visit block's size.
func parseCount(s string) (int64, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return n, nil
}

// splitList reads a list typed with commas or spaces: "US, CA".
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

// campaignForm reads the new-campaign form into its id and the body of
// PUT /v1/campaigns/{id}. Fields left empty are left out, and take the
// API's defaults.
func campaignForm(f url.Values) (string, adminclient.CampaignPut, error) {
	var req adminclient.CampaignPut
	id := strings.TrimSpace(f.Get("id"))
	if err := checkFormID(id); err != nil {
		return "", req, err
	}
	if v := strings.TrimSpace(f.Get("name")); v != "" {
		req.Name = &v
	}
	for _, d := range []struct {
		field string
		dst   **time.Time
	}{{"starts_at", &req.StartsAt}, {"ends_at", &req.EndsAt}} {
		t, err := parseDay(f.Get(d.field))
		if err != nil {
			return "", req, &formError{d.field, err.Error()}
		}
		*d.dst = &t
	}
	for _, m := range []struct {
		field string
		dst   **int64
	}{{"signup_reward", &req.SignupRewardCents}, {"visit_block_reward", &req.VisitBlockRewardCents}, {"cap", &req.CapCents}} {
		v := strings.TrimSpace(f.Get(m.field))
		if v == "" {
			continue
		}
		c, err := parseCents(v)
		if err != nil {
			return "", req, &formError{m.field, err.Error()}
		}
		*m.dst = &c
	}
	if v := strings.TrimSpace(f.Get("visit_block_size")); v != "" {
		n, err := parseCount(v)
		if err != nil {
			return "", req, &formError{"visit_block_size", err.Error()}
		}
		req.VisitBlockSize = &n
	}
	if v := strings.TrimSpace(f.Get("eligible_countries")); v != "" {
		countries := splitList(v)
		req.EligibleCountries = &countries
	}
	return id, req, nil
}

// creatorForm reads the new-creator form into its id and the body of
// PUT /v1/creators/{id}.
func creatorForm(campaign string, f url.Values) (string, adminclient.CreatorPut, error) {
	req := adminclient.CreatorPut{Campaign: campaign}
	id := strings.TrimSpace(f.Get("id"))
	if err := checkFormID(id); err != nil {
		return "", req, err
	}
	country := strings.TrimSpace(f.Get("country"))
	req.Country = &country
	if v := strings.TrimSpace(f.Get("handle")); v != "" {
		req.Handle = &v
	}
	if v := strings.TrimSpace(f.Get("status")); v != "" {
		req.Status = &v
	}
	return id, req, nil
}

// linkForm reads the new-link form into the body of POST /v1/links.
func linkForm(campaign string, f url.Values) adminclient.NewLink {
	return adminclient.NewLink{
		Campaign: campaign,
		Creator:  strings.TrimSpace(f.Get("creator")),
		Code:     strings.TrimSpace(f.Get("code")),
		Destinations: counter.Destinations{
			Default: strings.TrimSpace(f.Get("default")),
			IOS:     strings.TrimSpace(f.Get("ios")),
			Android: strings.TrimSpace(f.Get("android")),
		},
	}
}

// checkFormID checks an id typed in a form before it goes into an admin
// API path, where a '/' would name another endpoint.
func checkFormID(id string) error {
	if !validID(id) {
		return &formError{"id", fmt.Sprintf("%q must be 1 to 64 letters, digits, '_', '-' or '.'", id)}
	}
	return nil
}

// campaignEditForm reads the edit form of campaign c into the body of PUT
// /v1/campaigns/{id}: only the fields typed that differ from c. A day
// shown and sent back unchanged keeps c's time of day.
func campaignEditForm(f url.Values, c counter.Campaign) (adminclient.CampaignPut, error) {
	var req adminclient.CampaignPut
	if v := strings.TrimSpace(f.Get("name")); v != "" && v != c.Name {
		req.Name = &v
	}
	for _, d := range []struct {
		field string
		cur   time.Time
		dst   **time.Time
	}{{"starts_at", c.StartsAt, &req.StartsAt}, {"ends_at", c.EndsAt, &req.EndsAt}} {
		v := strings.TrimSpace(f.Get(d.field))
		if v == "" || sameDay(v, d.cur) {
			continue
		}
		t, err := parseDay(v)
		if err != nil {
			return adminclient.CampaignPut{}, &formError{d.field, err.Error()}
		}
		if !t.Equal(d.cur) {
			*d.dst = &t
		}
	}
	for _, m := range []struct {
		field string
		cur   int64
		dst   **int64
	}{{"signup_reward", c.SignupRewardCents, &req.SignupRewardCents}, {"visit_block_reward", c.VisitBlockRewardCents, &req.VisitBlockRewardCents},
		{"cap", c.CapCents, &req.CapCents}} {
		v := strings.TrimSpace(f.Get(m.field))
		if v == "" {
			continue
		}
		cents, err := parseCents(v)
		if err != nil {
			return adminclient.CampaignPut{}, &formError{m.field, err.Error()}
		}
		if cents != m.cur {
			*m.dst = &cents
		}
	}
	if v := strings.TrimSpace(f.Get("visit_block_size")); v != "" {
		n, err := parseCount(v)
		if err != nil {
			return adminclient.CampaignPut{}, &formError{"visit_block_size", err.Error()}
		}
		if n != c.VisitBlockSize {
			req.VisitBlockSize = &n
		}
	}
	if f.Has("eligible_countries") {
		// Empty is every country, as on the new-campaign form.
		typed := splitList(strings.ToUpper(f.Get("eligible_countries")))
		if !slices.Equal(typed, c.EligibleCountries) {
			countries := append([]string{}, typed...)
			req.EligibleCountries = &countries
		}
	}
	return req, nil
}

// creatorEditForm reads the edit form of creator cr into the body of PUT
// /v1/creators/{id}: its campaign and the fields that differ from cr.
func creatorEditForm(f url.Values, cr counter.Creator) adminclient.CreatorPut {
	req := adminclient.CreatorPut{Campaign: cr.Campaign}
	if f.Has("handle") {
		if v := strings.TrimSpace(f.Get("handle")); v != cr.Handle {
			req.Handle = &v
		}
	}
	if v := strings.TrimSpace(f.Get("country")); v != "" && !strings.EqualFold(v, cr.Country) {
		req.Country = &v
	}
	if v := strings.TrimSpace(f.Get("status")); v != "" && v != cr.Status {
		req.Status = &v
	}
	return req
}

// linkEditForm reads the edit form of link l into the body of PATCH
// /v1/links/{code}: the destinations that differ from l's. An optional
// destination left empty is cleared.
func linkEditForm(f url.Values, l counter.Link) adminclient.LinkPatch {
	var d adminclient.DestinationsPatch
	for _, field := range []struct {
		name string
		cur  string
		dst  **string
	}{{"default", l.Destinations.Default, &d.Default}, {"ios", l.Destinations.IOS, &d.IOS}, {"android", l.Destinations.Android, &d.Android}} {
		if !f.Has(field.name) {
			continue
		}
		if v := strings.TrimSpace(f.Get(field.name)); v != field.cur {
			*field.dst = &v
		}
	}
	if d == (adminclient.DestinationsPatch{}) {
		return adminclient.LinkPatch{}
	}
	return adminclient.LinkPatch{Destinations: &d}
}

// Package counter holds the qualification state of clickgate: the campaign
// catalog, visitor dedupe, per-creator counters, group commit and the stores
// that persist them.
package counter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Sentinel errors returned by every Store.
var (
	ErrNotFound    = errors.New("counter: not found")
	ErrExists      = errors.New("counter: already exists")
	ErrUnavailable = errors.New("counter: store unavailable")
	// ErrParamsMismatch means the store was set up with other dedupe
	// parameters; using it with these would count visitors twice.
	ErrParamsMismatch = errors.New("counter: dedupe parameters differ from the store's")
	// ErrClickUsed means a conversion's click id was used by another
	// user: one click, one person, at most one signup.
	ErrClickUsed = errors.New("counter: click id used by another user")
)

// Campaign is one referral program. Money is integer cents.
type Campaign struct {
	ID                    string    `json:"id"`
	Name                  string    `json:"name"`
	StartsAt              time.Time `json:"starts_at"`
	EndsAt                time.Time `json:"ends_at"`
	SignupRewardCents     int64     `json:"signup_reward_cents"`
	VisitBlockSize        int64     `json:"visit_block_size"`
	VisitBlockRewardCents int64     `json:"visit_block_reward_cents"`
	CapCents              int64     `json:"cap_cents"`
	DedupeWindow          Duration  `json:"dedupe_window"`
	EligibleCountries     []string  `json:"eligible_countries"`
	// Preview is the default preview of the campaign's links.
	Preview Card `json:"preview"`
	// AttributionWindow is how long after a click a signup is credited.
	AttributionWindow Duration `json:"attribution_window"`
	// SignupGrace extends the campaign for signups after EndsAt.
	SignupGrace Duration `json:"signup_grace"`
	// QueryPassthrough merges the query of a short link's URL into its
	// destination's (the destination's own parameters win). default: true,
	// also for a campaign stored before the field existed
	QueryPassthrough bool `json:"query_passthrough"`
}

// UnmarshalJSON reads a campaign, with QueryPassthrough true unless the
// document says otherwise.
func (c *Campaign) UnmarshalJSON(b []byte) error {
	type plain Campaign // without this method
	p := plain{QueryPassthrough: true}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = Campaign(p)
	return nil
}

// Card is what link-unfurl fetchers show of a link: its OpenGraph and
// Twitter card tags. Empty fields of a link's preview take the campaign's.
type Card struct {
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	Image       string `json:"image,omitempty"` // absolute https URL
}

// Or returns p with its empty fields taken from def.
func (p Card) Or(def Card) Card {
	if p.Title == "" {
		p.Title = def.Title
	}
	if p.Description == "" {
		p.Description = def.Description
	}
	if p.Image == "" {
		p.Image = def.Image
	}
	return p
}

// Creator statuses.
const (
	StatusInvited   = "invited"
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Creator is a creator enrolled in one campaign; the same creator id may be
// enrolled in several campaigns.
type Creator struct {
	ID       string `json:"id"`
	Campaign string `json:"campaign"`
	Handle   string `json:"handle"`
	Country  string `json:"country"`
	Status   string `json:"status"`
	// AcceptedAt is when the creator first accepted the campaign's terms
	// on their dashboard page, in UTC; zero until then. Set once: a later
	// acceptance leaves it as it is. The ledger keeps it with the
	// creator's details.
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
}

// Destinations are where a link sends people, by platform. Default is
// required; all are absolute https URLs validated when the link is created.
type Destinations struct {
	Default string `json:"default"`
	IOS     string `json:"ios,omitempty"`
	Android string `json:"android,omitempty"`
}

// Link is a short code that belongs to one creator in one campaign.
type Link struct {
	Code         string       `json:"code"`
	Campaign     string       `json:"campaign"`
	Creator      string       `json:"creator"`
	Destinations Destinations `json:"destinations"`
	Preview      Card         `json:"preview"`
	CreatedAt    time.Time    `json:"created_at"`
	// Disabled links answer like unknown codes and count nothing.
	Disabled bool `json:"disabled"`
}

// Catalog is everything the edge needs to resolve codes, read at one version.
type Catalog struct {
	Version uint64
	// Epoch names the catalog's history: a store that lost its catalog
	// (emptied, reset, its data directory swapped) starts another at its
	// next change. Empty before the first change of a store that does not
	// record one yet.
	Epoch     string
	Campaigns []Campaign
	Creators  []Creator
	Links     []Link
}

// CatalogChanges are what changed in a catalog after a version: every
// campaign, creator and link changed since, as it is now. A store with a
// change feed returns them (redirect.ChangeFeed), so that a node applies
// a change without reading the whole catalog.
type CatalogChanges struct {
	// Version is the version the changes reach; with More, there are
	// changes after it. When the catalog is at or below the version asked
	// for, it is the catalog's version and there are no changes.
	Version uint64
	More    bool
	// Epoch is the catalog's, as in Catalog.
	Epoch string
	// Trimmed means the store no longer holds the changes right after the
	// version asked for: read the whole Catalog instead.
	Trimmed bool
	// At names the change that made the version asked for, and Last the
	// one that made Version (a kind and an id), or "" when the store does
	// not have them. A node compares At with the Last it applied before:
	// another change under the same version means the store's history
	// forked (a failover to a stale replica that took changes since).
	At, Last string

	Campaigns []Campaign
	Creators  []Creator
	Links     []Link
}

// CodesTakenError is the error of a bulk link creation that created none
// of its links because these codes are taken. It matches ErrExists.
type CodesTakenError struct {
	Codes []string
}

func (e *CodesTakenError) Error() string {
	if len(e.Codes) == 1 {
		return fmt.Sprintf("code %q is taken", e.Codes[0])
	}
	return fmt.Sprintf("%d codes are taken, the first %q", len(e.Codes), e.Codes[0])
}

func (e *CodesTakenError) Unwrap() error { return ErrExists }

// Store persists the catalog and the counters. Every implementation passes
// the conformance suite in counter/storetest.
type Store interface {
	PutCampaign(ctx context.Context, c Campaign) error
	// Campaign returns ErrNotFound for an unknown id.
	Campaign(ctx context.Context, id string) (Campaign, error)
	PutCreator(ctx context.Context, c Creator) error
	// Creator returns ErrNotFound for an unknown (campaign, id).
	Creator(ctx context.Context, campaign, id string) (Creator, error)
	// CreateLink returns ErrExists when the code is taken.
	CreateLink(ctx context.Context, l Link) error
	// Link returns ErrNotFound for an unknown code.
	Link(ctx context.Context, code string) (Link, error)
	// Version changes whenever the catalog changes.
	Version(ctx context.Context) (uint64, error)
	// Catalog returns the whole catalog at one version.
	Catalog(ctx context.Context) (*Catalog, error)
	// Roster returns the catalog without its links (Links is nil): every
	// campaign and creator, at one version. What the flusher and the
	// admin listings read: a catalog of a million links takes seconds
	// of CPU to decode.
	Roster(ctx context.Context) (*Catalog, error)

	// Commit makes visits durable before it returns, each to be decided
	// once: tested and set in the dedupe state of its window (its Also
	// too, when HasAlso) and counted for its creator (not MarkOnly
	// visits). out[i] receives Pending when visit i is durable in its
	// partition's log and its judge decides it later (both stores; their
	// Stats show the decision); Qualified or Duplicate from a store that
	// decides as it commits; or Uncounted when visit i was not committed,
	// and the error then says why.
	Commit(ctx context.Context, visits []Visit, out []Reason) error
	// AddCounts adds counts that need no dedupe (visits found duplicate
	// locally, uncounted visits, and later reasons) to their creators'
	// counters, and to their links' when Count.Link is set. A call that fails
	// added none of them, or its error is a *PartialAddError that says
	// which it did not add.
	AddCounts(ctx context.Context, counts []Count) error
	// Stats returns the counters of one creator in one campaign, one entry
	// per UTC day with any count, oldest first.
	Stats(ctx context.Context, campaign, creator string) ([]DayCounts, error)
	// LinkStats returns the counters of link code of creator in campaign,
	// one entry per UTC day with any count, oldest first, of every
	// reason: what the judge decided of the visits logged with their link
	// (Visit.Link), the counts added with that link (Count.Link) and the
	// signups of its clicks (Conversion.Link). Visits, counts and signups
	// without a link are the creator's alone, so a creator's links sum to
	// their Stats less those. An unknown link has no entries.
	LinkStats(ctx context.Context, campaign, creator, code string) ([]DayCounts, error)
	// AttributeSignup attributes a new user to a creator once per campaign,
	// and a click to one user: in one atomic step it checks that c.Click
	// is unused or used by c.UserID, records the click as used by the
	// user, and, when the user is new in the campaign, records the user
	// and increments the creator's signups of the day. When the user was
	// attributed before it returns false with the creator the user
	// belongs to (the click is recorded as the user's all the same). When
	// another user used the click, it changes nothing and returns an
	// error wrapping ErrClickUsed.
	AttributeSignup(ctx context.Context, c Conversion) (created bool, creator string, err error)
	// Claim records value under name unless a value is recorded there
	// already, and returns the recorded value: value itself when the claim
	// is new or repeated. The flusher claims the store for its ledger, so
	// that no second ledger is ever paid from the same counters.
	Claim(ctx context.Context, name, value string) (string, error)
	// Reclaim replaces the value recorded under name with value if it is
	// old, and returns the recorded value: value when the replacement
	// happened or was made before. An operator reclaims a store for a new
	// ledger when the one it was flushed into is lost.
	Reclaim(ctx context.Context, name, old, value string) (string, error)

	Close() error
}

// Settler is a store whose Stats may not yet hold every visit appended
// before the call: on Redis, a judge decides behind the appends of every
// node, and Stats waits only for this node's. Settle returns once every
// visit appended to campaign's log before the call has been decided and is
// in Stats, or an error saying what is behind. The embedded store needs
// none: its Stats waits for its one judge.
type Settler interface {
	Settle(ctx context.Context, campaign string) error
}

// PartialAddError is the error of an AddCounts that added some of its
// counts (all those of some campaigns) before it failed: Left are the
// counts it did not add.
type PartialAddError struct {
	Left []Count
	Err  error
}

func (e *PartialAddError) Error() string {
	return fmt.Sprintf("%s (%d counts left to add)", e.Err, len(e.Left))
}

func (e *PartialAddError) Unwrap() error { return e.Err }

// Conversion is a new user of the app who came through a creator's link.
type Conversion struct {
	Campaign string
	Creator  string
	UserID   string
	// Click is the key of the click that brought the user
	// (clickid.Claims.Key), unique within the campaign. Required.
	Click string
	// Link is the code of the link clicked (clickid.Claims.Link): the
	// signup counts for it too. "" counts for the creator only.
	Link string
	Day  Day
}

// Duration is a time.Duration that reads and writes JSON as "24h".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"24h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// PayableAfter returns when the campaign can be paid: its end plus its
// signup grace. No click or signup counts after it.
func (c *Campaign) PayableAfter() time.Time {
	return c.EndsAt.Add(time.Duration(c.SignupGrace)).UTC()
}

// CheckChange returns an error naming the first field that next may not
// change c's value of at time now. Once a campaign has started, the terms
// that decide what is paid are fixed: the rewards, the visit block, the
// eligible countries, the window and the grace, and the attribution
// window. Before its end, a campaign may still be extended (ends_at later)
// and its cap raised, which pays nobody less.
func (c *Campaign) CheckChange(next *Campaign, now time.Time) error {
	if now.Before(c.StartsAt) {
		return nil
	}
	running := now.Before(c.EndsAt)
	switch {
	case !next.StartsAt.Equal(c.StartsAt):
		return c.fixed("starts_at", "")
	case !next.EndsAt.Equal(c.EndsAt) && !(running && next.EndsAt.After(c.EndsAt)):
		return c.fixed("ends_at", "it may only move later, before the campaign ends")
	case next.CapCents != c.CapCents && !(running && next.CapCents > c.CapCents):
		return c.fixed("cap_cents", "it may only be raised, before the campaign ends")
	case next.SignupRewardCents != c.SignupRewardCents:
		return c.fixed("signup_reward_cents", "")
	case next.VisitBlockSize != c.VisitBlockSize:
		return c.fixed("visit_block_size", "")
	case next.VisitBlockRewardCents != c.VisitBlockRewardCents:
		return c.fixed("visit_block_reward_cents", "")
	case !slices.Equal(slices.Sorted(slices.Values(next.EligibleCountries)), slices.Sorted(slices.Values(c.EligibleCountries))):
		return c.fixed("eligible_countries", "")
	case next.SignupGrace != c.SignupGrace:
		return c.fixed("signup_grace", "")
	case next.AttributionWindow != c.AttributionWindow:
		return c.fixed("attribution_window", "")
	}
	return nil
}

func (c *Campaign) fixed(field, rule string) error {
	msg := fmt.Sprintf("%s cannot change: campaign %q started at %s", field, c.ID, c.StartsAt.Format(time.RFC3339))
	if rule != "" {
		msg += "; " + rule
	}
	return errors.New(msg)
}

// Running reports whether t is inside the campaign: from StartsAt, before
// EndsAt. Clicks outside it are not qualified, and a signup is credited
// only for a click inside it.
func (c *Campaign) Running(t time.Time) bool {
	return !t.Before(c.StartsAt) && t.Before(c.EndsAt)
}

// Eligible reports whether a creator based in country (an ISO 3166-1
// alpha-2 code) may earn in the campaign: every country is when
// EligibleCountries is empty.
func (c *Campaign) Eligible(country string) bool {
	return len(c.EligibleCountries) == 0 || slices.Contains(c.EligibleCountries, country)
}

// ValidStatus reports whether s is a creator status.
func ValidStatus(s string) bool {
	switch s {
	case StatusInvited, StatusActive, StatusSuspended:
		return true
	}
	return false
}

// Validate checks each destination that is set with check, and names the
// first refused (destinations.default, .ios or .android) in its error.
// Whether Default is required is the caller's to say.
func (d *Destinations) Validate(check func(url string) error) error {
	for _, f := range []struct{ name, url string }{
		{"destinations.default", d.Default}, {"destinations.ios", d.IOS}, {"destinations.android", d.Android},
	} {
		if f.url == "" {
			continue
		}
		if err := check(f.url); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

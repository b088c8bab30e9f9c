package adminclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// CampaignPut is the body of PUT /v1/campaigns/{id}. A nil field is left
// out: an existing campaign keeps its value, a new one takes the server's
// default. StartsAt and EndsAt are required for a new campaign.
type CampaignPut struct {
	Name                  *string           `json:"name,omitempty"`
	StartsAt              *time.Time        `json:"starts_at,omitempty"`
	EndsAt                *time.Time        `json:"ends_at,omitempty"`
	SignupRewardCents     *int64            `json:"signup_reward_cents,omitempty"`
	VisitBlockSize        *int64            `json:"visit_block_size,omitempty"`
	VisitBlockRewardCents *int64            `json:"visit_block_reward_cents,omitempty"`
	CapCents              *int64            `json:"cap_cents,omitempty"`
	DedupeWindow          *counter.Duration `json:"dedupe_window,omitempty"`
	EligibleCountries     *[]string         `json:"eligible_countries,omitempty"` // empty: every country
	Preview               *counter.Card     `json:"preview,omitempty"`            // replaces the whole card
	AttributionWindow     *counter.Duration `json:"attribution_window,omitempty"`
	SignupGrace           *counter.Duration `json:"signup_grace,omitempty"`
	QueryPassthrough      *bool             `json:"query_passthrough,omitempty"`
}

// CampaignPutOf is the put of every field of c but its id.
func CampaignPutOf(c counter.Campaign) CampaignPut {
	countries := c.EligibleCountries
	if countries == nil {
		countries = []string{}
	}
	return CampaignPut{Name: &c.Name, StartsAt: &c.StartsAt, EndsAt: &c.EndsAt, SignupRewardCents: &c.SignupRewardCents,
		VisitBlockSize: &c.VisitBlockSize, VisitBlockRewardCents: &c.VisitBlockRewardCents, CapCents: &c.CapCents,
		DedupeWindow: &c.DedupeWindow, EligibleCountries: &countries, Preview: &c.Preview,
		AttributionWindow: &c.AttributionWindow, SignupGrace: &c.SignupGrace, QueryPassthrough: &c.QueryPassthrough}
}

// CreatorPut is the body of PUT /v1/creators/{id}: the creator's campaign
// and the fields to set; a nil field keeps its value (a new creator needs
// a country).
type CreatorPut struct {
	Campaign string  `json:"campaign"`
	Handle   *string `json:"handle,omitempty"`
	Country  *string `json:"country,omitempty"`
	Status   *string `json:"status,omitempty"`
	// AcceptedAt is when the creator accepted the campaign's terms, as
	// the dashboard's accept button records it; the first one stays.
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
}

// CreatorPutOf is the put of every field of cr but its id: AcceptedAt
// when it is set, which a creator that has one already keeps.
func CreatorPutOf(cr counter.Creator) CreatorPut {
	p := CreatorPut{Campaign: cr.Campaign, Handle: &cr.Handle, Country: &cr.Country, Status: &cr.Status}
	if !cr.AcceptedAt.IsZero() {
		p.AcceptedAt = &cr.AcceptedAt
	}
	return p
}

// CreatorPageURL is the answer of POST /v1/creators/{id}/dashboard: the
// creator's new page URL on the dashboard.
type CreatorPageURL struct {
	URL string `json:"url"`
}

// RotateCreatorPage returns a new page URL for creator id of campaign; the
// URL before stops working.
func (c *Client) RotateCreatorPage(ctx context.Context, campaign, id string) (CreatorPageURL, error) {
	var out CreatorPageURL
	return out, c.call(ctx, "POST", "/v1/creators/"+url.PathEscape(id)+"/dashboard?campaign="+url.QueryEscape(campaign), nil, &out)
}

// NewLink is the body of POST /v1/links, and a line of POST
// /v1/links:bulk. An empty Code is drawn by the server.
type NewLink struct {
	Campaign     string               `json:"campaign"`
	Creator      string               `json:"creator"`
	Code         string               `json:"code,omitempty"`
	Destinations counter.Destinations `json:"destinations"`
	Preview      *counter.Card        `json:"preview,omitempty"` // default: the campaign's
}

// LinkPatch is the body of PATCH /v1/links/{code}: a nil field keeps its
// value, an empty string clears an optional one (ios, android, a preview
// field).
type LinkPatch struct {
	Destinations *DestinationsPatch `json:"destinations,omitempty"`
	Preview      *CardPatch         `json:"preview,omitempty"`
	Disabled     *bool              `json:"disabled,omitempty"`
}

// DestinationsPatch is the destinations part of a LinkPatch.
type DestinationsPatch struct {
	Default *string `json:"default,omitempty"`
	IOS     *string `json:"ios,omitempty"`
	Android *string `json:"android,omitempty"`
}

// CardPatch is the preview part of a LinkPatch.
type CardPatch struct {
	Title       *string `json:"title,omitempty"`
	Description *string `json:"description,omitempty"`
	Image       *string `json:"image,omitempty"`
}

// Link is a link as the API shows it: with its public URL.
type Link struct {
	counter.Link
	URL string `json:"url"`
}

// CreatedLink is the answer to POST /v1/links.
type CreatedLink struct {
	Code string `json:"code"`
	URL  string `json:"url"`
}

// Catalog is every campaign, creator and link of a store, at one version:
// GET /v1/catalog, and what clickgate catalog import puts back.
type Catalog struct {
	Campaigns []counter.Campaign `json:"campaigns"`
	Creators  []counter.Creator  `json:"creators"`
	Links     []counter.Link     `json:"links"`
	Version   uint64             `json:"version"`
}

// ListQuery selects a page of a list. An empty filter or a zero Limit is
// left out (the server's default: 100).
type ListQuery struct {
	Campaign string // creators and links
	Creator  string // links
	Status   string // creators: invited, active or suspended
	Disabled *bool  // links
	Limit    int
	Cursor   string // the NextCursor of the page before
}

func (q ListQuery) encode() string {
	v := url.Values{}
	for name, s := range map[string]string{"campaign": q.Campaign, "creator": q.Creator, "status": q.Status, "cursor": q.Cursor} {
		if s != "" {
			v.Set(name, s)
		}
	}
	if q.Disabled != nil {
		v.Set("disabled", strconv.FormatBool(*q.Disabled))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return "?" + v.Encode()
}

// CampaignPage, CreatorPage and LinkPage are pages of the lists; an empty
// NextCursor is the last page.
type CampaignPage struct {
	Campaigns  []counter.Campaign `json:"campaigns"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

type CreatorPage struct {
	Creators   []counter.Creator `json:"creators"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

type LinkPage struct {
	Links      []Link `json:"links"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// PutCampaign creates campaign id, or changes the fields p gives.
func (c *Client) PutCampaign(ctx context.Context, id string, p CampaignPut) (counter.Campaign, error) {
	var out counter.Campaign
	return out, c.call(ctx, "PUT", "/v1/campaigns/"+url.PathEscape(id), p, &out)
}

// Campaign returns campaign id; unknown is ErrNotFound.
func (c *Client) Campaign(ctx context.Context, id string) (counter.Campaign, error) {
	var out counter.Campaign
	return out, c.call(ctx, "GET", "/v1/campaigns/"+url.PathEscape(id), nil, &out)
}

// Campaigns returns a page of the campaigns, by id.
func (c *Client) Campaigns(ctx context.Context, q ListQuery) (CampaignPage, error) {
	var out CampaignPage
	return out, c.call(ctx, "GET", "/v1/campaigns"+q.encode(), nil, &out)
}

// PutCreator creates creator id in p.Campaign, or changes the fields p
// gives.
func (c *Client) PutCreator(ctx context.Context, id string, p CreatorPut) (counter.Creator, error) {
	var out counter.Creator
	return out, c.call(ctx, "PUT", "/v1/creators/"+url.PathEscape(id), p, &out)
}

// Creator returns creator id of campaign; unknown is ErrNotFound.
func (c *Client) Creator(ctx context.Context, campaign, id string) (counter.Creator, error) {
	var out counter.Creator
	return out, c.call(ctx, "GET", "/v1/creators/"+url.PathEscape(id)+"?campaign="+url.QueryEscape(campaign), nil, &out)
}

// Creators returns a page of the creators, by campaign and id.
func (c *Client) Creators(ctx context.Context, q ListQuery) (CreatorPage, error) {
	var out CreatorPage
	return out, c.call(ctx, "GET", "/v1/creators"+q.encode(), nil, &out)
}

// CreateLink creates a link; a taken code is ErrConflict.
func (c *Client) CreateLink(ctx context.Context, l NewLink) (CreatedLink, error) {
	var out CreatedLink
	return out, c.call(ctx, "POST", "/v1/links", l, &out)
}

// Link returns the link of code; unknown is ErrNotFound.
func (c *Client) Link(ctx context.Context, code string) (Link, error) {
	var out Link
	return out, c.call(ctx, "GET", "/v1/links/"+url.PathEscape(code), nil, &out)
}

// Links returns a page of the links, by code.
func (c *Client) Links(ctx context.Context, q ListQuery) (LinkPage, error) {
	var out LinkPage
	return out, c.call(ctx, "GET", "/v1/links"+q.encode(), nil, &out)
}

// PatchLink changes the fields p gives of the link of code.
func (c *Client) PatchLink(ctx context.Context, code string, p LinkPatch) (Link, error) {
	var out Link
	return out, c.call(ctx, "PATCH", "/v1/links/"+url.PathEscape(code), p, &out)
}

// LinkQR returns the QR code of the link's public URL: format is svg or
// png, size its width in pixels.
func (c *Client) LinkQR(ctx context.Context, code, format string, size int) ([]byte, error) {
	path := fmt.Sprintf("/v1/links/%s/qr.%s?size=%d", url.PathEscape(code), url.PathEscape(format), size)
	status, b, err := c.send(ctx, "GET", path, "", nil, c.timeout())
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, errorOf(status, b)
	}
	return b, nil
}

// Catalog returns every campaign, creator and link.
func (c *Client) Catalog(ctx context.Context) (Catalog, error) {
	var out Catalog
	return out, c.call(ctx, "GET", "/v1/catalog", nil, &out)
}

// ImportResult is the answer of POST /v1/links:bulk: the links created
// (or, with dry_run, that would be), or the lines refused.
type ImportResult struct {
	Created int            `json:"created"`
	Links   []ImportedLink `json:"links"`
	Error   string         `json:"error,omitempty"`
	Errors  []LineError    `json:"errors,omitempty"`
}

// ImportedLink is a link of an import, by its line (from 1).
type ImportedLink struct {
	Line int    `json:"line"`
	Code string `json:"code"`
	URL  string `json:"url"`
}

// LineError is why a line of an import was refused.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ImportLinks creates the links of lines, JSON lines each a NewLink, all
// or none; with dryRun it only validates them. When the API refuses, the
// result (with the lines refused, when it names them) comes with an
// *Error.
func (c *Client) ImportLinks(ctx context.Context, lines []byte, dryRun bool) (*ImportResult, error) {
	path := "/v1/links:bulk"
	if dryRun {
		path += "?dry_run=1"
	}
	timeout := c.BulkTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	status, b, err := c.send(ctx, "POST", path, "application/x-ndjson", lines, timeout)
	if err != nil {
		return nil, err
	}
	var res ImportResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%d %s: unexpected answer %.200q", status, http.StatusText(status), b)
	}
	if status > 299 {
		return &res, &Error{Status: status, Message: res.Error}
	}
	return &res, nil
}

// JSONLines returns links as the JSON lines ImportLinks takes.
func JSONLines(links ...NewLink) ([]byte, error) {
	var out []byte
	for _, l := range links {
		b, err := json.Marshal(l)
		if err != nil {
			return nil, err
		}
		out = append(append(out, b...), '\n')
	}
	return out, nil
}

// Apply sets the fields p gives in c.
func (p *CardPatch) Apply(c *counter.Card) {
	set(&c.Title, p.Title)
	set(&c.Description, p.Description)
	set(&c.Image, p.Image)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// The catalog's endpoints: campaigns, creators, links, and their stats.

type campaignRequest struct {
	Name                  *string           `json:"name"`
	StartsAt              *time.Time        `json:"starts_at"`
	EndsAt                *time.Time        `json:"ends_at"`
	SignupRewardCents     *int64            `json:"signup_reward_cents"`
	VisitBlockSize        *int64            `json:"visit_block_size"`
	VisitBlockRewardCents *int64            `json:"visit_block_reward_cents"`
	CapCents              *int64            `json:"cap_cents"`
	DedupeWindow          *counter.Duration `json:"dedupe_window"`
	EligibleCountries     []string          `json:"eligible_countries"`
	Preview               *counter.Card     `json:"preview"`
	AttributionWindow     *counter.Duration `json:"attribution_window"`
	SignupGrace           *counter.Duration `json:"signup_grace"`
	QueryPassthrough      *bool             `json:"query_passthrough"`
}

func (a *API) putCampaign(ctx context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if err := checkID("campaign", id); err != nil {
		return 0, nil, err
	}
	var req campaignRequest
	if err := decode(rc, &req); err != nil {
		return 0, nil, err
	}
	// Fields left out keep their current value, or take the reference
	// program's default when the campaign is new: a PUT that names only
	// the dates must not reset a cap.
	c, err := a.o.Store.Campaign(ctx, id)
	status := fasthttp.StatusOK
	switch {
	case errors.Is(err, counter.ErrNotFound):
		if req.StartsAt == nil || req.EndsAt == nil {
			return 0, nil, unprocessable("starts_at and ends_at are required (RFC 3339, e.g. 2026-05-11T00:00:00Z)")
		}
		status = fasthttp.StatusCreated
		c = counter.Campaign{
			ID:                    id,
			Name:                  id,
			SignupRewardCents:     DefaultSignupRewardCents,
			VisitBlockSize:        DefaultVisitBlockSize,
			VisitBlockRewardCents: DefaultVisitBlockRewardCents,
			CapCents:              DefaultCapCents,
			DedupeWindow:          counter.Duration(DefaultDedupeWindow),
			EligibleCountries:     []string{},
			AttributionWindow:     counter.Duration(DefaultAttributionWindow),
			QueryPassthrough:      true,
		}
	case err != nil:
		return 0, nil, err
	case req.DedupeWindow != nil && *req.DedupeWindow != c.DedupeWindow:
		// Windows are named by their start: another length would mix the
		// visitors of overlapping windows.
		return 0, nil, unprocessable("dedupe_window cannot change once the campaign exists (it is %s)", time.Duration(c.DedupeWindow))
	}
	old := c
	set(&c.Name, req.Name)
	set(&c.StartsAt, req.StartsAt)
	set(&c.EndsAt, req.EndsAt)
	c.StartsAt, c.EndsAt = c.StartsAt.UTC(), c.EndsAt.UTC()
	set(&c.SignupRewardCents, req.SignupRewardCents)
	set(&c.VisitBlockSize, req.VisitBlockSize)
	set(&c.VisitBlockRewardCents, req.VisitBlockRewardCents)
	set(&c.CapCents, req.CapCents)
	set(&c.DedupeWindow, req.DedupeWindow)
	set(&c.Preview, req.Preview)
	set(&c.AttributionWindow, req.AttributionWindow)
	set(&c.SignupGrace, req.SignupGrace)
	set(&c.QueryPassthrough, req.QueryPassthrough)
	if req.EligibleCountries != nil {
		c.EligibleCountries = []string{}
		for _, cc := range req.EligibleCountries {
			code, ok := countryCode(cc)
			if !ok {
				return 0, nil, unprocessable("eligible_countries: %q is not an ISO 3166-1 alpha-2 code", cc)
			}
			if !slices.Contains(c.EligibleCountries, code) {
				c.EligibleCountries = append(c.EligibleCountries, code)
			}
		}
	}
	if err := validateCampaign(&c); err != nil {
		return 0, nil, err
	}
	if status == fasthttp.StatusOK {
		if err := old.CheckChange(&c, a.o.Now()); err != nil {
			return 0, nil, unprocessable("%s", err)
		}
	}
	if err := validatePreview(c.Preview); err != nil {
		return 0, nil, err
	}
	if err := a.o.Store.PutCampaign(ctx, c); err != nil {
		return 0, nil, fmt.Errorf("cannot put campaign %q: %w", id, err)
	}
	a.refresh(ctx)
	return status, c, nil
}

// set sets *dst to *v when the request gave v.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func validateCampaign(c *counter.Campaign) error {
	switch {
	case len(c.Name) > 200:
		return unprocessable("name is longer than 200 bytes")
	case !c.EndsAt.After(c.StartsAt):
		return unprocessable("ends_at %s must be after starts_at %s", c.EndsAt.Format(time.RFC3339), c.StartsAt.Format(time.RFC3339))
	case c.SignupRewardCents < 0:
		return unprocessable("signup_reward_cents must not be negative")
	case c.VisitBlockSize < 1:
		return unprocessable("visit_block_size must be at least 1")
	case c.VisitBlockRewardCents < 0:
		return unprocessable("visit_block_reward_cents must not be negative")
	case c.CapCents < 0:
		return unprocessable("cap_cents must not be negative")
	case c.AttributionWindow <= 0:
		return unprocessable("attribution_window must be positive")
	case c.SignupGrace < 0:
		return unprocessable("signup_grace must not be negative")
	}
	// Windows are aligned to UTC days: a window divides a day or is whole days.
	w := time.Duration(c.DedupeWindow)
	const day = 24 * time.Hour
	if w < time.Minute || w%time.Second != 0 || (day%w != 0 && w%day != 0) {
		return unprocessable("dedupe_window %s must be at least 1m and divide 24h or be whole days", w)
	}
	return nil
}

// validatePreview checks what preview pages show. The page escapes every
// value; these limits keep it small and its image a safe URL.
func validatePreview(p counter.Card) error {
	switch {
	case len(p.Title) > 200:
		return unprocessable("preview.title is longer than 200 bytes")
	case len(p.Description) > 1000:
		return unprocessable("preview.description is longer than 1000 bytes")
	}
	if p.Image != "" {
		if err := redirect.ValidateDestination(p.Image, nil); err != nil {
			return unprocessable("preview.image: %s", err)
		}
	}
	return nil
}

// validateDestinations checks the destinations that d sets, each an
// absolute https URL of another host than ownHosts.
func validateDestinations(d *counter.Destinations, ownHosts []string) error {
	err := d.Validate(func(url string) error { return redirect.ValidateDestination(url, ownHosts) })
	if err != nil {
		return unprocessable("%s", err)
	}
	return nil
}

// countryCode normalizes an ISO 3166-1 alpha-2 code.
func countryCode(s string) (string, bool) {
	if len(s) != 2 {
		return "", false
	}
	var b [2]byte
	for i := range b {
		c := s[i] &^ 0x20 // ASCII upper case
		if c < 'A' || c > 'Z' {
			return "", false
		}
		b[i] = c
	}
	return string(b[:]), true
}

func (a *API) getCampaign(ctx context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if err := checkID("campaign", id); err != nil {
		return 0, nil, err
	}
	c, err := a.o.Store.Campaign(ctx, id)
	if errors.Is(err, counter.ErrNotFound) {
		return 0, nil, errorf(fasthttp.StatusNotFound, "campaign %q does not exist", id)
	}
	return fasthttp.StatusOK, c, err
}

type creatorRequest struct {
	Campaign string  `json:"campaign"`
	Handle   *string `json:"handle"`
	Country  *string `json:"country"`
	Status   *string `json:"status"`
	// AcceptedAt is when the creator accepted the campaign's terms (the
	// dashboard's accept button sends it). Set once: when one is
	// recorded, the first stays.
	AcceptedAt *time.Time `json:"accepted_at"`
}

func (a *API) putCreator(ctx context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if err := checkID("creator", id); err != nil {
		return 0, nil, err
	}
	var req creatorRequest
	if err := decode(rc, &req); err != nil {
		return 0, nil, err
	}
	if req.Campaign == "" {
		return 0, nil, unprocessable("campaign is required")
	}
	camp, err := a.campaignRef(ctx, req.Campaign)
	if err != nil {
		return 0, nil, err
	}
	// As for campaigns, fields left out keep their current value: a PUT
	// that changes the handle must not re-activate a suspended creator.
	c, err := a.o.Store.Creator(ctx, camp.ID, id)
	status := fasthttp.StatusOK
	switch {
	case errors.Is(err, counter.ErrNotFound):
		status = fasthttp.StatusCreated
		c = counter.Creator{ID: id, Campaign: camp.ID, Status: DefaultCreatorStatus}
	case err != nil:
		return 0, nil, err
	}
	set(&c.Handle, req.Handle)
	set(&c.Status, req.Status)
	if req.AcceptedAt != nil {
		// The ledger keeps it: a time it can hold (UTC, years 1 to 9999).
		at := req.AcceptedAt.UTC()
		if at.IsZero() || at.Year() < 1 {
			return 0, nil, unprocessable("accepted_at %s is not a time of acceptance", req.AcceptedAt.Format(time.RFC3339))
		}
		if c.AcceptedAt.IsZero() {
			c.AcceptedAt = at
		}
	}
	if req.Country != nil {
		country, ok := countryCode(*req.Country)
		if !ok {
			return 0, nil, unprocessable("country %q must be an ISO 3166-1 alpha-2 code such as \"US\"", *req.Country)
		}
		c.Country = country
	}
	if c.Country == "" {
		return 0, nil, unprocessable("country is required (an ISO 3166-1 alpha-2 code such as \"US\")")
	}
	if !camp.Eligible(c.Country) {
		return 0, nil, unprocessable("country %q is not eligible in campaign %q (eligible: %s)",
			c.Country, camp.ID, strings.Join(camp.EligibleCountries, ", "))
	}
	if !counter.ValidStatus(c.Status) {
		return 0, nil, unprocessable("status %q must be invited, active or suspended", c.Status)
	}
	if len(c.Handle) > 200 {
		return 0, nil, unprocessable("handle is longer than 200 bytes")
	}
	if err := a.o.Store.PutCreator(ctx, c); err != nil {
		return 0, nil, fmt.Errorf("cannot put creator %q: %w", id, err)
	}
	a.refresh(ctx)
	return status, c, nil
}

// campaignRef loads a campaign named in a request body: unknown is 422.
func (a *API) campaignRef(ctx context.Context, id string) (counter.Campaign, error) {
	if !validID(id) {
		return counter.Campaign{}, unprocessable("campaign %q does not exist", id)
	}
	c, err := a.o.Store.Campaign(ctx, id)
	if errors.Is(err, counter.ErrNotFound) {
		return c, unprocessable("campaign %q does not exist", id)
	}
	return c, err
}

func (a *API) getCreator(ctx context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if err := checkID("creator", id); err != nil {
		return 0, nil, err
	}
	campaign, err := a.campaignParam(rc)
	if err != nil {
		return 0, nil, err
	}
	c, err := a.o.Store.Creator(ctx, campaign, id)
	if errors.Is(err, counter.ErrNotFound) {
		return 0, nil, a.creatorNotFound(ctx, campaign, id)
	}
	return fasthttp.StatusOK, c, err
}

// creatorNotFound names what is missing: the campaign, or the creator in
// it.
func (a *API) creatorNotFound(ctx context.Context, campaign, id string) error {
	if _, err := a.o.Store.Campaign(ctx, campaign); errors.Is(err, counter.ErrNotFound) {
		return errorf(fasthttp.StatusNotFound, "campaign %q does not exist", campaign)
	}
	return errorf(fasthttp.StatusNotFound, "creator %q does not exist in campaign %q", id, campaign)
}

func (a *API) campaignParam(rc *fasthttp.RequestCtx) (string, error) {
	campaign := string(rc.QueryArgs().Peek("campaign"))
	if campaign == "" {
		return "", errorf(fasthttp.StatusBadRequest, "query parameter campaign is required")
	}
	return campaign, checkID("campaign", campaign)
}

type linkRequest struct {
	Campaign     string               `json:"campaign"`
	Creator      string               `json:"creator"`
	Code         string               `json:"code"`
	Destinations counter.Destinations `json:"destinations"`
	Preview      counter.Card         `json:"preview"`
}

type linkResponse struct {
	Code string `json:"code"`
	URL  string `json:"url"`
}

func (a *API) createLink(ctx context.Context, rc *fasthttp.RequestCtx) (int, any, error) {
	var req linkRequest
	if err := decode(rc, &req); err != nil {
		return 0, nil, err
	}
	l, err := a.newLink(ctx, &req, nil)
	if err != nil {
		return 0, nil, err
	}
	if l.Code != "" {
		if err := a.o.Store.CreateLink(ctx, l); errors.Is(err, counter.ErrExists) {
			return 0, nil, errorf(fasthttp.StatusConflict, "code %q is taken", l.Code)
		} else if err != nil {
			return 0, nil, fmt.Errorf("cannot create link %q: %w", l.Code, err)
		}
	} else {
		var err error
		// A collision is one in ~1e11 per existing link; a few tries suffice.
		for range 5 {
			l.Code = redirect.NewCode()
			if err = a.o.Store.CreateLink(ctx, l); !errors.Is(err, counter.ErrExists) {
				break
			}
		}
		if err != nil {
			return 0, nil, fmt.Errorf("cannot create link: %w", err)
		}
	}
	a.refresh(ctx)
	return fasthttp.StatusCreated, a.linkResponse(l.Code), nil
}

func (a *API) linkResponse(code string) linkResponse {
	return linkResponse{Code: code, URL: strings.TrimSuffix(a.o.PublicURL, "/") + "/" + code}
}

// refs caches the campaigns and creators a bulk import names, so that
// each is read once. nil: no cache.
type refs struct {
	campaigns map[string]error
	creators  map[[2]string]error
}

// newLink validates req as a new link, and returns it with its code, or
// none for a generated one.
func (a *API) newLink(ctx context.Context, req *linkRequest, cache *refs) (counter.Link, error) {
	if req.Campaign == "" || req.Creator == "" {
		return counter.Link{}, unprocessable("campaign and creator are required")
	}
	if err := a.linkRefs(ctx, req, cache); err != nil {
		return counter.Link{}, err
	}
	d := req.Destinations
	if d.Default == "" {
		return counter.Link{}, unprocessable("destinations.default is required")
	}
	if err := validateDestinations(&d, a.ownHosts); err != nil {
		return counter.Link{}, err
	}
	if err := validatePreview(req.Preview); err != nil {
		return counter.Link{}, err
	}
	if req.Code != "" {
		if err := redirect.CheckCustomCode(req.Code); err != nil {
			return counter.Link{}, unprocessable("%s", err)
		}
	}
	return counter.Link{Code: req.Code, Campaign: req.Campaign, Creator: req.Creator, Destinations: d, Preview: req.Preview,
		CreatedAt: time.Now().UTC()}, nil
}

// linkRefs checks that the campaign and the creator of req exist.
func (a *API) linkRefs(ctx context.Context, req *linkRequest, cache *refs) error {
	campaign := func() error {
		_, err := a.campaignRef(ctx, req.Campaign)
		return err
	}
	creator := func() error {
		if !validID(req.Creator) {
			return unprocessable("creator %q does not exist in campaign %q", req.Creator, req.Campaign)
		}
		_, err := a.o.Store.Creator(ctx, req.Campaign, req.Creator)
		if errors.Is(err, counter.ErrNotFound) {
			return unprocessable("creator %q does not exist in campaign %q", req.Creator, req.Campaign)
		}
		return err
	}
	if cache == nil {
		if err := campaign(); err != nil {
			return err
		}
		return creator()
	}
	err, ok := cache.campaigns[req.Campaign]
	if !ok {
		err = campaign()
		cache.campaigns[req.Campaign] = err
	}
	if err != nil {
		return err
	}
	key := [2]string{req.Campaign, req.Creator}
	if err, ok = cache.creators[key]; !ok {
		err = creator()
		cache.creators[key] = err
	}
	return err
}

func (a *API) getLink(ctx context.Context, rc *fasthttp.RequestCtx, code string) (int, any, error) {
	l, err := a.link(ctx, code)
	if err != nil {
		return 0, nil, err
	}
	return fasthttp.StatusOK, a.linkView(l), nil
}

// catalog is every campaign, creator and link, at one version: what
// clickgate catalog import puts back into a store that was reset.
func (a *API) catalog(ctx context.Context) (int, any, error) {
	cat, err := a.o.Store.Catalog(ctx)
	if err != nil {
		return 0, nil, err
	}
	return fasthttp.StatusOK, map[string]any{"version": cat.Version, "campaigns": nonNil(cat.Campaigns),
		"creators": nonNil(cat.Creators), "links": nonNil(cat.Links)}, nil
}

// nonNil makes a nil slice encode as [], not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// refresh makes this node serve a change at once; other nodes pick it up
// within their poll interval.
func (a *API) refresh(ctx context.Context) {
	if err := a.o.Table.Refresh(ctx); err != nil {
		a.o.Logger.Warn("cannot refresh link table after a change; the poller will retry", "err", err)
	}
}

func (a *API) stats(ctx context.Context, rc *fasthttp.RequestCtx, creator string) (int, any, error) {
	campaign, err := a.campaignParam(rc)
	if err != nil {
		return 0, nil, err
	}
	if err := checkID("creator", creator); err != nil {
		return 0, nil, err
	}
	by := string(rc.QueryArgs().Peek("by"))
	if by != "" && by != "day" {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "by=%q: the only breakdown is by=day", by)
	}
	if _, err := a.o.Store.Creator(ctx, campaign, creator); errors.Is(err, counter.ErrNotFound) {
		return 0, nil, a.creatorNotFound(ctx, campaign, creator)
	} else if err != nil {
		return 0, nil, err
	}
	days, err := a.o.Recorder.Stats(ctx, campaign, creator)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read stats of creator %q: %w", creator, err)
	}
	s := adminclient.Stats{Campaign: campaign, Creator: creator, Counts: counter.Total(days)}
	s.Clicks = s.Counts.Clicks()
	if by == "day" {
		s.Days = nonNil(days)
	}
	return fasthttp.StatusOK, s, nil
}

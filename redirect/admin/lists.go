package admin

// The lists of the admin API: campaigns, creators and links, in pages.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect"
)

// Page sizes of the lists.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// page is where a list starts and how long it is. A list is in a fixed
// order (campaigns by id, creators by campaign then id, links by code),
// and its cursor is the key of the last entry of the page before,
// base64url-encoded with the list's name: opaque, and valid however the
// catalog changed since.
type page struct {
	list  string
	limit int
	after string // the key after which the page starts; "" for the first
}

func parsePage(rc *fasthttp.RequestCtx, list string) (page, error) {
	p := page{list: list, limit: DefaultPageLimit}
	args := rc.QueryArgs()
	if args.Has("limit") {
		v := string(args.Peek("limit"))
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageLimit || strings.TrimLeft(v, "0123456789") != "" {
			return p, errorf(fasthttp.StatusBadRequest, "limit %q must be a whole number from 1 to %d", v, MaxPageLimit)
		}
		p.limit = n
	}
	if args.Has("cursor") {
		after, err := decodeCursor(list, string(args.Peek("cursor")))
		if err != nil {
			return p, errorf(fasthttp.StatusBadRequest, "cursor %.80q is not a cursor of this list (%s); pass next_cursor of the page before as it is", args.Peek("cursor"), err)
		}
		p.after = after
	}
	return p, nil
}

// cursor returns the cursor of the page after one that ends at key.
func (p page) cursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(p.list + ":" + key))
}

// decodeCursor returns the key of a cursor of list, checked as such a key.
func decodeCursor(list, cursor string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", errors.New("not base64url")
	}
	key, ok := strings.CutPrefix(string(b), list+":")
	if !ok {
		return "", errors.New("another list's, or none")
	}
	switch list {
	case "campaigns":
		ok = validID(key)
	case "creators":
		campaign, id, found := strings.Cut(key, "/")
		ok = found && validID(campaign) && validID(id)
	case "links":
		ok = redirect.ValidCode([]byte(key))
	}
	if !ok {
		return "", errors.New("malformed key")
	}
	return key, nil
}

// paginate returns the page of items, in the order of key, and the cursor
// of the next page, or "" at the end.
func paginate[T any](items []T, key func(*T) string, p page) ([]T, string) {
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(key(&a), key(&b)) })
	start, _ := slices.BinarySearchFunc(items, p.after, func(it T, k string) int { return strings.Compare(key(&it), k) })
	if p.after != "" && start < len(items) && key(&items[start]) == p.after {
		start++
	}
	items = items[start:]
	if len(items) <= p.limit {
		return items, ""
	}
	items = items[:p.limit]
	return items, p.cursor(key(&items[len(items)-1]))
}

// queryID reads an optional id parameter: "" when not given.
func queryID(rc *fasthttp.RequestCtx, name string) (string, error) {
	args := rc.QueryArgs()
	if !args.Has(name) {
		return "", nil
	}
	id := string(args.Peek(name))
	if !validID(id) {
		return "", errorf(fasthttp.StatusBadRequest, "%s %q must be 1 to 64 letters, digits, '_', '-' or '.'", name, id)
	}
	return id, nil
}

type campaignList struct {
	Campaigns  []counter.Campaign `json:"campaigns"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

// listCampaigns is GET /v1/campaigns?limit=&cursor=.
func (a *API) listCampaigns(ctx context.Context, rc *fasthttp.RequestCtx) (int, any, error) {
	p, err := parsePage(rc, "campaigns")
	if err != nil {
		return 0, nil, err
	}
	cat, err := a.o.Store.Roster(ctx)
	if err != nil {
		return 0, nil, err
	}
	items, next := paginate(cat.Campaigns, func(c *counter.Campaign) string { return c.ID }, p)
	return fasthttp.StatusOK, campaignList{nonNil(items), next}, nil
}

type creatorList struct {
	Creators   []counter.Creator `json:"creators"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// listCreators is GET /v1/creators?campaign=&status=&limit=&cursor=.
func (a *API) listCreators(ctx context.Context, rc *fasthttp.RequestCtx) (int, any, error) {
	p, err := parsePage(rc, "creators")
	if err != nil {
		return 0, nil, err
	}
	campaign, err := queryID(rc, "campaign")
	if err != nil {
		return 0, nil, err
	}
	status := string(rc.QueryArgs().Peek("status"))
	if status != "" && !counter.ValidStatus(status) {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "status %q must be invited, active or suspended", status)
	}
	cat, err := a.o.Store.Roster(ctx)
	if err != nil {
		return 0, nil, err
	}
	if err := campaignIn(cat, campaign); err != nil {
		return 0, nil, err
	}
	creators := slices.DeleteFunc(cat.Creators, func(c counter.Creator) bool {
		return campaign != "" && c.Campaign != campaign || status != "" && c.Status != status
	})
	items, next := paginate(creators, func(c *counter.Creator) string { return c.Campaign + "/" + c.ID }, p)
	return fasthttp.StatusOK, creatorList{nonNil(items), next}, nil
}

// campaignIn is a 404 naming the campaign when cat lacks it.
func campaignIn(cat *counter.Catalog, campaign string) error {
	if campaign != "" && !slices.ContainsFunc(cat.Campaigns, func(c counter.Campaign) bool { return c.ID == campaign }) {
		return errorf(fasthttp.StatusNotFound, "campaign %q does not exist", campaign)
	}
	return nil
}

// linkView is a link as the API shows it: with its public URL.
type linkView struct {
	counter.Link
	URL string `json:"url"`
}

func (a *API) linkView(l counter.Link) linkView {
	return linkView{Link: l, URL: a.linkResponse(l.Code).URL}
}

type linkList struct {
	Links      []linkView `json:"links"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// listLinks is GET /v1/links?campaign=&creator=&disabled=&limit=&cursor=.
func (a *API) listLinks(ctx context.Context, rc *fasthttp.RequestCtx) (int, any, error) {
	p, err := parsePage(rc, "links")
	if err != nil {
		return 0, nil, err
	}
	campaign, err := queryID(rc, "campaign")
	if err != nil {
		return 0, nil, err
	}
	creator, err := queryID(rc, "creator")
	if err != nil {
		return 0, nil, err
	}
	var disabled *bool
	if v := string(rc.QueryArgs().Peek("disabled")); rc.QueryArgs().Has("disabled") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return 0, nil, errorf(fasthttp.StatusBadRequest, "disabled %q must be true or false", v)
		}
		disabled = &b
	}
	cat, err := a.o.Store.Roster(ctx)
	if err != nil {
		return 0, nil, err
	}
	if err := campaignIn(cat, campaign); err != nil {
		return 0, nil, err
	}
	if creator != "" && !slices.ContainsFunc(cat.Creators, func(c counter.Creator) bool {
		return c.ID == creator && (campaign == "" || c.Campaign == campaign)
	}) {
		if campaign != "" {
			return 0, nil, errorf(fasthttp.StatusNotFound, "creator %q does not exist in campaign %q", creator, campaign)
		}
		return 0, nil, errorf(fasthttp.StatusNotFound, "creator %q does not exist in any campaign", creator)
	}
	// From the link table, brought to the store's catalog first: the
	// store would decode every link of the catalog for each page. A
	// table that refuses a reset store's catalog lists the links it
	// serves; one that could not catch up in time lists nothing.
	if err := a.o.Table.Refresh(ctx); err != nil && !errors.Is(err, redirect.ErrCatalogReset) {
		return 0, nil, err
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, fmt.Errorf("cannot bring the link table up to date: %w", err)
	}
	items, more := a.o.Table.Links(campaign, creator, p.after, p.limit, func(l *counter.Link) bool {
		return disabled == nil || l.Disabled == *disabled
	})
	out := linkList{Links: make([]linkView, len(items))}
	if more {
		out.NextCursor = p.cursor(items[len(items)-1].Code)
	}
	for i, l := range items {
		out.Links[i] = a.linkView(l)
	}
	return fasthttp.StatusOK, out, nil
}

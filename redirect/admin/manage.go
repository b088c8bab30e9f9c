package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
	"github.com/clickgate/clickgate/redirect/qrcode"
)

// Catalog management: lists with paging and filters, link changes, a
// link's stats and QR code, a campaign's totals.

// linkUpdater is a store that changes links in place (both stores are).
type linkUpdater interface {
	UpdateLink(ctx context.Context, code string, update func(*counter.Link) error) (counter.Link, error)
}

// routeManagement serves the management endpoints; ok is false for any
// other path.
func (a *API) routeManagement(ctx context.Context, rc *fasthttp.RequestCtx, method string, seg []string) (ok bool, status int, body any, err error) {
	if len(seg) < 2 || seg[0] != "v1" {
		return false, 0, nil, nil
	}
	only := func(allow string, f func() (int, any, error)) (bool, int, any, error) {
		if !strings.Contains(", "+allow+",", ", "+method+",") {
			return true, 0, nil, methodNotAllowed(rc, allow)
		}
		status, body, err := f()
		return true, status, body, err
	}
	switch {
	case len(seg) == 2 && seg[1] == "campaigns":
		return only("GET", func() (int, any, error) { return a.listCampaigns(ctx, rc) })
	case len(seg) == 2 && seg[1] == "creators":
		return only("GET", func() (int, any, error) { return a.listCreators(ctx, rc) })
	case len(seg) == 2 && seg[1] == "links":
		return only("GET, POST", func() (int, any, error) {
			if method == "POST" {
				return a.createLink(ctx, rc)
			}
			return a.listLinks(ctx, rc)
		})
	case len(seg) == 3 && seg[1] == "links":
		return only("GET, PATCH", func() (int, any, error) {
			if method == "PATCH" {
				return a.patchLink(ctx, rc, seg[2])
			}
			return a.getLink(ctx, rc, seg[2])
		})
	case len(seg) == 4 && seg[1] == "links" && seg[3] == "stats":
		return only("GET", func() (int, any, error) { return a.linkStats(ctx, rc, seg[2]) })
	case len(seg) == 4 && seg[1] == "links" && (seg[3] == "qr.svg" || seg[3] == "qr.png"):
		return only("GET", func() (int, any, error) { return a.linkQR(ctx, rc, seg[2], seg[3]) })
	case len(seg) == 4 && seg[1] == "campaigns" && seg[3] == "totals":
		return only("GET", func() (int, any, error) { return a.campaignTotals(ctx, rc, seg[2]) })
	}
	return false, 0, nil, nil
}

// linkPatch is a PATCH /v1/links/{code} body: the fields given change,
// the others keep their value. An empty string clears an optional field
// (destinations.ios, destinations.android, a preview field).
type linkPatch struct {
	Destinations *struct {
		Default *string `json:"default"`
		IOS     *string `json:"ios"`
		Android *string `json:"android"`
	} `json:"destinations"`
	Preview *struct {
		Title       *string `json:"title"`
		Description *string `json:"description"`
		Image       *string `json:"image"`
	} `json:"preview"`
	Disabled *bool `json:"disabled"`
}

// apply changes l by the patch and validates the result as a new link's.
func (p *linkPatch) apply(l *counter.Link, ownHosts []string) error {
	if d := p.Destinations; d != nil {
		set(&l.Destinations.Default, d.Default)
		set(&l.Destinations.IOS, d.IOS)
		set(&l.Destinations.Android, d.Android)
	}
	if c := p.Preview; c != nil {
		set(&l.Preview.Title, c.Title)
		set(&l.Preview.Description, c.Description)
		set(&l.Preview.Image, c.Image)
	}
	set(&l.Disabled, p.Disabled)
	if l.Destinations.Default == "" {
		return unprocessable("destinations.default cannot be empty")
	}
	if err := validateDestinations(&l.Destinations, ownHosts); err != nil {
		return err
	}
	return validatePreview(l.Preview)
}

// patchLink is PATCH /v1/links/{code}.
func (a *API) patchLink(ctx context.Context, rc *fasthttp.RequestCtx, code string) (int, any, error) {
	if !redirect.ValidCode([]byte(code)) {
		return 0, nil, errorf(fasthttp.StatusNotFound, "link %q does not exist", code)
	}
	var p linkPatch
	if err := decode(rc, &p); err != nil {
		return 0, nil, err
	}
	if p.Destinations == nil && p.Preview == nil && p.Disabled == nil {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "nothing to change: give destinations, preview or disabled")
	}
	u, ok := a.o.Store.(linkUpdater)
	if !ok {
		return 0, nil, errorf(fasthttp.StatusNotImplemented, "this store cannot change links")
	}
	l, err := u.UpdateLink(ctx, code, func(l *counter.Link) error { return p.apply(l, a.ownHosts) })
	if errors.Is(err, counter.ErrNotFound) {
		return 0, nil, errorf(fasthttp.StatusNotFound, "link %q does not exist", code)
	}
	if err != nil {
		return 0, nil, err
	}
	a.refresh(ctx)
	return fasthttp.StatusOK, a.linkView(l), nil
}

// link reads the link of a path's code: unknown is 404.
func (a *API) link(ctx context.Context, code string) (counter.Link, error) {
	if !redirect.ValidCode([]byte(code)) {
		return counter.Link{}, errorf(fasthttp.StatusNotFound, "link %q does not exist", code)
	}
	l, err := a.o.Store.Link(ctx, code)
	if errors.Is(err, counter.ErrNotFound) {
		return l, errorf(fasthttp.StatusNotFound, "link %q does not exist", code)
	}
	return l, err
}

// linkStats is GET /v1/links/{code}/stats?by=day: the link's own counts,
// of every reason, as /v1/creators/{id}/stats gives a creator's. Visits
// logged before links were have no link and are their creator's alone,
// and the answer says so.
func (a *API) linkStats(ctx context.Context, rc *fasthttp.RequestCtx, code string) (int, any, error) {
	by := string(rc.QueryArgs().Peek("by"))
	if by != "" && by != "day" {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "by=%q: the only breakdown is by=day", by)
	}
	l, err := a.link(ctx, code)
	if err != nil {
		return 0, nil, err
	}
	// What this node recorded is in the store first, as Recorder.Stats
	// does for a creator.
	if err := a.o.Recorder.Flush(ctx); err != nil {
		return 0, nil, fmt.Errorf("cannot flush counts of link %q: %w", l.Code, err)
	}
	days, err := a.o.Store.LinkStats(ctx, l.Campaign, l.Creator, l.Code)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read stats of link %q: %w", l.Code, err)
	}
	s := adminclient.LinkStats{Code: l.Code, Campaign: l.Campaign, Creator: l.Creator, Disabled: l.Disabled,
		CountedPer: "link", Note: LinkStatsNote, Counts: counter.Total(days)}
	s.Clicks = s.Counts.Clicks()
	if by == "day" {
		s.Days = nonNil(days)
	}
	return fasthttp.StatusOK, s, nil
}

// LinkStatsNote is the note of a link's stats.
const LinkStatsNote = "a link's counts are every click on it and every signup of its clicks, for every reason; " +
	"a creator's counts are the sum of their links' and of the clicks and signups recorded before links were, " +
	"which are counted for the creator only (GET /v1/creators/{id}/stats)"

// campaignTotals is GET /v1/campaigns/{id}/totals?by=creator|day: the sums
// of the counts of every creator of the campaign, read as GET
// /v1/creators/{id}/stats reads one (one store read per creator).
func (a *API) campaignTotals(ctx context.Context, rc *fasthttp.RequestCtx, id string) (int, any, error) {
	if err := checkID("campaign", id); err != nil {
		return 0, nil, err
	}
	by := string(rc.QueryArgs().Peek("by"))
	if by != "" && by != "creator" && by != "day" {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "by=%q: the breakdowns are by=creator and by=day", by)
	}
	cat, err := a.o.Store.Roster(ctx)
	if err != nil {
		return 0, nil, err
	}
	if err := campaignIn(cat, id); err != nil {
		return 0, nil, err
	}
	// What this node recorded is in the store first, once for all.
	if err := a.o.Recorder.Flush(ctx); err != nil {
		return 0, nil, fmt.Errorf("cannot flush counts of campaign %q: %w", id, err)
	}
	t := adminclient.Totals{Campaign: id}
	byDay := map[counter.Day]*counter.Counts{}
	for _, cr := range cat.Creators {
		if cr.Campaign != id {
			continue
		}
		t.Creators++
		days, err := a.o.Store.Stats(ctx, id, cr.ID)
		if err != nil {
			return 0, nil, fmt.Errorf("cannot read stats of creator %q: %w", cr.ID, err)
		}
		sum := counter.Total(days)
		t.Counts.Add(&sum)
		switch by {
		case "creator":
			t.ByCreator = append(t.ByCreator, adminclient.CreatorCounts{Creator: cr.ID, Counts: sum})
		case "day":
			for _, d := range days {
				c := byDay[d.Day]
				if c == nil {
					c = new(counter.Counts)
					byDay[d.Day] = c
				}
				c.Add(&d.Counts)
			}
		}
	}
	t.Clicks = t.Counts.Clicks()
	switch by {
	case "creator":
		t.ByCreator = nonNil(t.ByCreator)
	case "day":
		t.Days = make([]counter.DayCounts, 0, len(byDay))
		for d, c := range byDay {
			t.Days = append(t.Days, counter.DayCounts{Day: d, Counts: *c})
		}
		slices.SortFunc(t.Days, func(a, b counter.DayCounts) int { return cmp.Compare(a.Day.String(), b.Day.String()) })
	}
	return fasthttp.StatusOK, t, nil
}

// linkQR is GET /v1/links/{code}/qr.svg and qr.png?size=N: the QR code of
// the link's public URL, N pixels wide (default qrcode.DefaultSize).
func (a *API) linkQR(ctx context.Context, rc *fasthttp.RequestCtx, code, file string) (int, any, error) {
	size := qrcode.DefaultSize
	if args := rc.QueryArgs(); args.Has("size") {
		v := string(args.Peek("size"))
		n, err := strconv.Atoi(v)
		if err != nil || strings.TrimLeft(v, "0123456789") != "" {
			return 0, nil, errorf(fasthttp.StatusBadRequest, "size %q must be a whole number of pixels from %d to %d", v, qrcode.MinSize, qrcode.MaxSize)
		}
		size = n
	}
	l, err := a.link(ctx, code)
	if err != nil {
		return 0, nil, err
	}
	qr, err := qrcode.New(a.linkResponse(l.Code).URL)
	if err != nil {
		return 0, nil, err
	}
	if err := qr.CheckSize(size); err != nil {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "%s", err)
	}
	if file == "qr.svg" {
		b, err := qr.SVG(size)
		return fasthttp.StatusOK, rawBody{"image/svg+xml", b}, err
	}
	b, err := qr.PNG(size)
	return fasthttp.StatusOK, rawBody{"image/png", b}, err
}

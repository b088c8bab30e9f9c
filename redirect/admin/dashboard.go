package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
)

// CreatorPages mints a creator's dashboard page URL (package dashboard).
type CreatorPages interface {
	// Rotate returns a new page URL for the creator and revokes the one
	// before. The creator exists.
	Rotate(ctx context.Context, campaign, creator string) (string, error)
}

// creatorPage answers POST /v1/creators/{id}/dashboard?campaign=C with a
// new page URL for the creator: {"url": ...}. The URL before stops working.
func (a *API) creatorPage(ctx context.Context, rc *fasthttp.RequestCtx, creator string) (int, any, error) {
	if a.o.CreatorPages == nil {
		return 0, nil, errorf(fasthttp.StatusNotFound, "the dashboard is off on this node (--dashboard-listen is empty)")
	}
	campaign, err := a.campaignParam(rc)
	if err != nil {
		return 0, nil, err
	}
	if err := checkID("creator", creator); err != nil {
		return 0, nil, err
	}
	if _, err := a.o.Store.Creator(ctx, campaign, creator); errors.Is(err, counter.ErrNotFound) {
		return 0, nil, a.creatorNotFound(ctx, campaign, creator)
	} else if err != nil {
		return 0, nil, err
	}
	url, err := a.o.CreatorPages.Rotate(ctx, campaign, creator)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot mint the page of creator %q: %w", creator, err)
	}
	return fasthttp.StatusOK, map[string]string{"url": url}, nil
}

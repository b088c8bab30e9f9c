package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// The pages read lists a page at a time, through the admin API's paged
// lists (GET /v1/campaigns, /v1/creators?campaign=, /v1/links?campaign=
// &creator=): a page that lists creators or links never loads the whole
// catalog, however many there are. A list's cursor travels in the page's
// own URL, opaque, and the API checks it.

// Page sizes of the dashboard's lists.
const (
	campaignsPerPage = 50
	creatorsPerPage  = 50
	linksPerPage     = 50
)

// listPath returns path with the query of a paged list: the non-empty
// params, limit and cursor.
func listPath(path string, limit int, cursor string, params ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] != "" {
			q.Set(params[i], params[i+1])
		}
	}
	q.Set("limit", fmt.Sprint(limit))
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return path + "?" + q.Encode()
}

// campaignPage reads one page of campaigns, by id.
func (s *Server) campaignList(ctx context.Context, cursor string) ([]counter.Campaign, string, error) {
	var out adminclient.CampaignPage
	err := s.o.Admin.call(ctx, http.MethodGet, listPath("/v1/campaigns", campaignsPerPage, cursor), nil, &out)
	return out.Campaigns, out.NextCursor, err
}

// creatorList reads one page of a campaign's creators, by id.
func (s *Server) creatorList(ctx context.Context, campaign, cursor string) ([]counter.Creator, string, error) {
	var out adminclient.CreatorPage
	err := s.o.Admin.call(ctx, http.MethodGet, listPath("/v1/creators", creatorsPerPage, cursor, "campaign", campaign), nil, &out)
	return out.Creators, out.NextCursor, err
}

// linkRow is a link with its public URL, as the API gives it, and, on
// the pages that list a creator's links, its counts (linkFigures).
type linkRow struct {
	adminclient.Link
	Counts counter.Counts `json:"-"`
}

// linkFigures reads the counts of each link of rows, as GET
// /v1/links/{code}/stats gives them.
func (s *Server) linkFigures(ctx context.Context, rows []linkRow) error {
	for i := range rows {
		var stats adminclient.LinkStats
		if err := s.o.Admin.call(ctx, http.MethodGet, "/v1/links/"+url.PathEscape(rows[i].Code)+"/stats", nil, &stats); err != nil {
			return err
		}
		rows[i].Counts = stats.Counts
	}
	return nil
}

// linkList reads one page of links of a campaign, or of one of its
// creators, by code; they are then shown by creator and age.
func (s *Server) linkList(ctx context.Context, campaign, creator, cursor string) ([]linkRow, string, error) {
	var out adminclient.LinkPage
	err := s.o.Admin.call(ctx, http.MethodGet, listPath("/v1/links", linksPerPage, cursor, "campaign", campaign, "creator", creator), nil, &out)
	var rows []linkRow
	for _, l := range out.Links {
		rows = append(rows, linkRow{Link: l})
	}
	slices.SortFunc(rows, func(a, b linkRow) int {
		return cmp.Or(cmp.Compare(a.Creator, b.Creator), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Code, b.Code))
	})
	return rows, out.NextCursor, err
}

// campaignTotals are a campaign's counts as GET /v1/campaigns/{id}/totals
// ?by=day gives them: every creator's, added up, by day.
type campaignTotals struct {
	Creators int
	Total    counter.Counts
	Days     []counter.DayCounts
}

func (s *Server) campaignTotals(ctx context.Context, id string) (campaignTotals, error) {
	var out adminclient.Totals
	if err := s.o.Admin.call(ctx, http.MethodGet, "/v1/campaigns/"+url.PathEscape(id)+"/totals?by=day", nil, &out); err != nil {
		return campaignTotals{}, err
	}
	slices.SortFunc(out.Days, func(a, b counter.DayCounts) int { return cmp.Compare(a.Day, b.Day) })
	return campaignTotals{Creators: out.Creators, Total: out.Counts, Days: out.Days}, nil
}

// cursorParam reads a list's cursor from the page's query: the API checks
// it, and a cursor it refuses is a 400 with its message.
func cursorParam(r *http.Request, name string) string {
	return r.URL.Query().Get(name)
}

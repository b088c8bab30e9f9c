package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/clickgate/clickgate/counter"
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
	var out struct {
		Campaigns  []counter.Campaign `json:"campaigns"`
		NextCursor string             `json:"next_cursor"`
	}
	err := s.o.Admin.call(ctx, http.MethodGet, listPath("/v1/campaigns", campaignsPerPage, cursor), nil, &out)
	return out.Campaigns, out.NextCursor, err
}

// creatorList reads one page of a campaign's creators, by id.
func (s *Server) creatorList(ctx context.Context, campaign, cursor string) ([]counter.Creator, string, error) {
	var out struct {
		Creators   []counter.Creator `json:"creators"`
		NextCursor string            `json:"next_cursor"`
	}
	err := s.o.Admin.call(ctx, http.MethodGet, listPath("/v1/creators", creatorsPerPage, cursor, "campaign", campaign), nil, &out)
	return out.Creators, out.NextCursor, err
}

// linkRow is a link with its public URL, as the API gives it, and, on
// the pages that list a creator's links, its counts (linkFigures).
type linkRow struct {
	counter.Link
	URL    string         `json:"url"`
	Counts counter.Counts `json:"-"`
}

// linkFigures reads the counts of each link of rows, as GET
// /v1/links/{code}/stats gives them.
func (s *Server) linkFigures(ctx context.Context, rows []linkRow) error {
	for i := range rows {
		var stats map[string]any
		if err := s.o.Admin.call(ctx, http.MethodGet, "/v1/links/"+url.PathEscape(rows[i].Code)+"/stats", nil, &stats); err != nil {
			return err
		}
		rows[i].Counts = countsOf(stats)
	}
	return nil
}

// linkList reads one page of links of a campaign, or of one of its
// creators, by code; they are then shown by creator and age.
func (s *Server) linkList(ctx context.Context, campaign, creator, cursor string) ([]linkRow, string, error) {
	var out struct {
		Links      []linkRow `json:"links"`
		NextCursor string    `json:"next_cursor"`
	}
	err := s.o.Admin.call(ctx, http.MethodGet, listPath("/v1/links", linksPerPage, cursor, "campaign", campaign, "creator", creator), nil, &out)
	slices.SortFunc(out.Links, func(a, b linkRow) int {
		return cmp.Or(cmp.Compare(a.Creator, b.Creator), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Code, b.Code))
	})
	return out.Links, out.NextCursor, err
}

// countsOf reads the counts of an API answer: one member per reason.
func countsOf(m map[string]any) counter.Counts {
	var c counter.Counts
	for r := range counter.NumReasons {
		if n, ok := m[r.String()].(float64); ok {
			c[r] = int64(n)
		}
	}
	return c
}

// campaignTotals are a campaign's counts as GET /v1/campaigns/{id}/totals
// ?by=day gives them: every creator's, added up, by day.
type campaignTotals struct {
	Creators int
	Total    counter.Counts
	Days     []counter.DayCounts
}

func (s *Server) campaignTotals(ctx context.Context, id string) (campaignTotals, error) {
	var out map[string]any
	var t campaignTotals
	if err := s.o.Admin.call(ctx, http.MethodGet, "/v1/campaigns/"+url.PathEscape(id)+"/totals?by=day", nil, &out); err != nil {
		return t, err
	}
	t.Total = countsOf(out)
	if n, ok := out["creators"].(float64); ok {
		t.Creators = int(n)
	}
	days, _ := out["days"].([]any)
	for _, d := range days {
		m, _ := d.(map[string]any)
		name, _ := m["day"].(string)
		day, err := counter.ParseDay(name)
		if err != nil {
			return t, fmt.Errorf("cannot read day %q of the totals of campaign %q: %w", name, id, err)
		}
		t.Days = append(t.Days, counter.DayCounts{Day: day, Counts: countsOf(m)})
	}
	slices.SortFunc(t.Days, func(a, b counter.DayCounts) int { return cmp.Compare(a.Day, b.Day) })
	return t, nil
}

// cursorParam reads a list's cursor from the page's query: the API checks
// it, and a cursor it refuses is a 400 with its message.
func cursorParam(r *http.Request, name string) string {
	return r.URL.Query().Get(name)
}

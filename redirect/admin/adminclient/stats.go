package adminclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
)

// The API writes counts as an open object, {"clicks": N, "<reason>": N,
// ...}, so that a new reason adds a field. These types read it into
// counter.Counts and write it back the same way. Clicks is the API's
// figure; by day and by creator it is derived (counter.Counts.Clicks).

// Stats are the counts of one creator in one campaign, an answer of GET
// /v1/creators/{id}/stats.
type Stats struct {
	Campaign string
	Creator  string
	Clicks   int64
	Counts   counter.Counts
	Days     []counter.DayCounts // with by=day, oldest first; else nil
}

// LinkStats are the counts of one link, of every reason, an answer of GET
// /v1/links/{code}/stats.
type LinkStats struct {
	Code       string
	Campaign   string
	Creator    string
	Disabled   bool
	CountedPer string // "link"
	Note       string
	Clicks     int64
	Counts     counter.Counts
	Days       []counter.DayCounts // with by=day; else nil
}

// Totals are the counts of every creator of a campaign summed, an answer
// of GET /v1/campaigns/{id}/totals.
type Totals struct {
	Campaign  string
	Creators  int
	Clicks    int64
	Counts    counter.Counts
	ByCreator []CreatorCounts     // with by=creator; else nil
	Days      []counter.DayCounts // with by=day; else nil
}

// CreatorCounts are one creator's counts in Totals.ByCreator.
type CreatorCounts struct {
	Creator string
	Counts  counter.Counts
}

// Stats returns the counts of creator in campaign; by is "" or "day".
func (c *Client) Stats(ctx context.Context, campaign, creator, by string) (Stats, error) {
	q := url.Values{"campaign": {campaign}}
	if by != "" {
		q.Set("by", by)
	}
	var s Stats
	return s, c.call(ctx, "GET", "/v1/creators/"+url.PathEscape(creator)+"/stats?"+q.Encode(), nil, &s)
}

// LinkStats returns the counts of link code; by is "" or "day".
func (c *Client) LinkStats(ctx context.Context, code, by string) (LinkStats, error) {
	var s LinkStats
	return s, c.call(ctx, "GET", "/v1/links/"+url.PathEscape(code)+"/stats"+byQuery(by), nil, &s)
}

// CampaignTotals returns the counts of campaign id; by is "", "creator" or
// "day".
func (c *Client) CampaignTotals(ctx context.Context, id, by string) (Totals, error) {
	var t Totals
	return t, c.call(ctx, "GET", "/v1/campaigns/"+url.PathEscape(id)+"/totals"+byQuery(by), nil, &t)
}

// Flush flushes the node's store into its ledger now.
func (c *Client) Flush(ctx context.Context) (ledger.FlushSummary, error) {
	var s ledger.FlushSummary
	return s, c.call(ctx, "POST", "/v1/flush", nil, &s)
}

func byQuery(by string) string {
	if by == "" {
		return ""
	}
	return "?by=" + url.QueryEscape(by)
}

// countsObject is c as the API writes it.
func countsObject(c counter.Counts) map[string]any {
	m := map[string]any{"clicks": c.Clicks()}
	for r := range counter.NumReasons {
		m[r.String()] = c[r]
	}
	return m
}

func daysObject(days []counter.DayCounts) []map[string]any {
	list := make([]map[string]any, len(days))
	for i, d := range days {
		list[i] = countsObject(d.Counts)
		list[i]["day"] = d.Day.String()
	}
	return list
}

// object is an answer read as its fields.
type object map[string]json.RawMessage

// get decodes field name into v when it is there, and reports whether it
// was.
func (o object) get(name string, v any) (bool, error) {
	b, ok := o[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("field %q: %w", name, err)
	}
	return true, nil
}

// fields decodes the fields named in vs, and the counts.
func (o object) fields(counts *counter.Counts, vs map[string]any) error {
	for name, v := range vs {
		if _, err := o.get(name, v); err != nil {
			return err
		}
	}
	for r := range counter.NumReasons {
		if _, err := o.get(r.String(), &counts[r]); err != nil {
			return err
		}
	}
	return nil
}

// days decodes field name, a list of day counts, into days: non-nil when
// the field is there.
func (o object) days(name string, days *[]counter.DayCounts) error {
	var list []object
	ok, err := o.get(name, &list)
	if err != nil || !ok {
		return err
	}
	*days = make([]counter.DayCounts, len(list))
	for i, d := range list {
		var day string
		if err := d.fields(&(*days)[i].Counts, map[string]any{"day": &day}); err != nil {
			return err
		}
		if (*days)[i].Day, err = counter.ParseDay(day); err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
	}
	return nil
}

func (s Stats) MarshalJSON() ([]byte, error) {
	m := countsObject(s.Counts)
	m["clicks"], m["campaign"], m["creator"] = s.Clicks, s.Campaign, s.Creator
	if s.Days != nil {
		m["days"] = daysObject(s.Days)
	}
	return json.Marshal(m)
}

func (s *Stats) UnmarshalJSON(b []byte) error {
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*s = Stats{}
	if err := o.fields(&s.Counts, map[string]any{"clicks": &s.Clicks, "campaign": &s.Campaign, "creator": &s.Creator}); err != nil {
		return err
	}
	return o.days("days", &s.Days)
}

func (s LinkStats) MarshalJSON() ([]byte, error) {
	m := countsObject(s.Counts)
	m["clicks"] = s.Clicks
	m["code"], m["campaign"], m["creator"], m["disabled"] = s.Code, s.Campaign, s.Creator, s.Disabled
	m["counted_per"], m["note"] = s.CountedPer, s.Note
	if s.Days != nil {
		m["days"] = daysObject(s.Days)
	}
	return json.Marshal(m)
}

func (s *LinkStats) UnmarshalJSON(b []byte) error {
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*s = LinkStats{}
	err := o.fields(&s.Counts, map[string]any{"clicks": &s.Clicks, "code": &s.Code, "campaign": &s.Campaign, "creator": &s.Creator,
		"disabled": &s.Disabled, "counted_per": &s.CountedPer, "note": &s.Note})
	if err != nil {
		return err
	}
	return o.days("days", &s.Days)
}

func (t Totals) MarshalJSON() ([]byte, error) {
	m := countsObject(t.Counts)
	m["clicks"], m["campaign"], m["creators"] = t.Clicks, t.Campaign, t.Creators
	if t.ByCreator != nil {
		list := make([]map[string]any, len(t.ByCreator))
		for i, cc := range t.ByCreator {
			list[i] = countsObject(cc.Counts)
			list[i]["creator"] = cc.Creator
		}
		m["by_creator"] = list
	}
	if t.Days != nil {
		m["days"] = daysObject(t.Days)
	}
	return json.Marshal(m)
}

func (t *Totals) UnmarshalJSON(b []byte) error {
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*t = Totals{}
	if err := o.fields(&t.Counts, map[string]any{"clicks": &t.Clicks, "campaign": &t.Campaign, "creators": &t.Creators}); err != nil {
		return err
	}
	var rows []object
	if ok, err := o.get("by_creator", &rows); err != nil {
		return err
	} else if ok {
		t.ByCreator = make([]CreatorCounts, len(rows))
		for i, r := range rows {
			if err := r.fields(&t.ByCreator[i].Counts, map[string]any{"creator": &t.ByCreator[i].Creator}); err != nil {
				return err
			}
		}
	}
	return o.days("days", &t.Days)
}

package dashboard

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/payout"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// The operator's pages of one creator and of one link, and the edit forms
// of campaigns, creators and links. An edit sends the admin API only the
// fields that differ from the object as it is (a partial update), so a
// field left as shown changes nothing and the API checks the rest.

type creatorOpData struct {
	opPage
	Campaign counter.Campaign
	Creator  counter.Creator
	Days     []counter.DayCounts
	Total    counter.Counts
	Row      payout.Row
	// CapPercent is how far the earnings are to the cap, 0 to 100.
	CapPercent int64
	Chart      template.HTML
	Links      []linkRow
	NextLinks  string
	AcceptedAt string
	// Error and Form are a refused edit, shown again.
	Error string
	Form  url.Values
}

func (s *Server) creatorOpPage(w http.ResponseWriter, r *http.Request, p opPage) {
	s.showCreatorOp(w, r, p, http.StatusOK, "", nil)
}

// showCreatorOp renders the page of creator {creator} of campaign {id}.
func (s *Server) showCreatorOp(w http.ResponseWriter, r *http.Request, p opPage, status int, formErr string, form url.Values) {
	ctx, cancel := pageContext()
	defer cancel()
	id, creator := r.PathValue("id"), r.PathValue("creator")
	c, err := s.o.Catalog.Campaign(ctx, id)
	if errors.Is(err, counter.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "Campaign \""+id+"\" does not exist.")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	cr, err := s.o.Catalog.Creator(ctx, id, creator)
	if errors.Is(err, counter.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "Creator \""+creator+"\" does not exist in campaign \""+id+"\".")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	d := creatorOpData{opPage: p, Campaign: c, Creator: cr, Error: formErr, Form: form}
	if d.Days, err = s.o.Stats.Stats(ctx, id, creator); err != nil {
		s.internalError(w, r, err)
		return
	}
	d.Total = counter.Total(d.Days)
	st, err := payout.Compute(c, ledger.Standing, []counter.Creator{cr},
		map[string]payout.Totals{cr.ID: {Qualified: d.Total[counter.Qualified], Signups: d.Total[counter.Signup]}})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	d.Row = st.Rows[0]
	d.CapPercent = capPercent(d.Row.EarnedCents, c.CapCents)
	d.Chart = reasonChart("Clicks by reason per day, creator "+cr.ID, d.Days).SVG()
	if d.Links, d.NextLinks, err = s.linkList(ctx, id, creator, cursorParam(r, "links")); err == nil {
		err = s.linkFigures(ctx, d.Links)
	}
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d.AcceptedAt = acceptedAt(cr)
	s.render(w, status, "creator_op", d)
}

// editCampaign changes campaign {id} (PUT /v1/campaigns/{id}, partial).
func (s *Server) editCampaign(w http.ResponseWriter, r *http.Request, p opPage) {
	id := r.PathValue("id")
	ctx, cancel := pageContext()
	defer cancel()
	c, err := s.o.Catalog.Campaign(ctx, id)
	if errors.Is(err, counter.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "Campaign \""+id+"\" does not exist.")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	req, err := campaignEditForm(r.PostForm, c)
	changed := req != adminclient.CampaignPut{}
	if err == nil && changed {
		err = s.o.Admin.call(ctx, http.MethodPut, "/v1/campaigns/"+url.PathEscape(id), req, nil)
	}
	if status, msg, ok := refusedStatus(err); ok {
		s.showCampaign(w, r, p, status, func(d *campaignData) {
			d.Error, d.FormName, d.Form = msg, "edit", r.PostForm
		})
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	seeOther(w, r, "/campaigns/"+url.PathEscape(id), doneOf(changed, "campaign-saved"))
}

// doneOf is done, or "unchanged" when the form changed nothing.
func doneOf(changed bool, done string) string {
	if !changed {
		return "unchanged"
	}
	return done
}

// editCreator changes creator {creator} of campaign {id} (PUT
// /v1/creators/{creator}, partial).
func (s *Server) editCreator(w http.ResponseWriter, r *http.Request, p opPage) {
	id, creator := r.PathValue("id"), r.PathValue("creator")
	ctx, cancel := pageContext()
	defer cancel()
	cr, err := s.o.Catalog.Creator(ctx, id, creator)
	if errors.Is(err, counter.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "Creator \""+creator+"\" does not exist in campaign \""+id+"\".")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	req := creatorEditForm(r.PostForm, cr)
	changed := req != adminclient.CreatorPut{Campaign: cr.Campaign}
	if changed {
		err = s.o.Admin.call(ctx, http.MethodPut, "/v1/creators/"+url.PathEscape(creator), req, nil)
	}
	if status, msg, ok := refusedStatus(err); ok {
		s.showCreatorOp(w, r, p, status, msg, r.PostForm)
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	seeOther(w, r, "/campaigns/"+url.PathEscape(id)+"/creators/"+url.PathEscape(creator), doneOf(changed, "creator-saved"))
}

type linkData struct {
	opPage
	Link linkRow
	// Total and Days are the link's own counts, of the reasons counted
	// per link (see Note).
	Total counter.Counts
	Days  []counter.DayCounts
	Note  string
	Chart template.HTML
	// Error and Form are a refused edit, shown again.
	Error string
	Form  url.Values
}

func (s *Server) linkPage(w http.ResponseWriter, r *http.Request, p opPage) {
	s.showLink(w, r, p, http.StatusOK, "", nil)
}

// showLink renders the page of link {code}: its destinations, its state
// and its stats as GET /v1/links/{code}/stats gives them.
func (s *Server) showLink(w http.ResponseWriter, r *http.Request, p opPage, status int, formErr string, form url.Values) {
	ctx, cancel := pageContext()
	defer cancel()
	code := r.PathValue("code")
	d := linkData{opPage: p, Error: formErr, Form: form}
	var stats adminclient.LinkStats
	err := s.o.Admin.call(ctx, http.MethodGet, "/v1/links/"+url.PathEscape(code), nil, &d.Link)
	if err == nil {
		err = s.o.Admin.call(ctx, http.MethodGet, "/v1/links/"+url.PathEscape(code)+"/stats?by=day", nil, &stats)
	}
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d.Total, d.Note, d.Days = stats.Counts, stats.Note, stats.Days
	d.Chart = reasonChart("Visits by reason per day, link "+d.Link.Code, d.Days).SVG()
	s.render(w, status, "link", d)
}

// editLink changes link {code}'s destinations (PATCH /v1/links/{code}
// with the destinations that differ).
func (s *Server) editLink(w http.ResponseWriter, r *http.Request, p opPage) {
	code := r.PathValue("code")
	ctx, cancel := pageContext()
	defer cancel()
	var l linkRow
	err := s.o.Admin.call(ctx, http.MethodGet, "/v1/links/"+url.PathEscape(code), nil, &l)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	req := linkEditForm(r.PostForm, l.Link.Link)
	changed := req != adminclient.LinkPatch{}
	if changed {
		err = s.o.Admin.call(ctx, http.MethodPatch, "/v1/links/"+url.PathEscape(code), req, nil)
	}
	if status, msg, ok := refusedStatus(err); ok {
		s.showLink(w, r, p, status, msg, r.PostForm)
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	seeOther(w, r, "/links/"+url.PathEscape(code), doneOf(changed, "link-saved"))
}

// QR codes: an image of a link's public URL, drawn by the admin API (GET
// /v1/links/{code}/qr.svg|.png), served on the page that shows the link
// and authorized as it is.

// qrSize is the QR images' size in pixels; the pages draw them smaller.
const qrSize = "256"

// operatorQR is GET /links/{code}/{qr.svg|qr.png}.
func (s *Server) operatorQR(w http.ResponseWriter, r *http.Request, _ opPage) {
	s.qr(w, r, r.PathValue("code"), r.PathValue("file"), func(linkRow) bool { return true })
}

// creatorQR is GET /c/{token}/links/{code}/{qr.svg|qr.png}: a creator's
// own links only; any other code is unknown to them.
func (s *Server) creatorQR(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := pageContext()
	defer cancel()
	c, cr, err := s.creatorFor(ctx, r.PathValue("token"))
	if err != nil {
		s.badToken(w, r, err)
		return
	}
	s.qr(w, r, r.PathValue("code"), r.PathValue("file"), func(l linkRow) bool {
		return l.Campaign == c.ID && l.Creator == cr.ID
	})
}

// qr serves the QR image file of link code if allow takes the link.
func (s *Server) qr(w http.ResponseWriter, r *http.Request, code, file string, allow func(linkRow) bool) {
	ctype := map[string]string{"qr.svg": "image/svg+xml", "qr.png": "image/png"}[file]
	if ctype == "" {
		s.fail(w, r, http.StatusNotFound, "No such file: the QR codes are qr.svg and qr.png.")
		return
	}
	ctx, cancel := pageContext()
	defer cancel()
	path := "/v1/links/" + url.PathEscape(code)
	var l linkRow
	err := s.o.Admin.call(ctx, http.MethodGet, path, nil, &l)
	if ae := (*apiError)(nil); errors.As(err, &ae) && ae.Status == http.StatusNotFound || err == nil && !allow(l) {
		s.fail(w, r, http.StatusNotFound, "Link \""+code+"\" does not exist.")
		return
	} else if err != nil {
		s.pageError(w, r, err)
		return
	}
	status, body, err := s.o.Admin.Do(ctx, http.MethodGet, path+"/"+file+"?size="+qrSize, nil)
	if err == nil && status != http.StatusOK {
		err = s.o.Admin.errorOf(status, body)
	}
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ctype)
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+l.Code+"-"+file+`"`)
	}
	w.Write(body)
}

// acceptedAt returns when the creator accepted the campaign's terms on
// their page, formatted, or "".
func acceptedAt(cr counter.Creator) string {
	if cr.AcceptedAt.IsZero() {
		return ""
	}
	return cr.AcceptedAt.UTC().Format("2006-01-02 15:04:05 UTC")
}

// sameDay reports whether a day typed in a form names the day of t, so
// that a date shown and sent back as it was leaves t as it is.
func sameDay(typed string, t time.Time) bool {
	return strings.TrimSpace(typed) == t.UTC().Format(time.DateOnly)
}

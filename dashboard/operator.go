package dashboard

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// The operator's pages: the campaigns, one campaign, and their forms.

type campaignSummary struct {
	campaignTotals
	Campaign counter.Campaign
	Status   string
	Sealed   bool
}

type campaignsData struct {
	opPage
	Campaigns []campaignSummary
	// Next is the cursor of the next page of campaigns, or "".
	Next string
	// Error and Form are a form that was refused, shown again.
	Error string
	Form  url.Values
}

func (s *Server) campaignsPage(w http.ResponseWriter, r *http.Request, p opPage) {
	s.showCampaigns(w, r, p, http.StatusOK, "", nil)
}

// showCampaigns renders a page of the campaigns, by id, with their
// counts.
func (s *Server) showCampaigns(w http.ResponseWriter, r *http.Request, p opPage, status int, formErr string, form url.Values) {
	ctx, cancel := pageContext()
	defer cancel()
	campaigns, next, err := s.campaignList(ctx, cursorParam(r, "cursor"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	rep := s.report()
	d := campaignsData{opPage: p, Next: next, Error: formErr, Form: form}
	for _, c := range campaigns {
		t, err := s.campaignTotals(ctx, c.ID)
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		st, sealed := payableStatus(c, s.o.Now(), rep)
		d.Campaigns = append(d.Campaigns, campaignSummary{campaignTotals: t, Campaign: c, Status: st, Sealed: sealed})
	}
	s.render(w, status, "campaigns", d)
}

// pageError answers a read that failed: a refusal of the admin API (a
// cursor it does not take, an object that does not exist) with its status
// and message, anything else as an internal error.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	if status, msg, ok := refusedStatus(err); ok {
		s.fail(w, r, status, msg)
		return
	}
	s.internalError(w, r, err)
}

// report returns this node's ledger as it stands, or nil.
func (s *Server) report() *ledger.Report {
	if s.o.Ledger == nil {
		return nil
	}
	rep := s.o.Ledger.Snapshot()
	return &rep
}

type campaignData struct {
	opPage
	*campaignFigures
	Status string
	Sealed bool
	Chart  template.HTML
	Fraud  fraudPanel
	Ledger ledgerPanel
	Links  []linkRow
	// NextLinks is the cursor of the next page of links, or "".
	NextLinks string
	// Paged is whether the leaderboard shows a page of the creators only.
	Paged bool
	// PageURL is a creator's new page URL, shown once.
	PageURL, PageFor string
	// Error and Form are a form that was refused, shown again; FormName
	// says which.
	Error, FormName string
	Form            url.Values
}

func (s *Server) campaignPage(w http.ResponseWriter, r *http.Request, p opPage) {
	s.showCampaign(w, r, p, http.StatusOK, func(d *campaignData) {})
}

// showCampaign renders campaign {id}'s page, with set adding to it (a
// refused form, a new page URL).
func (s *Server) showCampaign(w http.ResponseWriter, r *http.Request, p opPage, status int, set func(*campaignData)) {
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
	creators := cursorParam(r, "creators")
	f, err := s.figures(ctx, c, creators)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d := campaignData{opPage: p, campaignFigures: f, Paged: creators != "" || f.NextCreators != ""}
	rep := s.report()
	d.Status, d.Sealed = payableStatus(c, s.o.Now(), rep)
	d.Chart = reasonChart("Clicks by reason per day, campaign "+c.ID, f.Days).SVG()
	d.Fraud = fraudOf(c.ID, f.Days)
	d.Ledger = s.ledgerOf(c, rep)
	if d.Links, d.NextLinks, err = s.linkList(ctx, c.ID, "", cursorParam(r, "links")); err != nil {
		s.pageError(w, r, err)
		return
	}
	set(&d)
	s.render(w, status, "campaign", d)
}

// refused re-renders a page with the error of a refused form: the admin
// API's own status and message, or a field that could not be read (422).
func refusedStatus(err error) (int, string, bool) {
	var ae *apiError
	var fe *formError
	switch {
	case errors.As(err, &ae) && ae.Status < 500:
		return ae.Status, ae.Message, true
	case errors.As(err, &fe):
		return http.StatusUnprocessableEntity, fe.Error(), true
	}
	return 0, "", false
}

func (s *Server) createCampaign(w http.ResponseWriter, r *http.Request, p opPage) {
	id, req, err := campaignForm(r.PostForm)
	if err == nil {
		err = s.create(r.Context(), "/v1/campaigns/"+url.PathEscape(id), "campaign", id, "", req)
	}
	if status, msg, ok := refusedStatus(err); ok {
		s.showCampaigns(w, r, p, status, msg, r.PostForm)
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	seeOther(w, r, "/campaigns/"+url.PathEscape(id), "campaign")
}

// create PUTs req, a new object, at path, refusing one that exists: these
// forms create, they do not overwrite. campaign is the object's campaign,
// or "" for a campaign.
func (s *Server) create(ctx context.Context, path, kind, id, campaign string, req any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	get := path
	if campaign != "" {
		get += "?campaign=" + url.QueryEscape(campaign)
	}
	status, _, err := s.o.Admin.Do(ctx, http.MethodGet, get, nil)
	switch {
	case err != nil:
		return err
	case status == http.StatusOK:
		return &apiError{Status: http.StatusConflict, Message: kind + " \"" + id + "\" exists already"}
	}
	return s.o.Admin.call(ctx, http.MethodPut, path, req, nil)
}

func (s *Server) createCreator(w http.ResponseWriter, r *http.Request, p opPage) {
	campaign := r.PathValue("id")
	id, req, err := creatorForm(campaign, r.PostForm)
	if err == nil {
		err = s.create(r.Context(), "/v1/creators/"+url.PathEscape(id), "creator", id, campaign, req)
	}
	s.afterCampaignForm(w, r, p, "creator", err)
}

func (s *Server) createLink(w http.ResponseWriter, r *http.Request, p opPage) {
	ctx, cancel := pageContext()
	defer cancel()
	err := s.o.Admin.call(ctx, http.MethodPost, "/v1/links", linkForm(r.PathValue("id"), r.PostForm), nil)
	s.afterCampaignForm(w, r, p, "link", err)
}

// afterCampaignForm answers a form of a campaign's page: back to the page,
// or the page again with the form's error.
func (s *Server) afterCampaignForm(w http.ResponseWriter, r *http.Request, p opPage, form string, err error) {
	if status, msg, ok := refusedStatus(err); ok {
		s.showCampaign(w, r, p, status, func(d *campaignData) {
			d.Error, d.FormName, d.Form = msg, form, r.PostForm
		})
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	seeOther(w, r, "/campaigns/"+url.PathEscape(r.PathValue("id")), form)
}

// setLinkDisabled disables or enables a link (PATCH /v1/links/{code}).
func (s *Server) setLinkDisabled(w http.ResponseWriter, r *http.Request, p opPage) {
	code, action := r.PathValue("code"), r.PathValue("action")
	if action != "disable" && action != "enable" {
		s.fail(w, r, http.StatusNotFound, "No such action.")
		return
	}
	ctx, cancel := pageContext()
	defer cancel()
	disabled := action == "disable"
	var l adminclient.Link
	err := s.o.Admin.call(ctx, http.MethodPatch, "/v1/links/"+url.PathEscape(code), adminclient.LinkPatch{Disabled: &disabled}, &l)
	if status, msg, ok := refusedStatus(err); ok {
		s.fail(w, r, status, msg)
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	back := "/campaigns/" + url.PathEscape(l.Campaign)
	if r.PostFormValue("from") == "link" {
		back = "/links/" + url.PathEscape(l.Code)
	}
	seeOther(w, r, back, action+"d")
}

// rotateCreatorPage mints a new page URL for a creator and shows it once.
func (s *Server) rotateCreatorPage(w http.ResponseWriter, r *http.Request, p opPage) {
	campaign, creator := r.PathValue("id"), r.PathValue("creator")
	ctx, cancel := pageContext()
	defer cancel()
	var out adminclient.CreatorPageURL
	err := s.o.Admin.call(ctx, http.MethodPost, "/v1/creators/"+url.PathEscape(creator)+"/dashboard?campaign="+url.QueryEscape(campaign), nil, &out)
	if status, msg, ok := refusedStatus(err); ok {
		s.fail(w, r, status, msg)
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.showCampaign(w, r, p, http.StatusOK, func(d *campaignData) { d.PageURL, d.PageFor = out.URL, creator })
}

// statementCSV serves the campaign's final statement as the payments
// partner takes it (GET /v1/campaigns/{id}/payouts?format=csv).
func (s *Server) statementCSV(w http.ResponseWriter, r *http.Request, p opPage) {
	id := r.PathValue("id")
	ctx, cancel := pageContext()
	defer cancel()
	status, body, err := s.o.Admin.Do(ctx, http.MethodGet, "/v1/campaigns/"+url.PathEscape(id)+"/payouts?format=csv", nil)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if status != http.StatusOK {
		err := s.o.Admin.errorOf(status, body)
		if _, msg, ok := refusedStatus(err); ok {
			s.fail(w, r, status, msg)
		} else {
			s.internalError(w, r, err)
		}
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id+`-final-statement.csv"`)
	w.Write(body)
}

package dashboard

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/payout"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// A creator's own page, opened by its capability URL: their links, their
// figures, and why clicks were not paid. It reads only this creator's
// counters and links.

// notPaid explains each reason a click is not paid, in the order shown.
var notPaid = []struct {
	Reason counter.Reason
	Why    string
}{
	{counter.Duplicate, "the same visitor again within the campaign's dedupe window: a visitor counts once"},
	{counter.Bot, "crawlers, automation tools and implausible browsers"},
	{counter.Preview, "link previews fetched by apps (Discord, X, Slack, iMessage…) when the link is posted"},
	{counter.Prefetch, "browsers loading the link ahead of a tap, and HEAD requests"},
	{counter.Velocity, "too many clicks from one network in a short time (a click farm's pattern)"},
	{counter.Budget, "a network that already had its daily share of paid visits"},
	{counter.OutOfWindow, "clicks before the campaign started or after it ended"},
	{counter.Inactive, "clicks while you had not accepted the terms, or were suspended"},
	{counter.Uncounted, "clicks the store could not record"},
}

type notPaidRow struct {
	Name, Why string
	N         int64
}

type creatorData struct {
	Campaign counter.Campaign
	Creator  counter.Creator
	Token    string
	CSRF     string
	Done     string
	Links    []linkRow
	// NextLinks is the cursor of the next page of links, or "".
	NextLinks string
	Chart     template.HTML
	Days      []counter.DayCounts
	Total     counter.Counts
	Row       payout.Row
	// Block is the qualified visits in the block under way, ToNextBlock
	// how many more make it whole.
	Block, ToNextBlock int64
	CapLeftCents       int64
	CapPercent         int64
	NotPaid            []notPaidRow
	AcceptedAt         string
}

// creatorFor checks a page token and returns its campaign and creator.
func (s *Server) creatorFor(ctx context.Context, token string) (counter.Campaign, counter.Creator, error) {
	var cr counter.Creator
	_, _, err := s.o.Capabilities.Check(ctx, token, func(campaign, creator string) error {
		var err error
		cr, err = s.o.Catalog.Creator(ctx, campaign, creator)
		if errors.Is(err, counter.ErrNotFound) {
			return ErrBadCapability
		}
		return err
	})
	if err != nil {
		return counter.Campaign{}, cr, err
	}
	c, err := s.o.Catalog.Campaign(ctx, cr.Campaign)
	if errors.Is(err, counter.ErrNotFound) {
		err = ErrBadCapability
	}
	return c, cr, err
}

// badToken answers a page token that opens nothing, or a store error.
func (s *Server) badToken(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrBadCapability) {
		s.fail(w, r, http.StatusNotFound, "There is no page at this address. If your page link was replaced, ask for the new one.")
		return
	}
	s.internalError(w, r, err)
}

func (s *Server) creatorPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	ctx, cancel := pageContext()
	defer cancel()
	c, cr, err := s.creatorFor(ctx, token)
	if err != nil {
		s.badToken(w, r, err)
		return
	}
	d := creatorData{Campaign: c, Creator: cr, Token: token, CSRF: s.sessions.csrf("accept", token), Done: doneMessage(r)}
	if cr.Status == counter.StatusInvited {
		s.render(w, http.StatusOK, "terms", d)
		return
	}
	if err := s.creatorFigures(ctx, &d, cursorParam(r, "links")); err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "creator", d)
}

// creatorFigures fills d with the creator's links (one page, from
// cursor) and counts.
func (s *Server) creatorFigures(ctx context.Context, d *creatorData, cursor string) error {
	c, cr := d.Campaign, d.Creator
	var err error
	if d.Links, d.NextLinks, err = s.linkList(ctx, c.ID, cr.ID, cursor); err != nil {
		return err
	}
	if err := s.linkFigures(ctx, d.Links); err != nil {
		return err
	}
	d.Days, err = s.o.Stats.Stats(ctx, c.ID, cr.ID)
	if err != nil {
		return err
	}
	d.Total = counter.Total(d.Days)
	st, err := payout.Compute(c, ledger.Standing, []counter.Creator{cr},
		map[string]payout.Totals{cr.ID: {Qualified: d.Total[counter.Qualified], Signups: d.Total[counter.Signup]}})
	if err != nil {
		return err
	}
	d.Row = st.Rows[0]
	if c.VisitBlockSize > 0 {
		d.Block = d.Total[counter.Qualified] % c.VisitBlockSize
		d.ToNextBlock = c.VisitBlockSize - d.Block
	}
	d.CapLeftCents = max(0, c.CapCents-d.Row.EarnedCents)
	d.CapPercent = capPercent(d.Row.EarnedCents, c.CapCents)
	for _, np := range notPaid {
		d.NotPaid = append(d.NotPaid, notPaidRow{Name: np.Reason.String(), Why: np.Why, N: d.Total[np.Reason]})
	}
	ch := Chart{Title: "Your qualified visits and signups per day", Days: dayRange(d.Days)}
	for _, r := range []counter.Reason{counter.Qualified, counter.Signup} {
		sr, _ := seriesOf(r, ch.Days, d.Days)
		ch.Series = append(ch.Series, sr)
	}
	d.Chart = ch.SVG()
	d.AcceptedAt = acceptedAt(cr)
	return nil
}

// acceptTerms makes an invited creator active: the creator accepted the
// campaign's terms. The time of the first acceptance is recorded with the
// creator (accepted_at, which the admin API sets once), and the ledger
// keeps it with the creator's details from the next flush on.
func (s *Server) acceptTerms(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	ctx, cancel := pageContext()
	defer cancel()
	c, cr, err := s.creatorFor(ctx, token)
	if err != nil {
		s.badToken(w, r, err)
		return
	}
	if !s.sessions.csrfOK(r, "accept", token) {
		s.fail(w, r, http.StatusForbidden, "The form's CSRF token is missing or wrong: reload the page and send it again.")
		return
	}
	switch cr.Status {
	case counter.StatusActive:
		seeOther(w, r, "/c/"+url.PathEscape(token), "accepted")
		return
	case counter.StatusSuspended:
		s.fail(w, r, http.StatusConflict, "Your participation in this campaign is suspended; contact the campaign's team.")
		return
	}
	now := s.o.Now().UTC()
	if r.PostFormValue("accept") != "yes" {
		s.fail(w, r, http.StatusUnprocessableEntity, "Tick the box to accept the terms.")
		return
	}
	// One write makes the creator active and records the time.
	active, at := counter.StatusActive, now.Truncate(time.Second)
	err = s.o.Admin.call(ctx, http.MethodPut, "/v1/creators/"+url.PathEscape(cr.ID),
		adminclient.CreatorPut{Campaign: c.ID, Status: &active, AcceptedAt: &at}, nil)
	if status, msg, ok := refusedStatus(err); ok {
		s.fail(w, r, status, msg)
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.o.Logger.Info("creator accepted the terms", "campaign", c.ID, "creator", cr.ID, "at", now)
	seeOther(w, r, "/c/"+url.PathEscape(token), "accepted")
}

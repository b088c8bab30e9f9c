// Package admin is clickgate's admin API: campaigns, creators, links and
// stats as JSON on the admin listener, behind a bearer token.
package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// Options configure an API.
type Options struct {
	Store    counter.Store
	Table    *redirect.Table
	Recorder *counter.Recorder
	// Token authenticates every call but /healthz and /v1/conversions.
	// Required.
	Token string
	// AppKey authenticates the app backend's /v1/conversions, and only
	// that. default: empty, conversions are refused
	AppKey string
	// Clicks verifies click ids. Required for conversions.
	Clicks *clickid.Signer
	// Now is the server's clock, by which conversions and term changes
	// are judged. default: time.Now
	Now func() time.Time
	// Flusher flushes this node's ledger, which payouts are read from.
	// default: nil, this node does not flush; payouts and flush are 404
	Flusher Flusher
	// PublicURL is the base of the links' URLs, e.g. https://go.example.com.
	// Its host is refused as a destination (a redirect loop). Required.
	PublicURL string
	// OwnHosts are the other hosts the public listener answers for
	// (--host), refused as destinations too. default: none
	OwnHosts []string
	// Logger receives internal errors. default: slog.Default()
	Logger *slog.Logger
}

// Flusher is the node's flusher of the store into its ledger.
type Flusher interface {
	// Flush flushes now.
	Flush(ctx context.Context) (ledger.FlushResult, error)
	// Snapshot returns the ledger as it stands.
	Snapshot() ledger.Report
	// NextFlush returns when the next periodic flush is due.
	NextFlush() time.Time
}

// requestTimeout bounds the store calls of one admin request.
const requestTimeout = 10 * time.Second

// Reference program defaults, used for fields a PUT leaves out.
const (
	DefaultSignupRewardCents     = 10000
	DefaultVisitBlockSize        = 1000
	DefaultVisitBlockRewardCents = 10000
	DefaultCapCents              = 2000000
	DefaultDedupeWindow          = 24 * time.Hour
	DefaultCreatorStatus         = counter.StatusActive // for a new creator
	DefaultAttributionWindow     = 720 * time.Hour
)

// API serves the admin listener.
type API struct {
	o        Options
	tokenSum [sha256.Size]byte
	appKey   []byte
	ownHosts []string
}

// New returns an API.
func New(o Options) (*API, error) {
	if o.Token == "" {
		return nil, errors.New("admin token is empty")
	}
	u, err := url.Parse(o.PublicURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("public URL %q must be an absolute http(s) URL", o.PublicURL)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AppKey != "" && o.Clicks == nil {
		return nil, errors.New("an app key needs a click id signer")
	}
	return &API{o: o, tokenSum: sha256.Sum256([]byte(o.Token)), appKey: []byte(o.AppKey), ownHosts: append([]string{u.Hostname()}, o.OwnHosts...)}, nil
}

// apiError is an error the caller sees as is, with its status.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &apiError{status, fmt.Sprintf(format, args...)}
}

// Handle routes one admin request.
func (a *API) Handle(rc *fasthttp.RequestCtx) {
	path := string(rc.Path())
	if path == "/healthz" {
		rc.SetBodyString("ok\n")
		return
	}
	if path == "/v1/conversions" {
		// The app key's only endpoint, checked inside.
		a.serve(rc, func(ctx context.Context) (int, any, error) {
			if !rc.IsPost() {
				return 0, nil, methodNotAllowed(rc, "POST")
			}
			return a.conversion(ctx, rc)
		})
		return
	}
	if !a.authorized(rc) {
		rc.Response.Header.Set("WWW-Authenticate", `Bearer realm="clickgate"`)
		a.writeError(rc, errorf(fasthttp.StatusUnauthorized, "missing or wrong bearer token"))
		return
	}
	if strings.HasPrefix(path, "/debug/pprof/") {
		// Go's profiler, for the operator: CPU, heap, allocations,
		// goroutines. It runs only when asked, behind the token.
		pprofhandler.PprofHandler(rc)
		return
	}
	a.serve(rc, func(ctx context.Context) (status int, body any, err error) {
		return a.route(ctx, rc, path)
	})
}

// route dispatches an authorized admin request.
func (a *API) route(ctx context.Context, rc *fasthttp.RequestCtx, path string) (status int, body any, err error) {
	method := string(rc.Method())
	seg := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case len(seg) == 3 && seg[0] == "v1" && seg[1] == "campaigns":
		switch method {
		case "PUT":
			status, body, err = a.putCampaign(ctx, rc, seg[2])
		case "GET":
			status, body, err = a.getCampaign(ctx, rc, seg[2])
		default:
			err = methodNotAllowed(rc, "GET, PUT")
		}
	case len(seg) == 4 && seg[0] == "v1" && seg[1] == "campaigns" && seg[3] == "payouts":
		if method != "GET" {
			err = methodNotAllowed(rc, "GET")
			break
		}
		status, body, err = a.payouts(ctx, rc, seg[2])
	case path == "/v1/catalog":
		if method != "GET" {
			err = methodNotAllowed(rc, "GET")
			break
		}
		status, body, err = a.catalog(ctx)
	case path == "/v1/flush":
		if method != "POST" {
			err = methodNotAllowed(rc, "POST")
			break
		}
		status, body, err = a.flush(ctx)
	case len(seg) == 3 && seg[0] == "v1" && seg[1] == "creators":
		switch method {
		case "PUT":
			status, body, err = a.putCreator(ctx, rc, seg[2])
		case "GET":
			status, body, err = a.getCreator(ctx, rc, seg[2])
		default:
			err = methodNotAllowed(rc, "GET, PUT")
		}
	case len(seg) == 4 && seg[0] == "v1" && seg[1] == "creators" && seg[3] == "stats":
		if method != "GET" {
			err = methodNotAllowed(rc, "GET")
			break
		}
		status, body, err = a.stats(ctx, rc, seg[2])
	case len(seg) == 2 && seg[0] == "v1" && seg[1] == "links":
		if method != "POST" {
			err = methodNotAllowed(rc, "POST")
			break
		}
		status, body, err = a.createLink(ctx, rc)
	case len(seg) == 3 && seg[0] == "v1" && seg[1] == "links":
		if method != "GET" {
			err = methodNotAllowed(rc, "GET")
			break
		}
		status, body, err = a.getLink(ctx, rc, seg[2])
	case path == "/metrics":
		if method != "GET" {
			err = methodNotAllowed(rc, "GET")
			break
		}
		status, body, err = a.metrics()
	default:
		err = errorf(fasthttp.StatusNotFound, "no such endpoint: %s %s", method, path)
	}
	return status, body, err
}

// serve runs one endpoint and writes its answer or its error. The endpoint
// gets its own bounded context, not rc: rc's Done closes when the server
// shuts down, and a store call must neither hang nor be cut short by that.
func (a *API) serve(rc *fasthttp.RequestCtx, endpoint func(ctx context.Context) (int, any, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	status, body, err := endpoint(ctx)
	if err != nil {
		a.writeError(rc, err)
		return
	}
	if raw, ok := body.(rawBody); ok {
		rc.SetStatusCode(status)
		rc.SetContentType(raw.contentType)
		rc.SetBody(raw.data)
		return
	}
	writeJSON(rc, status, body)
}

func (a *API) authorized(ctx *fasthttp.RequestCtx) bool {
	return bearerIs(ctx, a.tokenSum)
}

// bearerIs reports whether the request's bearer token has the SHA-256 sum.
// Comparing digests keeps the comparison constant-time whatever the lengths.
func bearerIs(ctx *fasthttp.RequestCtx, sum [sha256.Size]byte) bool {
	auth := ctx.Request.Header.Peek("Authorization")
	// The scheme is case-insensitive (RFC 9110, section 11.1).
	ok := len(auth) > 7 && bytes.EqualFold(auth[:7], []byte("bearer "))
	var tok []byte
	if ok {
		tok = auth[7:]
	}
	got := sha256.Sum256(tok)
	return subtle.ConstantTimeCompare(got[:], sum[:]) == 1 && ok
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) error {
	ctx.Response.Header.Set("Allow", allow)
	return errorf(fasthttp.StatusMethodNotAllowed, "method %s not allowed; use %s", ctx.Method(), allow)
}

// writeError maps every error to its status; this is the only place that
// does. Internal errors are logged and never shown.
func (a *API) writeError(ctx *fasthttp.RequestCtx, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeJSON(ctx, ae.status, map[string]string{"error": ae.msg})
	case errors.Is(err, counter.ErrNotFound):
		writeJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "not found"})
	case errors.Is(err, counter.ErrExists):
		writeJSON(ctx, fasthttp.StatusConflict, map[string]string{"error": "already exists"})
	case errors.Is(err, counter.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		a.o.Logger.Error("admin request failed", "path", string(ctx.Path()), "err", err)
		writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"error": "store unavailable; try again"})
	default:
		a.o.Logger.Error("admin request failed", "path", string(ctx.Path()), "err", err)
		writeJSON(ctx, fasthttp.StatusInternalServerError, map[string]string{"error": "internal error"})
	}
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, body any) {
	b, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot marshal response: %s", err))
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// decode reads a JSON body strictly: unknown fields, trailing data and
// malformed JSON are 400.
func decode(ctx *fasthttp.RequestCtx, v any) error {
	body := bytes.TrimLeft(ctx.PostBody(), " \t\r\n")
	if len(body) > 0 && body[0] != '{' {
		return errorf(fasthttp.StatusBadRequest, "invalid JSON body: want an object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return errorf(fasthttp.StatusBadRequest, "request body is empty; want a JSON object")
		}
		return errorf(fasthttp.StatusBadRequest, "invalid JSON body: %s", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(fasthttp.StatusBadRequest, "invalid JSON body: data after the object")
	}
	return nil
}

// validID reports whether id can name a campaign or a creator.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func checkID(kind, id string) error {
	if !validID(id) {
		return errorf(fasthttp.StatusBadRequest, "%s id %q must be 1 to 64 letters, digits, '_', '-' or '.'", kind, id)
	}
	return nil
}

func unprocessable(format string, args ...any) error {
	return errorf(fasthttp.StatusUnprocessableEntity, format, args...)
}

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
	return fasthttp.StatusOK, c, err
}

type creatorRequest struct {
	Campaign string  `json:"campaign"`
	Handle   *string `json:"handle"`
	Country  *string `json:"country"`
	Status   *string `json:"status"`
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
	if len(camp.EligibleCountries) > 0 && !slices.Contains(camp.EligibleCountries, c.Country) {
		return 0, nil, unprocessable("country %q is not eligible in campaign %q (eligible: %s)",
			c.Country, camp.ID, strings.Join(camp.EligibleCountries, ", "))
	}
	switch c.Status {
	case counter.StatusInvited, counter.StatusActive, counter.StatusSuspended:
	default:
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
	return fasthttp.StatusOK, c, err
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
	if req.Campaign == "" || req.Creator == "" {
		return 0, nil, unprocessable("campaign and creator are required")
	}
	if _, err := a.campaignRef(ctx, req.Campaign); err != nil {
		return 0, nil, err
	}
	if !validID(req.Creator) {
		return 0, nil, unprocessable("creator %q does not exist in campaign %q", req.Creator, req.Campaign)
	}
	if _, err := a.o.Store.Creator(ctx, req.Campaign, req.Creator); errors.Is(err, counter.ErrNotFound) {
		return 0, nil, unprocessable("creator %q does not exist in campaign %q", req.Creator, req.Campaign)
	} else if err != nil {
		return 0, nil, err
	}
	d := req.Destinations
	if d.Default == "" {
		return 0, nil, unprocessable("destinations.default is required")
	}
	for _, f := range []struct{ name, url string }{
		{"destinations.default", d.Default}, {"destinations.ios", d.IOS}, {"destinations.android", d.Android},
	} {
		if f.url == "" {
			continue
		}
		if err := redirect.ValidateDestination(f.url, a.ownHosts); err != nil {
			return 0, nil, unprocessable("%s: %s", f.name, err)
		}
	}
	if err := validatePreview(req.Preview); err != nil {
		return 0, nil, err
	}
	l := counter.Link{Campaign: req.Campaign, Creator: req.Creator, Destinations: d, Preview: req.Preview, CreatedAt: time.Now().UTC()}
	if req.Code != "" {
		if err := redirect.CheckCustomCode(req.Code); err != nil {
			return 0, nil, unprocessable("%s", err)
		}
		l.Code = req.Code
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
	return fasthttp.StatusCreated, linkResponse{Code: l.Code, URL: strings.TrimSuffix(a.o.PublicURL, "/") + "/" + l.Code}, nil
}

func (a *API) getLink(ctx context.Context, rc *fasthttp.RequestCtx, code string) (int, any, error) {
	if !redirect.ValidCode([]byte(code)) {
		return 0, nil, counter.ErrNotFound
	}
	l, err := a.o.Store.Link(ctx, code)
	return fasthttp.StatusOK, l, err
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
	if _, err := a.o.Store.Creator(ctx, campaign, creator); err != nil {
		return 0, nil, err
	}
	days, err := a.o.Recorder.Stats(ctx, campaign, creator)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read stats of creator %q: %w", creator, err)
	}
	out := countsObject(counter.Total(days))
	out["campaign"], out["creator"] = campaign, creator
	if by == "day" {
		list := make([]map[string]any, len(days))
		for i, d := range days {
			list[i] = countsObject(d.Counts)
			list[i]["day"] = d.Day.String()
		}
		out["days"] = list
	}
	return fasthttp.StatusOK, out, nil
}

// countsObject is {"clicks": N, "<reason>": N, ...}: an open shape, so new
// reasons add fields.
func countsObject(c counter.Counts) map[string]any {
	m := map[string]any{"clicks": c.Clicks()}
	for r := range counter.NumReasons {
		m[r.String()] = c[r]
	}
	return m
}

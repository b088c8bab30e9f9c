// Package dashboard serves clickgate's pages: the operator's (campaigns,
// leaderboards, charts, forms) behind a login with the admin token, and
// each creator's own page behind a capability URL. Pages are rendered on
// the server with html/template, charts are SVG drawn on the server, and
// every asset is embedded: the pages work offline and load nothing from
// elsewhere.
//
// The dashboard changes nothing itself: its forms are turned into calls
// of the admin API, made in process, so that a form is checked by exactly
// the rules an API call is.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/ledger"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Catalog reads one campaign or creator. Lists are read a page at a time
// through the admin API.
type Catalog interface {
	// Campaign returns counter.ErrNotFound for an unknown id.
	Campaign(ctx context.Context, id string) (counter.Campaign, error)
	// Creator returns counter.ErrNotFound for an unknown (campaign, id).
	Creator(ctx context.Context, campaign, id string) (counter.Creator, error)
}

// Stats reads a creator's counters by day (counter.Recorder: the store's
// counters plus what this node counted since).
type Stats interface {
	Stats(ctx context.Context, campaign, creator string) ([]counter.DayCounts, error)
}

// Ledger is this node's ledger, when it flushes one.
type Ledger interface {
	Snapshot() ledger.Report
}

// Options configure a Server.
type Options struct {
	// Admin calls the admin API in process. Required.
	Admin *Admin
	// Token is the admin token, which operators log in with. Required.
	Token   string
	Catalog Catalog // required
	Stats   Stats   // required
	// Capabilities mints and checks the creators' page URLs. Required.
	Capabilities *Capabilities
	// Ledger gives the payable status and sealed statements.
	// default: nil, this node does not flush a ledger
	Ledger Ledger
	// PublicURL is the base of the short links' URLs. Required.
	PublicURL string
	// SessionTTL is how long an operator stays logged in. default: 12h
	SessionTTL time.Duration
	// Now is the clock. default: time.Now
	Now func() time.Time
	// Logger receives internal errors. default: slog.Default()
	Logger *slog.Logger
}

// Server serves the dashboard listener.
type Server struct {
	o        Options
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// requestTimeout bounds the store calls of one page.
const requestTimeout = 10 * time.Second

// maxFormBytes bounds a form's body; the largest form is a few hundred bytes.
const maxFormBytes = 64 << 10

// New returns a Server.
func New(o Options) (*Server, error) {
	switch {
	case o.Admin == nil || o.Catalog == nil || o.Stats == nil || o.Capabilities == nil:
		return nil, errors.New("dashboard: admin, catalog, stats and capabilities are required")
	case o.Token == "":
		return nil, errors.New("dashboard: admin token is empty")
	}
	if u, err := url.Parse(o.PublicURL); err != nil || u.Host == "" {
		return nil, fmt.Errorf("dashboard: public URL %q must be absolute", o.PublicURL)
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{o: o, sessions: newSessions(o.Token, o.SessionTTL, o.Now), pages: map[string]*template.Template{}}
	for _, name := range []string{"login", "campaigns", "campaign", "creator_op", "link", "creator", "terms", "error"} {
		t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: cannot parse template %q: %w", name, err)
		}
		s.pages[name] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic("BUG: " + err.Error())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.operator(s.logout))
	mux.HandleFunc("GET /{$}", s.operator(s.campaignsPage))
	mux.HandleFunc("POST /campaigns", s.operator(s.createCampaign))
	mux.HandleFunc("GET /campaigns/{id}", s.operator(s.campaignPage))
	mux.HandleFunc("GET /campaigns/{id}/statement.csv", s.operator(s.statementCSV))
	mux.HandleFunc("POST /campaigns/{id}/creators", s.operator(s.createCreator))
	mux.HandleFunc("POST /campaigns/{id}/links", s.operator(s.createLink))
	mux.HandleFunc("POST /campaigns/{id}/creators/{creator}/page", s.operator(s.rotateCreatorPage))
	mux.HandleFunc("POST /campaigns/{id}", s.operator(s.editCampaign))
	mux.HandleFunc("GET /campaigns/{id}/creators/{creator}", s.operator(s.creatorOpPage))
	mux.HandleFunc("POST /campaigns/{id}/creators/{creator}", s.operator(s.editCreator))
	mux.HandleFunc("GET /links/{code}", s.operator(s.linkPage))
	mux.HandleFunc("POST /links/{code}", s.operator(s.editLink))
	mux.HandleFunc("GET /links/{code}/{file}", s.operator(s.operatorQR))
	mux.HandleFunc("POST /links/{code}/{action}", s.operator(s.setLinkDisabled))
	mux.HandleFunc("GET /c/{token}", s.creatorPage)
	mux.HandleFunc("POST /c/{token}/accept", s.acceptTerms)
	mux.HandleFunc("GET /c/{token}/links/{code}/{file}", s.creatorQR)
	s.mux = mux
	return s, nil
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Everything the pages need is on this listener; nothing runs but
	// what the server drew. No referrer: a creator's page URL is its key.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	if r.Method == http.MethodPost {
		// A form posted from another site is refused before its token is
		// looked at (browsers that send Sec-Fetch-Site); the token is the
		// check for the others.
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			s.fail(w, r, http.StatusForbidden, "cross-site form posts are refused")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	s.mux.ServeHTTP(w, r)
}

// pageContext returns the context of one page's store calls: its own
// bound, not the connection's, so that a store call neither hangs nor is
// cut short by a shutdown.
func pageContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), requestTimeout)
}

// render writes page name with data, or an error page if it fails.
func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	t, ok := s.pages[name]
	if !ok {
		panic("BUG: no page " + name)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "base", data); err != nil {
		s.o.Logger.Error("cannot render dashboard page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// errorPage is the data of the error page.
type errorPage struct {
	Title, Message string
	Status         int
}

// fail answers with an error page. msg is shown as is: it never holds
// internals (see internalError).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, status, "error", errorPage{Title: http.StatusText(status), Message: msg, Status: status})
}

// internalError maps an error of a store call to a page: unavailable
// stores are 503, anything else 500, and both are logged, never shown.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.o.Logger.Error("dashboard request failed", "path", r.URL.Path, "err", err)
	if errors.Is(err, counter.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		s.fail(w, r, http.StatusServiceUnavailable, "The store is unavailable; try again.")
		return
	}
	s.fail(w, r, http.StatusInternalServerError, "Internal error.")
}

// seeOther redirects after a form post that succeeded. done names what
// was done, from a fixed set (doneMessages): no text of the URL is shown.
func seeOther(w http.ResponseWriter, r *http.Request, path, done string) {
	if _, ok := doneMessages[done]; !ok {
		panic("BUG: no message for " + done)
	}
	http.Redirect(w, r, path+"?done="+done, http.StatusSeeOther)
}

// doneMessages are the messages shown after a form post.
var doneMessages = map[string]string{
	"campaign": "Campaign created.",
	"creator":  "Creator added.",
	"link":     "Link created.",
	"disabled": "Link disabled: it answers like an unknown code and counts nothing.",
	"enabled":  "Link enabled.",
	"accepted": "Welcome aboard: your visits now count.",
	// The edit forms.
	"campaign-saved": "Campaign saved.",
	"creator-saved":  "Creator saved.",
	"link-saved":     "Link saved.",
	"unchanged":      "Nothing to save: every field was as it is.",
}

// doneMessage returns the message of the request's done parameter.
func doneMessage(r *http.Request) string {
	return doneMessages[r.URL.Query().Get("done")]
}

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
	// Token authenticates every call but /healthz, /readyz and
	// /v1/conversions. Required.
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
	// Ready answers /readyz: nil when the store answers. It is called
	// with a context that ends after ReadyTimeout. default: always ready
	Ready func(ctx context.Context) error
	// CreatorPages mints the creators' dashboard page URLs for POST
	// /v1/creators/{id}/dashboard. default: nil, that endpoint is 404
	CreatorPages CreatorPages
	// Webhooks is the node's webhook outbox: /v1/webhooks manages its
	// endpoints, and conversions emit signup.attributed into it.
	// default: nil, /v1/webhooks is 404 and nothing is emitted
	Webhooks Webhooks
	// BeforeMetrics runs before GET /metrics writes the metrics, to bring
	// up to date those read from elsewhere. default: nil
	BeforeMetrics func()
}

// ReadyTimeout bounds one /readyz check: a store that takes longer to
// answer a ping is not ready.
const ReadyTimeout = 500 * time.Millisecond

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
	if path == "/readyz" {
		a.ready(rc)
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
	if ok, status, body, err := a.routeManagement(ctx, rc, method, seg); ok {
		return status, body, err
	}
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
	case len(seg) == 4 && seg[0] == "v1" && seg[1] == "creators" && seg[3] == "dashboard":
		if method != "POST" {
			err = methodNotAllowed(rc, "POST")
			break
		}
		status, body, err = a.creatorPage(ctx, rc, seg[2])
	case len(seg) == 4 && seg[0] == "v1" && seg[1] == "creators" && seg[3] == "stats":
		if method != "GET" {
			err = methodNotAllowed(rc, "GET")
			break
		}
		status, body, err = a.stats(ctx, rc, seg[2])
	case path == "/v1/links:bulk":
		if method != "POST" {
			err = methodNotAllowed(rc, "POST")
			break
		}
		status, body, err = a.bulkLinks(ctx, rc)
	case len(seg) == 2 && seg[0] == "v1" && seg[1] == "webhooks":
		status, body, err = a.webhooks(ctx, rc, "")
	case len(seg) == 3 && seg[0] == "v1" && seg[1] == "webhooks":
		status, body, err = a.webhooks(ctx, rc, seg[2])
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

package redirect

import (
	"bytes"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// Options configure a Handler.
type Options struct {
	Table    *Table
	Recorder *counter.Recorder
	// Secret keys visitor keys and click ids (see DeriveKeys). Required.
	Secret []byte
	// ClickParam is the query parameter that carries the click id.
	// default: "cg_click"
	ClickParam string
}

// DefaultClickParam is the query parameter the app reads the click id from.
const DefaultClickParam = "cg_click"

// Handler serves the public listener.
type Handler struct {
	o        Options
	visitors *visitorHasher
	clicks   *clickid.Signer
	bufs     sync.Pool
}

// New returns a Handler.
func New(o Options) *Handler {
	if len(o.Secret) == 0 {
		panic("BUG: redirect.Options.Secret is empty")
	}
	if o.ClickParam == "" {
		o.ClickParam = DefaultClickParam
	}
	vk, ck := DeriveKeys(o.Secret)
	h := &Handler{o: o, visitors: newVisitorHasher(vk), clicks: clickid.NewSigner(ck)}
	h.bufs.New = func() any { return &redirectBuf{} }
	return h
}

// Signer verifies the click ids this handler signs.
func (h *Handler) Signer() *clickid.Signer { return h.clicks }

type redirectBuf struct {
	id, loc []byte
}

var (
	robotsTxt = []byte("User-agent: *\nDisallow: /\n")
	okBody    = []byte("ok\n")
)

// Handle serves GET|HEAD /{code}, /healthz and /robots.txt.
func (h *Handler) Handle(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	path := ctx.Request.URI().PathOriginal()
	switch string(path) {
	case "/healthz":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBody(okBody)
		return
	case "/robots.txt":
		// Well-behaved crawlers stay away, so they are never clicks.
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBody(robotsTxt)
		return
	}
	// Validated on the raw path: a percent-encoded or odd path is a 404
	// without a lookup.
	if len(path) < 2 || path[0] != '/' || !ValidCode(path[1:]) {
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return
	}
	e := h.o.Table.Lookup(path[1:])
	if e == nil {
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return
	}
	now := ctx.Time()
	ua := ctx.UserAgent()
	if ctx.IsGet() {
		// Counted before the redirect is sent.
		v := counter.Visit{
			Campaign: e.Campaign.ID,
			Creator:  e.Creator.ID,
			Key:      h.visitors.Key(e.Campaign.ID, e.Creator.ID, ctx.RemoteIP(), ua),
		}
		v.SetWindow(now, time.Duration(e.Campaign.DedupeWindow))
		h.o.Recorder.Record(&v)
	}
	h.redirect(ctx, e, ua, now)
}

func (h *Handler) redirect(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, now time.Time) {
	b := h.bufs.Get().(*redirectBuf)
	c := clickid.Claims{Campaign: e.Campaign.ID, Creator: e.Creator.ID, Link: e.Link.Code, Time: now.Unix()}
	b.id = h.clicks.Append(b.id[:0], &c)
	b.loc = AppendLocation(b.loc[:0], destination(&e.Link.Destinations, ua), h.o.ClickParam, b.id)
	// Set, not ctx.Redirect: that would resolve and rewrite the target.
	ctx.Response.Header.SetBytesV("Location", b.loc)
	// A cached redirect is an uncounted click.
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(fasthttp.StatusFound)
	h.bufs.Put(b)
}

var (
	iPhone  = []byte("iPhone")
	iPad    = []byte("iPad")
	iPod    = []byte("iPod")
	android = []byte("Android")
)

// destination picks the platform's destination by User-Agent.
func destination(d *counter.Destinations, ua []byte) string {
	if d.IOS != "" && (bytes.Contains(ua, iPhone) || bytes.Contains(ua, iPad) || bytes.Contains(ua, iPod)) {
		return d.IOS
	}
	if d.Android != "" && bytes.Contains(ua, android) {
		return d.Android
	}
	return d.Default
}

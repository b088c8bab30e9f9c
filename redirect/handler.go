package redirect

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/clickid"
	"github.com/clickgate/clickgate/redirect/useragent"
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
	// PublicURL is the base of link URLs, for preview pages.
	// default: "http://localhost"
	PublicURL string
	// TrustedProxies may set the client address with X-Forwarded-For.
	// default: none, the socket peer is the client
	TrustedProxies *TrustedProxies
	// Velocity limits clicks per client network. default: no limit
	Velocity *Velocity
}

// DefaultClickParam is the query parameter the app reads the click id from.
const DefaultClickParam = "cg_click"

// Visitor cookie: a signed random id (see NewCookie), so a person who
// changes networks stays one visitor. 400 days is the longest lifetime
// browsers keep.
const (
	VisitorCookie    = "cg_vid"
	visitorCookieAge = 400 * 24 * 3600
)

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
	if o.PublicURL == "" {
		o.PublicURL = "http://localhost"
	}
	o.PublicURL = strings.TrimSuffix(o.PublicURL, "/")
	vk, ck := DeriveKeys(o.Secret)
	h := &Handler{o: o, visitors: newVisitorHasher(vk), clicks: clickid.NewSigner(ck)}
	h.bufs.New = func() any { return &redirectBuf{} }
	return h
}

// Signer verifies the click ids this handler signs.
func (h *Handler) Signer() *clickid.Signer { return h.clicks }

type redirectBuf struct {
	id, loc, page []byte
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
	addr := ClientIP(ctx, h.o.TrustedProxies)
	reason := h.classify(ctx, e, ua, addr, now)
	if reason == counter.Qualified {
		// A person: dedupe decides, and the visit is counted before the
		// redirect is sent.
		h.record(ctx, e, ua, addr, now)
	} else {
		h.o.Recorder.Note(e.Campaign.ID, e.Creator.ID, counter.DayOf(now), reason)
	}
	if reason == counter.Preview {
		h.preview(ctx, e, ua, now)
		return
	}
	h.redirect(ctx, e, ua, now)
}

// classify returns why a click is not paid, or Qualified for a person's
// click that dedupe decides. Every person is redirected whatever it says.
// No I/O, no allocation.
func (h *Handler) classify(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, addr netip.Addr, now time.Time) counter.Reason {
	hdr := &ctx.Request.Header
	if ctx.IsHead() || isPrefetch(hdr) {
		return counter.Prefetch
	}
	switch useragent.Classify(ua) {
	case useragent.Preview:
		return counter.Preview
	case useragent.Bot:
		return counter.Bot
	}
	// A page that embeds the link as an image or a frame is not a person
	// choosing to visit (cookie stuffing).
	if dest := hdr.Peek("Sec-Fetch-Dest"); len(dest) > 0 && string(dest) != "document" {
		return counter.Prefetch
	}
	if h.o.Velocity != nil && !h.o.Velocity.Hit(NetworkKey(addr), now) {
		return counter.Velocity
	}
	if now.Before(e.Campaign.StartsAt) || !now.Before(e.Campaign.EndsAt) {
		return counter.OutOfWindow
	}
	if e.Creator.Status != counter.StatusActive {
		return counter.Inactive
	}
	return counter.Qualified
}

var (
	prefetchToken = []byte("prefetch")
	previewToken  = []byte("preview")
)

// isPrefetch reports a speculative load: Sec-Purpose (Chrome, Safari),
// Purpose (older Chrome), X-Purpose (Safari's preview) or X-Moz (Firefox).
func isPrefetch(hdr *fasthttp.RequestHeader) bool {
	return bytes.Contains(hdr.Peek("Sec-Purpose"), prefetchToken) ||
		bytes.Equal(hdr.Peek("Purpose"), prefetchToken) ||
		bytes.Equal(hdr.Peek("X-Purpose"), previewToken) ||
		bytes.Equal(hdr.Peek("X-Purpose"), prefetchToken) ||
		bytes.Equal(hdr.Peek("X-Moz"), prefetchToken)
}

// record dedupes and counts a person's visit. With a visitor cookie the
// cookie keys the visitor and the network is marked seen too; without one,
// the network keys the visitor and a new cookie is set and marked seen, so
// the next click, with the cookie, is a duplicate. A visitor the local
// filter knows costs neither a second key nor a cookie.
func (h *Handler) record(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, addr netip.Addr, now time.Time) {
	v := counter.Visit{Campaign: e.Campaign.ID, Creator: e.Creator.ID}
	v.SetWindow(now, time.Duration(e.Campaign.DedupeWindow))
	id, hasCookie := h.visitors.ParseCookie(ctx.Request.Header.Cookie(VisitorCookie))
	if hasCookie {
		v.Key = h.visitors.CookieKey(v.Campaign, v.Creator, id[:])
	} else {
		v.Key = h.visitors.NetworkKey(v.Campaign, v.Creator, addr, ua)
	}
	if h.o.Recorder.Known(&v) {
		return
	}
	v.HasAlso = true
	if hasCookie {
		v.Also = h.visitors.NetworkKey(v.Campaign, v.Creator, addr, ua)
	} else {
		var cookie [visitorCookieLen]byte
		id := h.visitors.NewCookie(cookie[:])
		v.Also = h.visitors.CookieKey(v.Campaign, v.Creator, id[:])
		setVisitorCookie(ctx, cookie[:])
	}
	h.o.Recorder.Record(&v)
}

func setVisitorCookie(ctx *fasthttp.RequestCtx, id []byte) {
	c := fasthttp.AcquireCookie()
	c.SetKey(VisitorCookie)
	c.SetValueBytes(id)
	c.SetPath("/")
	c.SetMaxAge(visitorCookieAge)
	c.SetHTTPOnly(true)
	c.SetSecure(true)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	ctx.Response.Header.SetCookie(c)
	fasthttp.ReleaseCookie(c)
}

func (h *Handler) redirect(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, now time.Time) {
	b := h.bufs.Get().(*redirectBuf)
	b.loc = h.location(b, e, ua, now)
	// Set, not ctx.Redirect: that would resolve and rewrite the target.
	ctx.Response.Header.SetBytesV("Location", b.loc)
	// A cached redirect is an uncounted click.
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(fasthttp.StatusFound)
	h.bufs.Put(b)
}

// location appends the platform's destination with a new click id to b.loc.
func (h *Handler) location(b *redirectBuf, e *Entry, ua []byte, now time.Time) []byte {
	c := clickid.Claims{Campaign: e.Campaign.ID, Creator: e.Creator.ID, Link: e.Link.Code, Time: now.Unix()}
	b.id = h.clicks.Append(b.id[:0], &c)
	return AppendLocation(b.loc[:0], destination(&e.Link.Destinations, ua), h.o.ClickParam, b.id)
}

// preview answers a link-unfurl fetcher with the link's card.
func (h *Handler) preview(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, now time.Time) {
	b := h.bufs.Get().(*redirectBuf)
	b.loc = h.location(b, e, ua, now)
	card := e.Link.Preview.Or(e.Campaign.Preview)
	if card.Title == "" {
		card.Title = e.Campaign.Name
	}
	b.page = appendPreviewPage(b.page[:0], &card, h.o.PublicURL+"/"+e.Link.Code, b.loc)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b.page)
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

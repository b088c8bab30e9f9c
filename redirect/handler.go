package redirect

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
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
	// Hosts are the hosts served; others get 421. default: nil, any host
	Hosts *Hosts
	// Probes limits unknown codes per client network. default: no limit
	Probes *Probes
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

	// Response header names as fasthttp keeps them (SetCanonical skips
	// normalizing them again on every request), and a value.
	headerLocation     = []byte("Location")
	headerCacheControl = []byte("Cache-Control")
	noStore            = []byte("no-store")
)

// Requests refused before a click, by reason. Every refusal is an answer
// of its own status with a fixed body, the same whatever the request held.
var (
	refusedMethod    = metrics.NewCounter(`clickgate_public_refused_total{reason="method"}`)
	refusedBody      = metrics.NewCounter(`clickgate_public_refused_total{reason="body"}`)
	refusedHost      = metrics.NewCounter(`clickgate_public_refused_total{reason="host"}`)
	refusedMalformed = metrics.NewCounter(`clickgate_public_refused_total{reason="malformed_path"}`)
	refusedUnknown   = metrics.NewCounter(`clickgate_public_refused_total{reason="unknown_code"}`)
	refusedProbes    = metrics.NewCounter(`clickgate_public_refused_total{reason="probes"}`)
)

// Handle serves GET|HEAD /{code}, /healthz and /robots.txt.
func (h *Handler) Handle(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		refusedMethod.Inc()
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	if hasBody(&ctx.Request.Header) {
		refusedBody.Inc()
		ctx.Error("bad request\n", fasthttp.StatusBadRequest)
		ctx.SetConnectionClose()
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
	// Health checks of load balancers name the node by its address, so
	// only codes are for the allowed hosts.
	if h.o.Hosts != nil && !h.o.Hosts.Allows(requestHost(ctx)) {
		refusedHost.Inc()
		ctx.Error("misdirected request\n", fasthttp.StatusMisdirectedRequest)
		return
	}
	// Validated on the raw path: a percent-encoded or odd path is a 404
	// without a lookup.
	if len(path) < 2 || path[0] != '/' || !ValidCode(path[1:]) {
		refusedMalformed.Inc()
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return
	}
	now := ctx.Time()
	addr := ClientIP(ctx, h.o.TrustedProxies)
	var e Entry
	ok := h.o.Table.Lookup(path[1:], &e)
	if p := h.o.Probes; p != nil {
		k := NetworkKey(addr)
		if !ok && !p.Unknown(k, now) || ok && !p.Allows(k, now) {
			refusedProbes.Inc()
			ctx.Error("too many requests\n", fasthttp.StatusTooManyRequests)
			return
		}
	}
	if !ok {
		// The same bytes as a malformed path: nothing tells an unknown
		// code from another.
		refusedUnknown.Inc()
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return
	}
	ua := ctx.UserAgent()
	reason := h.classify(ctx, &e, ua, addr, now)
	var nonce *[clickid.NonceLen]byte
	if reason == counter.Qualified {
		// A person: dedupe decides, and the visit is counted before the
		// redirect is sent, with the nonce of its click id.
		n := h.clicks.NewNonce()
		nonce = &n
		h.record(ctx, &e, ua, addr, now, nonce)
	} else {
		h.o.Recorder.Note(e.Campaign.ID, e.Creator.ID, e.Link.Code, counter.DayOf(now), reason)
	}
	// Every answer carries a click id; only a person's eligible navigation
	// may earn a signup. Dedupe's verdict does not matter: a person who
	// comes back may still sign up, once.
	attributable := reason == counter.Qualified
	if reason == counter.Preview {
		h.preview(ctx, &e, ua, now)
		return
	}
	h.redirect(ctx, &e, ua, now, attributable, nonce)
}

// hasBody reports whether a request came with body framing. No public
// request has a body. A body on a GET (a Content-Length, a chunked
// Transfer-Encoding, or both) is how a request is smuggled past a proxy
// that frames it otherwise, so it is refused, and the connection is
// closed: its next bytes need not start a request.
//
// fasthttp has read the body by now. Its length is the Content-Length, or
// -1 while chunked; -2 is no framing at all (fasthttp's "identity"), every
// browser's GET. An empty chunked body leaves 0 and no Transfer-Encoding
// behind, as "Content-Length: 0" does, and a request with both framings is
// marked to close: then the raw headers tell, which only those requests
// pay for.
func hasBody(hdr *fasthttp.RequestHeader) bool {
	cl := hdr.ContentLength()
	if cl > 0 || cl == -1 {
		return true
	}
	return (cl == 0 || hdr.ConnectionClose()) && hasHeader(hdr.RawHeaders(), transferEncoding)
}

var transferEncoding = []byte("transfer-encoding:")

// hasHeader reports whether raw, header lines as received, has a line
// that starts with name (lower case, with its colon), in any case.
func hasHeader(raw, name []byte) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) >= len(name) && bytes.EqualFold(line[:len(name)], name) {
			return true
		}
	}
	return false
}

var schemeSep = []byte("://")

// ReadError maps an error that kept fasthttp from reading a request to its
// status and a fixed message: nothing the client sent is echoed. It serves
// the ErrorHandler of both listeners; ServerError is the public one's.
func ReadError(err error) (status int, msg string) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		return fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, "request body too large"
	case errors.As(err, &ne) && ne.Timeout():
		return fasthttp.StatusRequestTimeout, "request timeout"
	}
	return fasthttp.StatusBadRequest, "bad request"
}

// Requests the public listener could not read, by what was wrong.
var (
	refusedRequest     = metrics.NewCounter(`clickgate_public_refused_total{reason="malformed_request"}`)
	refusedHeaderBytes = metrics.NewCounter(`clickgate_public_refused_total{reason="headers_too_large"}`)
	refusedBodyBytes   = metrics.NewCounter(`clickgate_public_refused_total{reason="body_too_large"}`)
	refusedTimeout     = metrics.NewCounter(`clickgate_public_refused_total{reason="timeout"}`)
)

// ServerError answers a request the public listener could not read, and
// counts it.
func ServerError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := ReadError(err)
	switch status {
	case fasthttp.StatusRequestHeaderFieldsTooLarge:
		refusedHeaderBytes.Inc()
	case fasthttp.StatusRequestEntityTooLarge:
		refusedBodyBytes.Inc()
	case fasthttp.StatusRequestTimeout:
		refusedTimeout.Inc()
	default:
		refusedRequest.Inc()
	}
	ctx.Error(msg+"\n", status)
}

// requestHost returns the host a request is for: the authority of an
// absolute-form target, which overrides Host (RFC 9112, section 3.2.2), or
// else the Host header as sent. A userinfo part ("evil@go.example.com") is
// an error (RFC 9110, section 4.2.4) and gives no host; ctx.Host would
// drop it and answer go.example.com.
func requestHost(ctx *fasthttp.RequestCtx) []byte {
	uri := ctx.Request.Header.RequestURI()
	if len(uri) == 0 || uri[0] == '/' {
		return ctx.Request.Header.Host()
	}
	authority := uri
	if i := bytes.Index(authority, schemeSep); i >= 0 {
		authority = authority[i+len(schemeSep):]
	}
	if end := bytes.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	if bytes.IndexByte(authority, '@') >= 0 {
		return nil
	}
	return ctx.Host()
}

// classify returns why a click is not paid, or Qualified for a person's
// click that dedupe decides. Every person is redirected whatever it says.
// No I/O, no allocation.
func (h *Handler) classify(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, addr netip.Addr, now time.Time) counter.Reason {
	fetch := readFetch(&ctx.Request.Header)
	if ctx.IsHead() || fetch.speculative {
		return counter.Prefetch
	}
	switch useragent.Classify(ua) {
	case useragent.Preview:
		return counter.Preview
	case useragent.Bot:
		return counter.Bot
	}
	if fetch.notNavigation {
		return counter.Prefetch
	}
	if h.o.Velocity != nil && !h.o.Velocity.Hit(NetworkKey(addr), now) {
		return counter.Velocity
	}
	if !e.Campaign.Running(now) {
		return counter.OutOfWindow
	}
	if e.Creator.Status != counter.StatusActive {
		return counter.Inactive
	}
	return counter.Qualified
}

// record dedupes and counts a person's visit. With a visitor cookie the
// cookie keys the visitor and the network is marked seen too; without one,
// the network keys the visitor and a new cookie is set and marked seen, so
// the next click, with the cookie, is a duplicate. A visitor the local
// filter knows costs neither a second key nor a cookie.
func (h *Handler) record(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, addr netip.Addr, now time.Time, nonce *[clickid.NonceLen]byte) {
	v := counter.Visit{Campaign: e.Campaign.ID, Creator: e.Creator.ID, Link: e.Link.Code, At: now.UnixMilli(), Nonce: *nonce}
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
	v.Network, v.Block = h.visitors.NetworkBlock(addr)
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

func (h *Handler) redirect(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, now time.Time, attributable bool, nonce *[clickid.NonceLen]byte) {
	b := h.bufs.Get().(*redirectBuf)
	b.loc = h.location(b, e, ua, ctx.URI().QueryString(), now, attributable, nonce)
	// Set, not ctx.Redirect: that would resolve and rewrite the target.
	ctx.Response.Header.SetCanonical(headerLocation, b.loc)
	// A cached redirect is an uncounted click.
	ctx.Response.Header.SetCanonical(headerCacheControl, noStore)
	ctx.SetStatusCode(fasthttp.StatusFound)
	h.bufs.Put(b)
}

// location appends the platform's destination with a new click id to b.loc:
// one of its own per click, attributable or not, with nonce (the nonce of
// the visit recorded) or, nil, a new one. The short link's query is merged
// in unless its campaign turned passthrough off.
func (h *Handler) location(b *redirectBuf, e *Entry, ua, query []byte, now time.Time, attributable bool, nonce *[clickid.NonceLen]byte) []byte {
	c := clickid.Claims{Campaign: e.Campaign.ID, Creator: e.Creator.ID, Link: e.Link.Code, Time: now.Unix(), Attributable: attributable}
	if nonce != nil {
		c.Nonce = *nonce
		b.id = h.clicks.Append(b.id[:0], &c)
	} else {
		b.id = h.clicks.AppendNew(b.id[:0], &c)
	}
	if !e.Campaign.QueryPassthrough {
		query = nil
	}
	return AppendLocationQuery(b.loc[:0], destination(&e.Link.Destinations, ua), query, h.o.ClickParam, b.id)
}

// preview answers a link-unfurl fetcher with the link's card. Its click id
// is never attributable: a fetcher is not a person, and the person who
// follows the page's refresh was not counted.
func (h *Handler) preview(ctx *fasthttp.RequestCtx, e *Entry, ua []byte, now time.Time) {
	b := h.bufs.Get().(*redirectBuf)
	b.loc = h.location(b, e, ua, ctx.URI().QueryString(), now, false, nil)
	card := e.Link.Preview.Or(e.Campaign.Preview)
	if card.Title == "" {
		card.Title = e.Campaign.Name
	}
	b.page = appendPreviewPage(b.page[:0], &card, h.o.PublicURL+"/"+e.Link.Code, b.loc)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.SetCanonical(headerCacheControl, noStore)
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

package redirect

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

var (
	prefetchToken = []byte("prefetch")
	previewToken  = []byte("preview")
)

// fetch is what a request's headers say of how it was made.
type fetch struct {
	// speculative: a prefetch or a prerender, Sec-Purpose (Chrome,
	// Safari), Purpose (older Chrome), X-Purpose (Safari's preview) or
	// X-Moz (Firefox).
	speculative bool
	// notNavigation: a page that embeds the link as an image or a frame
	// is not a person choosing to visit (cookie stuffing), Sec-Fetch-Dest
	// other than document; and a fetch() or a no-cors subresource load
	// says so even without a destination, Sec-Fetch-Mode other than
	// navigate.
	notNavigation bool
}

// The headers readFetch reads, as bits of a set.
const (
	secPurpose = 1 << iota
	purpose
	xPurpose
	xMoz
	secFetchDest
	secFetchMode
)

// readFetch reads the headers of fetch in one pass over the request's
// headers, where a Peek a header would scan them and normalize its name
// each time. Every copy of a repeated header counts, and a purpose in any
// case: a request that any of them says is a prefetch, or not a
// navigation, is not a person's visit.
func readFetch(hdr *fasthttp.RequestHeader) (f fetch) {
	for k, v := range hdr.All() {
		var name int
		switch len(k) {
		case len("Sec-Purpose"):
			name = fold(k, "Sec-Purpose", secPurpose)
		case len("Purpose"):
			name = fold(k, "Purpose", purpose)
		case len("X-Purpose"):
			name = fold(k, "X-Purpose", xPurpose)
		case len("X-Moz"):
			name = fold(k, "X-Moz", xMoz)
		case len("Sec-Fetch-Dest"):
			// Browsers send four Sec-Fetch- headers of this length.
			switch k[len("Sec-Fetch-")] | 0x20 {
			case 'd':
				name = fold(k, "Sec-Fetch-Dest", secFetchDest)
			case 'm':
				name = fold(k, "Sec-Fetch-Mode", secFetchMode)
			}
		}
		switch name {
		case secPurpose:
			f.speculative = f.speculative || containsFold(v, prefetchToken)
		case purpose, xMoz:
			f.speculative = f.speculative || bytes.EqualFold(v, prefetchToken)
		case xPurpose:
			f.speculative = f.speculative || bytes.EqualFold(v, previewToken) || bytes.EqualFold(v, prefetchToken)
		case secFetchDest:
			f.notNavigation = f.notNavigation || len(v) > 0 && string(v) != "document"
		case secFetchMode:
			f.notNavigation = f.notNavigation || len(v) > 0 && string(v) != "navigate"
		}
	}
	return f
}

// fold returns bit when k is name in any case, else 0.
func fold(k []byte, name string, bit int) int {
	if bytes.EqualFold(k, []byte(name)) {
		return bit
	}
	return 0
}

// containsFold says whether token is in s, in any case.
func containsFold(s, token []byte) bool {
	for i := 0; i+len(token) <= len(s); i++ {
		if bytes.EqualFold(s[i:i+len(token)], token) {
			return true
		}
	}
	return false
}

package redirect

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// MaxDestinationLen is the longest destination ValidateDestination accepts,
// in bytes. Longer URLs are cut or refused by some browsers and proxies.
const MaxDestinationLen = 2048

var (
	errDestinationNotHTTPS   = errors.New("destination must be an absolute https URL")
	errDestinationUserInfo   = errors.New("destination must not contain user info")
	errDestinationNoHost     = errors.New("destination must have a host")
	errDestinationHostEscape = errors.New("destination host must not be percent-encoded")
)

// ValidateDestination checks that raw can be sent as is as the Location of a
// redirect: an absolute https URL with a host, no user info, printable ASCII
// only, and not pointing at one of ownHosts (a loop). ownHosts are host
// names, optionally with a port; the port is ignored and names compare
// case-insensitively.
//
// It runs when a link is created, not per click: the redirect path trusts
// the stored destination and only appends to it (AppendLocation).
func ValidateDestination(raw string, ownHosts []string) error {
	if len(raw) > MaxDestinationLen {
		return fmt.Errorf("destination is %d bytes; max %d", len(raw), MaxDestinationLen)
	}
	for i := 0; i < len(raw); i++ {
		// CR and LF would split the Location header; browsers read '\' as
		// '/', so "https:\\evil.example" is not what it looks like.
		switch c := raw[i]; {
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("destination must not contain control characters; found %q at offset %d", c, i)
		case c == ' ':
			return fmt.Errorf("destination must not contain spaces; found one at offset %d", i)
		case c == '\\':
			return fmt.Errorf("destination must not contain backslashes; found one at offset %d", i)
		case c > 0x7f:
			return fmt.Errorf("destination must be ASCII (use punycode and percent-encoding); found byte 0x%02x at offset %d", c, i)
		}
	}
	// Checked on the raw string rather than on the parsed scheme so that
	// "https:host", "https:/host" and "//host" are refused as well.
	const prefix = "https://"
	if len(raw) < len(prefix) || !strings.EqualFold(raw[:len(prefix)], prefix) {
		return errDestinationNotHTTPS
	}
	// net/url decodes percent-escapes in the host and browsers do too, so
	// "https://g%6F.example.com" would be a loop that the comparison below
	// cannot see in the raw string. No real host needs them.
	authority := raw[len(prefix):]
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	if strings.Contains(authority, "@") {
		return errDestinationUserInfo
	}
	if strings.Contains(authority, "%") {
		return errDestinationHostEscape
	}

	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("destination is not a valid URL: %w", err)
	}
	// Belt and braces: the prefix check above implies all of these.
	if u.Scheme != "https" || u.Opaque != "" {
		return errDestinationNotHTTPS
	}
	if u.User != nil {
		return errDestinationUserInfo
	}
	host := canonicalHost(u.Hostname())
	if host == "" {
		return errDestinationNoHost
	}
	// net/url checks only that a port is digits; a browser refuses the
	// redirect when it is out of range.
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("destination port %q is out of range", p)
		}
	}
	for _, own := range ownHosts {
		if strings.EqualFold(host, canonicalHost((&url.URL{Host: own}).Hostname())) {
			return fmt.Errorf("destination must not point at this service (host %q)", u.Hostname())
		}
	}
	return nil
}

// canonicalHost drops the trailing dot of a fully qualified name:
// "go.example.com." is the same host as "go.example.com".
func canonicalHost(h string) string {
	return strings.TrimSuffix(h, ".")
}

// AppendLocation appends dest with the query parameter param=value added to
// dst and returns the extended slice: before any fragment, after '?' if dest
// has no query yet and '&' otherwise. dest must have passed
// ValidateDestination; param and value must be URL-safe as they are (a
// base64url click id is), they are not escaped. It does not allocate when dst
// has room.
func AppendLocation(dst []byte, dest string, param string, value []byte) []byte {
	return AppendLocationQuery(dst, dest, nil, param, value)
}

// Bounds of a short link's query passed through to its destination: the
// first parameters only, and only as many bytes, so that a request cannot
// make a Location header, or the work of building it, grow without end.
const (
	MaxPassthroughParams = 32
	MaxPassthroughBytes  = 2048
)

// AppendLocationQuery is AppendLocation with the parameters of query (a
// short link's raw query string, as received) merged into dest's query,
// before param: all but param itself, those dest has already (dest's own
// win), empty ones, and those past MaxPassthroughParams or
// MaxPassthroughBytes. Keys compare as they decode ('+' is a space, %XX a
// byte), so "cg%5Fclick" is param "cg_click". Each key and value is
// re-escaped: bytes other than letters, digits and "-._~" become %XX, so
// nothing from the request reaches the header as it was sent. It does not
// allocate when dst has room.
func AppendLocationQuery(dst []byte, dest string, query []byte, param string, value []byte) []byte {
	frag := ""
	if i := strings.IndexByte(dest, '#'); i >= 0 {
		dest, frag = dest[:i], dest[i:]
	}
	dst = append(dst, dest...)
	destQuery := ""
	switch q := strings.IndexByte(dest, '?'); {
	case q < 0:
		dst = append(dst, '?')
	case q == len(dest)-1 || dest[len(dest)-1] == '&':
		// An empty query ("https://x/p?") or one ending in '&' already
		// has its separator. Only the first '?' starts the query: in
		// "https://x/p??" the query is "?" and needs '&'.
		destQuery = dest[q+1:]
	default:
		destQuery = dest[q+1:]
		dst = append(dst, '&')
	}
	start := len(dst)
	for n := 0; len(query) > 0 && n < MaxPassthroughParams; {
		pair := query
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			pair, query = query[:i], query[i+1:]
		} else {
			query = nil
		}
		if len(pair) == 0 {
			continue
		}
		n++
		key, val := pair, pair[:0]
		eq := bytes.IndexByte(pair, '=')
		if eq >= 0 {
			key, val = pair[:eq], pair[eq+1:]
		}
		if len(key) == 0 || queryKeyEqual(key, param) || queryHasKey(destQuery, key) {
			continue
		}
		mark := len(dst)
		dst = appendQueryEscaped(dst, key)
		if eq >= 0 {
			dst = append(dst, '=')
			dst = appendQueryEscaped(dst, val)
		}
		dst = append(dst, '&')
		if len(dst)-start > MaxPassthroughBytes {
			dst = dst[:mark]
			break
		}
	}
	dst = append(dst, param...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	return append(dst, frag...)
}

// queryHasKey reports whether the raw query q has a parameter whose key
// decodes as key does.
func queryHasKey(q string, key []byte) bool {
	for len(q) > 0 {
		pair := q
		if i := strings.IndexByte(q, '&'); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			q = ""
		}
		if i := strings.IndexByte(pair, '='); i >= 0 {
			pair = pair[:i]
		}
		if queryKeyEqual(key, pair) {
			return true
		}
	}
	return false
}

// queryKeyEqual reports whether the query components a and b decode to the
// same bytes, in any case: an app that reads its parameters without regard
// to case must not find a visitor's CG_CLICK, or REF, beside the real one.
func queryKeyEqual[T string | []byte](a []byte, b T) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		var ca, cb byte
		ca, i = decodeQueryByte(a, i)
		cb, j = decodeQueryByte(b, j)
		if lower(ca) != lower(cb) {
			return false
		}
	}
	return i == len(a) && j == len(b)
}

// decodeQueryByte decodes the byte of the query component s at i and
// returns it with the index after it: '+' is a space, %XX a byte, and a '%'
// not followed by two hex digits is itself.
func decodeQueryByte[T string | []byte](s T, i int) (byte, int) {
	switch c := s[i]; c {
	case '+':
		return ' ', i + 1
	case '%':
		if i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				return hi<<4 | lo, i + 3
			}
		}
		return c, i + 1
	default:
		return c, i + 1
	}
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendQueryEscaped appends the query component raw, decoded and escaped
// again: letters, digits and "-._~" as they are, every other byte as %XX.
func appendQueryEscaped(dst, raw []byte) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(raw); {
		var c byte
		c, i = decodeQueryByte(raw, i)
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

// lower is the ASCII lower case of c.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

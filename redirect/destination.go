package redirect

import (
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
	frag := ""
	if i := strings.IndexByte(dest, '#'); i >= 0 {
		dest, frag = dest[:i], dest[i:]
	}
	dst = append(dst, dest...)
	switch q := strings.IndexByte(dest, '?'); {
	case q < 0:
		dst = append(dst, '?')
	case q == len(dest)-1 || dest[len(dest)-1] == '&':
		// An empty query ("https://x/p?") or one ending in '&' already
		// has its separator. Only the first '?' starts the query: in
		// "https://x/p??" the query is "?" and needs '&'.
	default:
		dst = append(dst, '&')
	}
	dst = append(dst, param...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	return append(dst, frag...)
}

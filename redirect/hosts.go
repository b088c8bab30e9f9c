package redirect

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// Hosts is the allowlist of hosts the public listener answers for
// (--host). A request for another host, named by its Host header or by the
// authority of an absolute-form target (RFC 9112, section 3.2.2), is
// refused before its code is looked up, so a domain that someone else
// points at clickgate, or a request that names another host, counts
// nothing. The nil *Hosts allows every host. It is immutable and safe for
// concurrent use.
//
// Nothing is built from the request's host: link URLs, preview pages and
// redirects use the configured public URL and the links' destinations.
type Hosts struct {
	names [][]byte // lower case, without a port, brackets or a trailing dot
}

// ParseHosts parses a comma-separated list of host names and IP addresses,
// for example "go.example.com,links.example.com". Ports are ignored on
// both sides: a Host of go.example.com:8080 is go.example.com. "*" or an
// empty (or all-blank) string allows every host and returns nil.
func ParseHosts(s string) (*Hosts, error) {
	if t := strings.TrimSpace(s); t == "" || t == "*" {
		return nil, nil
	}
	h := &Hosts{}
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		name := strings.ToLower(strings.TrimSuffix(f, "."))
		if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")); err == nil && a.Zone() == "" {
			name = a.String()
		} else if !validHostName(name) {
			return nil, fmt.Errorf("cannot parse hosts %q: entry %d, %q, is not a host name or an IP address", s, i+1, f)
		}
		h.names = append(h.names, []byte(name))
	}
	return h, nil
}

// validHostName reports whether s is a DNS name: dot-separated labels of
// letters, digits and '-' (and '_', which some names carry).
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Allows reports whether host, with or without a port, is on the list. An
// empty host (HTTP/1.0 without Host) is allowed only when every host is.
// It does not allocate.
func (h *Hosts) Allows(host []byte) bool {
	if h == nil {
		return true
	}
	name := hostName(host)
	for _, n := range h.names {
		if bytes.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// hostName strips the port, IPv6 brackets and a trailing dot from host.
func hostName(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 {
			return nil
		}
		return host[1:end]
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[:i], ':') < 0 {
		host = host[:i]
	}
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	return host
}

// Names returns the hosts on the list; nil when every host is allowed.
func (h *Hosts) Names() []string {
	if h == nil {
		return nil
	}
	names := make([]string, len(h.names))
	for i, n := range h.names {
		names[i] = string(n)
	}
	return names
}

// String returns the list, or "*" for every host.
func (h *Hosts) String() string {
	if h == nil {
		return "*"
	}
	return string(bytes.Join(h.names, []byte(",")))
}

package redirect

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

var testOwnHosts = []string{"go.example.com", "GO2.example.com:8443", "[::1]:80"}

func TestValidateDestination(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		err := ValidateDestination(in, testOwnHosts)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) || (want == "") != (got == "") {
			t.Fatalf("unexpected error for %q; got %v; want %q", in, err, want)
		}
	}
	const (
		ok        = ""
		notHTTPS  = "destination must be an absolute https URL"
		userInfo  = "destination must not contain user info"
		control   = "destination must not contain control characters"
		space     = "destination must not contain spaces"
		backslash = "destination must not contain backslashes"
		nonASCII  = "destination must be ASCII"
		loop      = "destination must not point at this service"
		noHost    = "destination must have a host"
		escaped   = "destination host must not be percent-encoded"
		tooLong   = "destination is 2049 bytes; max 2048"
		invalid   = "destination is not a valid URL"
	)

	f("https://app.example.com", ok)
	f("https://app.example.com/", ok)
	f("https://app.example.com/join?ref=1", ok)
	f("https://app.example.com/p#frag", ok)
	f("https://app.example.com/p?a=1#frag", ok)
	f("HTTPS://APP.example.com/x", ok)
	f("hTtPs://app.example.com/x", ok)
	f("https://app.example.com:8443/x", ok)
	f("https://xn--bcher-kva.example/caf%C3%A9?q=%20", ok)
	f("https://app.example.com/a@b", ok)
	f("https://app.example.com/?next=https://go.example.com/", ok)
	f("https://93.184.216.34/x", ok)
	f("https://[2001:db8::1]:443/x", ok)
	f("https://go.example.com.evil.example/x", ok)
	f("https://example.com/"+strings.Repeat("a", MaxDestinationLen-len("https://example.com/")), ok)

	// Other schemes, relative and scheme-relative references.
	f("", notHTTPS)
	f("http://app.example.com/", notHTTPS)
	f("javascript:alert(1)", notHTTPS)
	f("JAVASCRIPT://app.example.com/%0aalert(1)", notHTTPS)
	f("data:text/html,<script>alert(1)</script>", notHTTPS)
	f("ftp://app.example.com/", notHTTPS)
	f("//app.example.com/x", notHTTPS)
	f("/join", notHTTPS)
	f("join?ref=1", notHTTPS)
	f("app.example.com", notHTTPS)
	f("https:app.example.com", notHTTPS)
	f("https:/app.example.com", notHTTPS)
	f("https:", notHTTPS)
	f("https", notHTTPS)

	// User info.
	f("https://user@app.example.com/", userInfo)
	f("https://user:pw@app.example.com/", userInfo)
	f("https://@app.example.com/", userInfo)
	f("https://go.example.com@evil.example/", userInfo)

	// Header injection and look-alikes.
	f("https://app.example.com/\r\nSet-Cookie: a=b", control)
	f("https://app.example.com/\nx", control)
	f("https://app.example.com/\rx", control)
	f("https://app.example.com/\x00", control)
	f("https://app.example.com/\tx", control)
	f("https://app.example.com/\x7f", control)
	f("\x01https://app.example.com/", control)
	f("https://app.example.com/a b", space)
	f(" https://app.example.com/", space)
	f("https://app.example.com/ ", space)
	f("https:\\\\evil.example/", backslash)
	f("https://app.example.com\\@evil.example/", backslash)
	f("https://app.example.com/a\\b", backslash)

	// Non-ASCII: IDNs and paths must come punycoded and percent-encoded.
	f("https://bücher.example/", nonASCII)
	f("https://app.example.com/café", nonASCII)
	f("https://app.example.com/\xff", nonASCII)
	f("https://app.example.com/\u2028", nonASCII)

	// Loops.
	f("https://go.example.com/AB3KX9QZ", loop)
	f("https://GO.Example.COM/", loop)
	f("https://go.example.com:443/", loop)
	f("https://go.example.com./", loop)
	f("https://go2.example.com/", loop)
	f("https://go2.example.com:8443/x", loop)
	f("https://[::1]/", loop)

	// Hosts.
	f("https:///path", noHost)
	f("https://", noHost)
	f("https://?q=1", noHost)
	f("https://#frag", noHost)
	f("https://:443/", noHost)
	f("https://g%6F.example.com/", escaped)
	f("https://%67o.example.com/", escaped)
	f("https://[fe80::1%25en0]/", escaped)

	// Length.
	f("https://example.com/"+strings.Repeat("a", MaxDestinationLen+1-len("https://example.com/")), tooLong)

	// What net/url refuses.
	f("https://app.example.com:port/", invalid)
	f("https://[::1/", invalid)

	// Ports.
	f("https://app.example.com:/x", ok)
	f("https://app.example.com:65535/x", ok)
	f("https://app.example.com:65536/x", "destination port \"65536\" is out of range")
	f("https://app.example.com:0/x", "destination port \"0\" is out of range")
	f("https://app.example.com:99999999999999999999/", "is out of range")
}

func TestValidateDestinationNoOwnHosts(t *testing.T) {
	for _, in := range []string{"https://go.example.com/", "https://localhost/"} {
		if err := ValidateDestination(in, nil); err != nil {
			t.Fatalf("unexpected error for %q; got %v; want nil", in, err)
		}
	}
}

func TestAppendLocation(t *testing.T) {
	f := func(dest, want string) {
		t.Helper()
		got := AppendLocation([]byte("Location: "), dest, "cid", []byte("AcCJh9AG-_"))
		if string(got) != "Location: "+want {
			t.Fatalf("unexpected location for %q; got %q; want %q", dest, got, "Location: "+want)
		}
	}
	f("https://app.example.com", "https://app.example.com?cid=AcCJh9AG-_")
	f("https://app.example.com/", "https://app.example.com/?cid=AcCJh9AG-_")
	f("https://app.example.com/join?ref=1", "https://app.example.com/join?ref=1&cid=AcCJh9AG-_")
	f("https://app.example.com/p#frag", "https://app.example.com/p?cid=AcCJh9AG-_#frag")
	f("https://app.example.com/p?a=1#frag", "https://app.example.com/p?a=1&cid=AcCJh9AG-_#frag")
	f("HTTPS://APP.example.com/x", "HTTPS://APP.example.com/x?cid=AcCJh9AG-_")
	f("https://app.example.com:8443/x", "https://app.example.com:8443/x?cid=AcCJh9AG-_")
	f("https://app.example.com/p?", "https://app.example.com/p?cid=AcCJh9AG-_")
	f("https://app.example.com/p?a=1&", "https://app.example.com/p?a=1&cid=AcCJh9AG-_")
	f("https://app.example.com/p??", "https://app.example.com/p??&cid=AcCJh9AG-_")
	f("https://app.example.com/p?a=?", "https://app.example.com/p?a=?&cid=AcCJh9AG-_")
	f("https://app.example.com/p#", "https://app.example.com/p?cid=AcCJh9AG-_#")
	f("https://app.example.com/p#a?b#c", "https://app.example.com/p?cid=AcCJh9AG-_#a?b#c")
	f("https://app.example.com/p?a=1#a?b", "https://app.example.com/p?a=1&cid=AcCJh9AG-_#a?b")
}

func FuzzValidateDestination(f *testing.F) {
	for _, s := range []string{
		"https://app.example.com",
		"https://app.example.com/join?ref=1",
		"https://app.example.com/p?a=1#frag",
		"HTTPS://APP.example.com:8443/x",
		"https://[2001:db8::1]:443/x",
		"https://user:pw@app.example.com/",
		"https://go.example.com./",
		"https://g%6F.example.com/",
		"https:\\\\evil.example/",
		"//app.example.com/x",
		"javascript:alert(1)",
		"https://app.example.com/\r\nx",
		"https://:443/",
		"httpS://0??",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if ValidateDestination(raw, testOwnHosts) != nil {
			return
		}
		for i := 0; i < len(raw); i++ {
			if c := raw[i]; c < 0x21 || c > 0x7e {
				t.Fatalf("unexpected byte 0x%02x at %d in accepted %q; want printable ASCII", c, i, raw)
			}
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("unexpected parse error for accepted %q; got %v; want nil", raw, err)
		}
		if u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Opaque != "" {
			t.Fatalf("unexpected URL for accepted %q; got scheme %q host %q user %v opaque %q; want https, a host, no user info",
				raw, u.Scheme, u.Host, u.User, u.Opaque)
		}
		for _, own := range testOwnHosts {
			if strings.EqualFold(strings.TrimSuffix(u.Hostname(), "."), (&url.URL{Host: own}).Hostname()) {
				t.Fatalf("unexpected acceptance of own host in %q", raw)
			}
		}
		// The location built from it still parses to the same host.
		loc := string(AppendLocation(nil, raw, "cid", []byte("AcCJh9AG-_")))
		lu, err := url.Parse(loc)
		if err != nil || lu.Host != u.Host || !slices.Contains(lu.Query()["cid"], "AcCJh9AG-_") {
			t.Fatalf("unexpected location %q for accepted %q; got %v, host %q; want host %q with cid", loc, raw, err, lu.Host, u.Host)
		}
	})
}

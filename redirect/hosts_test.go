package redirect

import (
	"strings"
	"testing"
)

func TestParseHosts(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		h, err := ParseHosts(in)
		if err != nil {
			t.Fatalf("unexpected error for %q: %s", in, err)
		}
		if got := h.String(); got != want {
			t.Fatalf("unexpected hosts for %q; got %q; want %q", in, got, want)
		}
	}
	f("", "*")
	f("  ", "*")
	f("*", "*")
	f("go.example.com", "go.example.com")
	f(" GO.Example.com. , links.example.com", "go.example.com,links.example.com")
	f("203.0.113.7,[2001:DB8::1],::1", "203.0.113.7,2001:db8::1,::1")

	bad := func(in string) {
		t.Helper()
		if h, err := ParseHosts(in); err == nil {
			t.Fatalf("unexpected success for %q: %v", in, h)
		}
	}
	bad("go.example.com,")
	bad("go.example.com:443")
	bad("https://go.example.com")
	bad("evil@go.example.com")
	bad("go..example.com")
	bad("fe80::1%eth0")
	bad("*.example.com")
	bad(strings.Repeat("a", 64) + ".com")
}

func TestHostsAllows(t *testing.T) {
	h, err := ParseHosts("go.example.com,203.0.113.7,2001:db8::1")
	if err != nil {
		t.Fatal(err)
	}
	f := func(host string, want bool) {
		t.Helper()
		if got := h.Allows([]byte(host)); got != want {
			t.Fatalf("unexpected Allows(%q); got %v; want %v", host, got, want)
		}
	}
	f("go.example.com", true)
	f("GO.EXAMPLE.COM", true)
	f("go.example.com:8080", true)
	f("go.example.com.", true)
	f("go.example.com.:443", true)
	f("203.0.113.7:80", true)
	f("[2001:db8::1]:443", true)
	f("[2001:DB8::1]", true)
	f("", false) // HTTP/1.0 without Host
	f("evil.example.com", false)
	f("go.example.com.evil.example", false)
	f("evil@go.example.com", false)
	f("go.example.com@evil", false)
	f("xgo.example.com", false)
	f("go.example.co", false)
	f("[2001:db8::1", false)
	f("go.example.com:80:90", false)

	var any *Hosts
	if !any.Allows(nil) || !any.Allows([]byte("anything")) {
		t.Fatalf("unexpected refusal by the nil Hosts; want every host allowed")
	}
}

package redirect

import (
	"net/url"
	"regexp"
	"testing"
)

// codeRE is the code grammar as README states it, to check ValidCode's
// table against.
var codeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{4,32}$`)

// FuzzValidCode checks the code parser against the grammar, and that a
// valid code is a path segment as it stands: nothing in it can be
// percent-encoded, a dot segment or a separator.
func FuzzValidCode(f *testing.F) {
	for _, s := range []string{"AB3KX9QZ", "alice-2026", "healthz", "abc", "%41B3KX9QZ", "a/b/c", "..", "caf\u00e9", "A\x00BC"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := ValidCode(b)
		if want := codeRE.Match(b); got != want {
			t.Fatalf("unexpected ValidCode(%q); got %v; want %v", b, got, want)
		}
		if !got {
			if CheckCustomCode(string(b)) == nil {
				t.Fatalf("custom code %q accepted though invalid", b)
			}
			return
		}
		if esc := url.PathEscape(string(b)); esc != string(b) {
			t.Fatalf("valid code %q escapes to %q in a path", b, esc)
		}
		if err := CheckCustomCode(string(b)); (err == nil) != !reservedCodes[string(b)] {
			t.Fatalf("unexpected CheckCustomCode(%q): %v", b, err)
		}
	})
}

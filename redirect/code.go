// Package redirect is the public edge of clickgate: it routes GET|HEAD
// /{code}, resolves the code from an in-memory link table, records the visit
// and redirects the person with a signed click id.
package redirect

import (
	"crypto/rand"
	"fmt"
)

// Code limits. Custom codes use letters, digits, '_' and '-'; generated
// codes use CodeAlphabet only.
const (
	MinCodeLen = 4
	MaxCodeLen = 32
	// GeneratedCodeLen gives 31^8 ≈ 8.5e11 codes.
	GeneratedCodeLen = 8
	// CodeAlphabet has no look-alikes (0/O, 1/I/L).
	CodeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
)

// reservedCodes are public paths that are not links. (/robots.txt cannot be
// a code: it has a dot.)
var reservedCodes = map[string]bool{"healthz": true}

var codeChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	t['_'], t['-'] = true, true
	return t
}()

// ValidCode reports whether b is a well-formed code. It sees the raw path,
// so a percent-encoded code is not valid.
func ValidCode(b []byte) bool {
	if len(b) < MinCodeLen || len(b) > MaxCodeLen {
		return false
	}
	for _, c := range b {
		if !codeChars[c] {
			return false
		}
	}
	return true
}

// CheckCustomCode returns why code cannot be used for a new link, or nil.
func CheckCustomCode(code string) error {
	if !ValidCode([]byte(code)) {
		return fmt.Errorf("code %q must be %d to %d letters, digits, '_' or '-'", code, MinCodeLen, MaxCodeLen)
	}
	if reservedCodes[code] {
		return fmt.Errorf("code %q is reserved", code)
	}
	return nil
}

// NewCode returns a random code of GeneratedCodeLen characters from
// CodeAlphabet, drawn from crypto/rand without modulo bias.
func NewCode() string {
	const n = byte(len(CodeAlphabet))
	const limit = 256 - 256%int(n) // reject bytes ≥ limit
	out := make([]byte, 0, GeneratedCodeLen)
	var buf [32]byte
	for len(out) < GeneratedCodeLen {
		rand.Read(buf[:])
		for _, c := range buf {
			if int(c) < limit && len(out) < GeneratedCodeLen {
				out = append(out, CodeAlphabet[c%n])
			}
		}
	}
	return string(out)
}

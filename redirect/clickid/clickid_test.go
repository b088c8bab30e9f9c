package clickid

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// spring26 is the reference claim: 2026-05-11T12:00:00Z.
var spring26 = Claims{Campaign: "spring26", Creator: "alice", Link: "AB3KX9QZ", Time: 1778500800}

func TestRoundTrip(t *testing.T) {
	s := NewSigner(testKey)
	f := func(c Claims) {
		t.Helper()
		id := s.Append(nil, &c)
		got, err := s.Parse(id)
		if err != nil {
			t.Fatalf("unexpected error for %q; got %v; want nil", id, err)
		}
		if got != c {
			t.Fatalf("unexpected claims for %q; got %+v; want %+v", id, got, c)
		}
		if again := s.Append(nil, &got); !bytes.Equal(again, id) {
			t.Fatalf("unexpected re-encoding for %q; got %q; want %q", id, again, id)
		}
		// Append appends.
		prefixed := s.Append([]byte("cid="), &c)
		if want := "cid=" + string(id); string(prefixed) != want {
			t.Fatalf("unexpected append for %+v; got %q; want %q", c, prefixed, want)
		}
	}
	f(spring26)
	f(Claims{})
	f(Claims{Campaign: "c", Time: 1})
	f(Claims{Creator: "only-creator", Time: 127})
	f(Claims{Link: "L", Time: 128})
	f(Claims{Campaign: "spring26", Creator: "bob", Link: "ZZZZZZZZ", Time: math.MaxInt64})
	f(Claims{Campaign: "ünïcödé", Creator: "\x00\xff", Link: "a/b?c=d#e", Time: 1})
	long := strings.Repeat("x", MaxFieldLen)
	f(Claims{Campaign: long, Creator: long, Link: long, Time: math.MaxInt64})
}

func TestLength(t *testing.T) {
	s := NewSigner(testKey)
	id := s.Append(nil, &spring26)
	if len(id) != 62 {
		t.Fatalf("unexpected length for %q; got %d; want %d", id, len(id), 62)
	}
	long := strings.Repeat("x", MaxFieldLen)
	id = s.Append(nil, &Claims{Campaign: long, Creator: long, Link: long, Time: math.MaxInt64})
	if len(id) != 295 || len(id) > MaxLen {
		t.Fatalf("unexpected length of the longest id; got %d; want %d", len(id), 295)
	}
}

func TestTamper(t *testing.T) {
	s := NewSigner(testKey)
	id := s.Append(nil, &spring26)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range id {
		for j := 0; j < len(alphabet); j++ {
			if alphabet[j] == id[i] {
				continue
			}
			bad := bytes.Clone(id)
			bad[i] = alphabet[j]
			if c, err := s.Parse(bad); err == nil {
				t.Fatalf("unexpected success for %q (byte %d changed); got %+v; want error", bad, i, c)
			} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
				t.Fatalf("unexpected error for %q; got %v; want ErrMalformed or ErrForged", bad, err)
			}
		}
	}
}

func TestWrongKey(t *testing.T) {
	id := NewSigner(testKey).Append(nil, &spring26)
	other := NewSigner([]byte("another key, same length........."))
	if _, err := other.Parse(id); !errors.Is(err, ErrForged) {
		t.Fatalf("unexpected error for %q; got %v; want %v", id, err, ErrForged)
	}
}

func TestNewSignerCopiesKey(t *testing.T) {
	key := bytes.Clone(testKey)
	s := NewSigner(key)
	id := s.Append(nil, &spring26)
	key[0] ^= 1
	if _, err := s.Parse(id); err != nil {
		t.Fatalf("unexpected error for %q after changing the caller's key; got %v; want nil", id, err)
	}
}

// sign builds an id from an arbitrary payload with a valid mac, to reach the
// checks that a forger cannot.
func sign(payload []byte) []byte {
	m := hmac.New(sha256.New, testKey)
	m.Write(payload)
	raw := m.Sum(bytes.Clone(payload))[:len(payload)+macLen]
	return base64.RawURLEncoding.AppendEncode(nil, raw)
}

func TestMalformed(t *testing.T) {
	s := NewSigner(testKey)
	valid := s.Append(nil, &spring26)
	f := func(in []byte) {
		t.Helper()
		c, err := s.Parse(in)
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error for %q; got %v (claims %+v); want %v", in, err, c, ErrMalformed)
		}
	}
	f(nil)
	f([]byte{})
	f([]byte("A"))
	f([]byte("AQ"))
	for i := 1; i < len(valid); i++ {
		f(valid[:i])
	}
	f(bytes.Repeat([]byte("A"), MaxLen+1))
	f(append(bytes.Clone(valid), bytes.Repeat([]byte("A"), MaxLen)...))
	f([]byte("not base64!"))
	f(append(bytes.Clone(valid), '='))
	f(append([]byte("+"), valid[1:]...))
	f(append([]byte("/"), valid[1:]...))
	f(append(bytes.Clone(valid[:10]), append([]byte("\n"), valid[10:]...)...))
	f(append(bytes.Clone(valid[:10]), append([]byte("\r"), valid[10:]...)...))
	f(append(bytes.Clone(valid), ' '))
	f(append(bytes.Clone(valid), 0))
	f(append([]byte{0xff}, valid[1:]...))

	// Trailing garbage, with and without a valid mac over it.
	f(append(bytes.Clone(valid), "AAAA"...))
	payload := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	base := payload([]byte{version}, binary.AppendUvarint(nil, 1778500800),
		[]byte("\x08spring26\x05alice\x08AB3KX9QZ"))
	if _, err := s.Parse(sign(base)); err != nil {
		t.Fatalf("unexpected error for hand-built id %q; got %v; want nil", sign(base), err)
	}
	f(sign(payload(base, []byte("x"))))
	f(sign(payload(base, make([]byte, 40))))

	// Checks behind the mac.
	f(sign(payload([]byte{2}, base[1:])))
	f(sign(payload([]byte{0}, base[1:])))
	f(sign(payload([]byte{version, 0x80, 0x00}, []byte{0, 0, 0})))    // padded time
	f(sign(payload([]byte{version, 0x01, 0x80, 0x00}, []byte{0, 0}))) // padded length
	f(sign(payload([]byte{version}, binary.AppendUvarint(nil, math.MaxUint64), []byte{0, 0, 0})))
	f(sign(payload([]byte{version}, binary.AppendUvarint(nil, math.MaxInt64+1), []byte{0, 0, 0})))
	f(sign(payload([]byte{version, 1, 65}, bytes.Repeat([]byte("x"), 65), []byte{0, 0})))
	f(sign(payload([]byte{version, 1, 0, 0, 5, 'a'})))                                                  // link runs past the end
	f(sign(payload([]byte{version, 1, 0, 0})))                                                          // link length missing
	f(sign(payload([]byte{version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}))) // varint overflow
}

func TestPanics(t *testing.T) {
	f := func(name string, fn func()) {
		t.Helper()
		defer func() {
			t.Helper()
			r := recover()
			if s, ok := r.(string); !ok || !strings.HasPrefix(s, "BUG: ") {
				t.Fatalf("unexpected panic for %s; got %v; want a BUG panic", name, r)
			}
		}()
		fn()
	}
	s := NewSigner(testKey)
	long := strings.Repeat("x", MaxFieldLen+1)
	f("empty key", func() { NewSigner(nil) })
	f("long campaign", func() { s.Append(nil, &Claims{Campaign: long}) })
	f("long creator", func() { s.Append(nil, &Claims{Creator: long}) })
	f("long link", func() { s.Append(nil, &Claims{Link: long}) })
	f("negative time", func() { s.Append(nil, &Claims{Time: -1}) })
}

func FuzzParse(f *testing.F) {
	s := NewSigner(testKey)
	f.Add(s.Append(nil, &spring26))
	f.Add(s.Append(nil, &Claims{}))
	f.Add(s.Append(nil, &Claims{Campaign: "c", Creator: "d", Link: "e", Time: math.MaxInt64}))
	f.Add([]byte(""))
	f.Add([]byte("AQ"))
	f.Add([]byte("not base64!"))
	f.Add(bytes.Repeat([]byte("_"), MaxLen))
	f.Fuzz(func(t *testing.T, id []byte) {
		c, err := s.Parse(id)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
				t.Fatalf("unexpected error for %q; got %v; want ErrMalformed or ErrForged", id, err)
			}
			return
		}
		if again := s.Append(nil, &c); !bytes.Equal(again, id) {
			t.Fatalf("unexpected re-encoding for %q; got %q; want %q", id, again, id)
		}
	})
}

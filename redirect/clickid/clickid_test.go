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
var spring26 = Claims{Campaign: "spring26", Creator: "alice", Link: "AB3KX9QZ", Time: 1778500800,
	Nonce: [NonceLen]byte{1, 2, 3, 4, 5, 6, 7, 8}, Attributable: true}

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
	f(Claims{Attributable: true})
	f(Claims{Campaign: "c", Time: 1})
	f(Claims{Creator: "only-creator", Time: 127})
	f(Claims{Link: "L", Time: 128, Nonce: [NonceLen]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
	f(Claims{Campaign: "spring26", Creator: "bob", Link: "ZZZZZZZZ", Time: math.MaxInt64, Attributable: true})
	f(Claims{Campaign: "ünïcödé", Creator: "\x00\xff", Link: "a/b?c=d#e", Time: 1})
	long := strings.Repeat("x", MaxFieldLen)
	f(Claims{Campaign: long, Creator: long, Link: long, Time: math.MaxInt64, Nonce: spring26.Nonce, Attributable: true})
}

// TestAppendNew: every click gets its own nonce, so two clicks on one link
// within one second have two ids and two keys; the flag is kept.
func TestAppendNew(t *testing.T) {
	s := NewSigner(testKey)
	seen := map[string]bool{}
	keys := map[string]bool{}
	for i := range 1000 {
		c := Claims{Campaign: "spring26", Creator: "alice", Link: "AB3KX9QZ", Time: 1778500800, Attributable: i%2 == 0}
		id := string(s.AppendNew(nil, &c))
		if seen[id] {
			t.Fatalf("unexpected repeated id %q after %d clicks in the same second", id, i)
		}
		seen[id] = true
		got, err := s.Parse([]byte(id))
		if err != nil {
			t.Fatalf("unexpected error for %q; got %v; want nil", id, err)
		}
		if got != c {
			t.Fatalf("unexpected claims for %q; got %+v; want %+v (the nonce AppendNew set)", id, got, c)
		}
		if keys[got.Key()] {
			t.Fatalf("unexpected repeated key %q", got.Key())
		}
		keys[got.Key()] = true
	}
	// Signers on one key (two nodes, or one after a restart) draw
	// independent nonces.
	a, b := spring26, spring26
	NewSigner(testKey).AppendNew(nil, &a)
	NewSigner(testKey).AppendNew(nil, &b)
	if a.Nonce == b.Nonce {
		t.Fatalf("unexpected equal nonces %x from two signers", a.Nonce)
	}
}

func TestKey(t *testing.T) {
	f := func(c Claims, want string) {
		t.Helper()
		if got := c.Key(); got != want {
			t.Fatalf("unexpected key for %+v; got %q; want %q", c, got, want)
		}
	}
	f(spring26, "000000006a01c4c00102030405060708")
	f(Claims{}, "00000000000000000000000000000000")
	// Only the click's time and nonce: the store scopes it by campaign,
	// and the flag does not make another click.
	other := spring26
	other.Creator, other.Link, other.Attributable = "bob", "ZZZZZZZZ", false
	f(other, "000000006a01c4c00102030405060708")
	other.Nonce[7] = 9
	f(other, "000000006a01c4c00102030405060709")
	other.Time++
	f(other, "000000006a01c4c10102030405060709")
}

// TestVersion1 checks that the ids of the first format, which had neither
// a nonce nor flags, are refused as an unknown version, signed or not.
func TestVersion1(t *testing.T) {
	s := NewSigner(testKey)
	for _, id := range []string{
		"AcCJh9AGCHNwcmluZzI2BWFsaWNlCEFCM0tYOVFaUDGR01YJJaH_RnKUGoY7aA", // spring26 with testKey
		"AQAAAAA_DbDzrAETnLMnABjYRbEy",                                   // empty claims with testKey
		string(sign(append([]byte{1}, binary.AppendUvarint(nil, 1778500800)...), []byte("\x08spring26\x05alice\x08AB3KX9QZ"))),
	} {
		_, err := s.Parse([]byte(id))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "unknown version 1") {
			t.Fatalf("unexpected error for version 1 id %q; got %v; want unknown version 1", id, err)
		}
	}
}

func TestLength(t *testing.T) {
	s := NewSigner(testKey)
	id := s.Append(nil, &spring26)
	if len(id) != 74 {
		t.Fatalf("unexpected length for %q; got %d; want %d", id, len(id), 74)
	}
	long := strings.Repeat("x", MaxFieldLen)
	id = s.Append(nil, &Claims{Campaign: long, Creator: long, Link: long, Time: math.MaxInt64, Attributable: true})
	if len(id) != 307 || len(id) > MaxLen {
		t.Fatalf("unexpected length of the longest id; got %d; want %d", len(id), 307)
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
func sign(parts ...[]byte) []byte {
	payload := bytes.Join(parts, nil)
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
	f([]byte("Ag"))
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
	nonce := spring26.Nonce[:]
	strs := []byte("\x08spring26\x05alice\x08AB3KX9QZ")
	at := binary.AppendUvarint(nil, 1778500800)
	base := bytes.Join([][]byte{{version, flagAttributable}, at, nonce, strs}, nil)
	if id := sign(base); !bytes.Equal(id, valid) {
		t.Fatalf("unexpected hand-built id; got %q; want %q", id, valid)
	}
	if _, err := s.Parse(sign(base[:1], []byte{0}, base[2:])); err != nil {
		t.Fatalf("unexpected error for an id without flags; got %v; want nil", err)
	}
	f(sign(base, []byte("x")))
	f(sign(base, make([]byte, 40)))

	// Checks behind the mac.
	f(sign([]byte{1}, base[1:]))
	f(sign([]byte{3}, base[1:]))
	f(sign([]byte{0}, base[1:]))
	for _, flags := range []byte{2, 4, 0x80, 0xff, flagAttributable | 2} { // unknown flags
		f(sign([]byte{version, flags}, base[2:]))
	}
	zero := make([]byte, NonceLen)
	f(sign([]byte{version, 0, 0x80, 0x00}, zero, []byte{0, 0, 0}))    // padded time
	f(sign([]byte{version, 0, 0x01}, zero, []byte{0x80, 0x00, 0, 0})) // padded length
	f(sign([]byte{version, 0}, binary.AppendUvarint(nil, math.MaxUint64), zero, []byte{0, 0, 0}))
	f(sign([]byte{version, 0}, binary.AppendUvarint(nil, math.MaxInt64+1), zero, []byte{0, 0, 0}))
	f(sign([]byte{version, 0, 1}, zero, []byte{65}, bytes.Repeat([]byte("x"), 65), []byte{0, 0}))
	f(sign([]byte{version, 0, 1}, zero, []byte{0, 0, 5, 'a'}))                                    // link runs past the end
	f(sign([]byte{version, 0, 1}, zero, []byte{0, 0}))                                            // link length missing
	f(sign([]byte{version, 0, 1}, zero[:7]))                                                      // nonce cut short
	f(sign([]byte{version, 0, 1}, zero[:3], []byte{0, 0, 0}))                                     // nonce cut short, strings after
	f(sign([]byte{version, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})) // varint overflow
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
	f("long campaign, new", func() { s.AppendNew(nil, &Claims{Campaign: long}) })
	f("negative time, new", func() { s.AppendNew(nil, &Claims{Time: -1}) })
}

func FuzzParse(f *testing.F) {
	s := NewSigner(testKey)
	f.Add(s.Append(nil, &spring26))
	f.Add(s.Append(nil, &Claims{}))
	f.Add(s.Append(nil, &Claims{Campaign: "c", Creator: "d", Link: "e", Time: math.MaxInt64, Attributable: true}))
	f.Add(sign([]byte{version, 0x02, 0}, make([]byte, NonceLen), []byte{0, 0, 0})) // unknown flag, valid mac
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
		if k := c.Key(); len(k) != 2*(8+NonceLen) {
			t.Fatalf("unexpected key %q for %q", k, id)
		}
	})
}

// Package clickid signs and verifies click ids.
//
// A click id is appended to every redirect so that the app can later
// attribute a signup to a creator. The app backend sends the id back and
// clickgate verifies it offline with the same key: no store lookup, no state.
// Each click gets its own id (a random nonce), so the store can record that
// an id was used ([Claims.Key]); and each id says whether its click may earn
// a signup at all ([Claims.Attributable]), under the signature, so that a
// bot's or a prefetch's id cannot be made to.
//
// # Format
//
// A click id is the base64url encoding without padding (RFC 4648 §5,
// base64.RawURLEncoding) of
//
//	version   1 byte, always 2
//	flags     1 byte: bit 0 Attributable, the other bits zero
//	time      uvarint, Unix seconds (minimal encoding)
//	nonce     8 random bytes
//	campaign  uvarint length (minimal), then that many bytes
//	creator   uvarint length (minimal), then that many bytes
//	link      uvarint length (minimal), then that many bytes
//	mac       the first 16 bytes of HMAC-SHA256(key, every byte above)
//
// Each string is at most [MaxFieldLen] bytes, so an id is at most 307
// characters. An id for campaign "spring26", creator "alice", link
// "AB3KX9QZ" at a 2026 time is 55 bytes, 74 characters.
//
// Version 1 (no flags, no nonce: every click on a link within one second had
// the same id) is no longer accepted: Parse reports it as an unknown version.
//
// The encoding is canonical: every valid id is exactly what [Signer.Append]
// produces for the claims [Signer.Parse] returns. Parse rejects unknown
// versions and flag bits, non-minimal varints, non-zero trailing bits in the
// last base64 character and the CR/LF characters that encoding/base64 would
// otherwise skip.
//
// Parse does not judge the time: expiry is a campaign rule left to the caller.
package clickid

import (
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"sync"
)

const (
	// MaxFieldLen is the maximum length in bytes of Claims.Campaign,
	// Claims.Creator and Claims.Link. Validate them against it when a
	// campaign, creator or link is created: Append panics on longer ones.
	MaxFieldLen = 64

	// MaxLen is the maximum length of an id accepted by Parse. It is above
	// the longest id Append can produce (307 characters) and bounds the work
	// done on untrusted input before it is decoded.
	MaxLen = 512

	// NonceLen is the length of Claims.Nonce.
	NonceLen = 8
)

const (
	version = 2
	macLen  = 16

	// flagAttributable is Claims.Attributable; knownFlags are every bit
	// Parse accepts.
	flagAttributable = 1 << 0
	knownFlags       = flagAttributable

	// minRawLen is a version byte, a flags byte, a one-byte time, the
	// nonce, three empty strings and the mac.
	minRawLen = 1 + 1 + 1 + NonceLen + 3 + macLen
	// maxRawLen is what MaxLen base64 characters decode to at most; the
	// longest id Append builds is 230 bytes.
	maxRawLen = MaxLen * 3 / 4
)

var (
	// ErrMalformed is returned by Parse for an id that is not a click id.
	ErrMalformed = errors.New("clickid: malformed")
	// ErrForged is returned by Parse for a well-formed id whose signature
	// does not match: tampered with or signed with another key.
	ErrForged = errors.New("clickid: bad signature")
)

// Claims is what a click id carries.
type Claims struct {
	Campaign, Creator, Link string
	Time                    int64 // Unix seconds
	// Nonce is random per click (see Signer.AppendNew), so that two clicks
	// on one link within one second have two ids.
	Nonce [NonceLen]byte
	// Attributable is set on the id of a person's navigation that was
	// eligible when it happened (in the campaign, creator active, not a
	// bot, prefetch, preview or click farm): only such a click can earn
	// a signup.
	Attributable bool
}

// Key returns a key of the click for recording that its id was used: the
// time and the nonce, as 32 hex digits. It is unique among the clicks of a
// campaign (two clicks share it only if they share the second and 64 random
// bits) and the same for every parse of the same id; scope it by
// c.Campaign when storing it.
func (c *Claims) Key() string {
	var b [8 + NonceLen]byte
	binary.BigEndian.PutUint64(b[:], uint64(c.Time))
	copy(b[8:], c.Nonce[:])
	return hex.EncodeToString(b[:])
}

// strict rejects non-zero trailing bits, so a base64 string has exactly one
// decoding and one encoding.
var strict = base64.RawURLEncoding.Strict()

// Signer creates and verifies click ids with one key. It is safe for
// concurrent use.
type Signer struct {
	pool sync.Pool // of *state
}

// state is the per-call scratch. HMAC state and buffer are pooled together:
// the buffer is passed to hash.Hash methods, an interface call, so a stack
// buffer would escape and allocate on every call. Each state draws nonces
// from its own ChaCha8, seeded from crypto/rand when the state is made: no
// lock and no system call per click (BenchmarkAppendNew).
type state struct {
	mac hash.Hash
	rng rand.ChaCha8
	buf [maxRawLen]byte
	sum [sha256.Size]byte
}

// NewSigner returns a Signer for key. Use at least 32 random bytes. key is
// copied.
func NewSigner(key []byte) *Signer {
	if len(key) == 0 {
		panic("BUG: clickid: empty signing key")
	}
	k := append([]byte(nil), key...)
	s := &Signer{}
	s.pool.New = func() any {
		st := &state{mac: hmac.New(sha256.New, k)}
		var seed [32]byte
		crand.Read(seed[:]) // never fails; crashes the program instead
		st.rng.Seed(seed)
		return st
	}
	return s
}

func (s *Signer) acquire() *state {
	return s.pool.Get().(*state)
}

func (s *Signer) release(st *state) {
	s.pool.Put(st)
}

// AppendNew sets c.Nonce to a new random nonce and appends the click id for
// c to dst, as Append. It is what a redirect calls once per click. It does
// not allocate when dst has room for the id.
func (s *Signer) AppendNew(dst []byte, c *Claims) []byte {
	check(c)
	st := s.acquire()
	binary.LittleEndian.PutUint64(c.Nonce[:], st.rng.Uint64())
	dst = s.append(st, dst, c)
	s.release(st)
	return dst
}

// NewNonce returns a new random nonce, for a click whose nonce is needed
// before its id is appended (Append).
func (s *Signer) NewNonce() (n [NonceLen]byte) {
	st := s.acquire()
	binary.LittleEndian.PutUint64(n[:], st.rng.Uint64())
	s.release(st)
	return n
}

// Append appends the click id for c, with its nonce as it is, to dst and
// returns the extended slice. It does not allocate when dst has room for
// the id.
//
// Append panics if a string of c is longer than MaxFieldLen or c.Time is
// negative: claims are validated when links are created, not per click.
func (s *Signer) Append(dst []byte, c *Claims) []byte {
	check(c)
	st := s.acquire()
	dst = s.append(st, dst, c)
	s.release(st)
	return dst
}

func check(c *Claims) {
	if c.Time < 0 {
		panic("BUG: clickid: negative time")
	}
	if len(c.Campaign) > MaxFieldLen {
		panic("BUG: clickid: campaign longer than 64 bytes")
	}
	if len(c.Creator) > MaxFieldLen {
		panic("BUG: clickid: creator longer than 64 bytes")
	}
	if len(c.Link) > MaxFieldLen {
		panic("BUG: clickid: link longer than 64 bytes")
	}
}

func (s *Signer) append(st *state, dst []byte, c *Claims) []byte {
	var flags byte
	if c.Attributable {
		flags |= flagAttributable
	}
	b := st.buf[:0]
	b = append(b, version, flags)
	b = binary.AppendUvarint(b, uint64(c.Time))
	b = append(b, c.Nonce[:]...)
	b = appendString(b, c.Campaign)
	b = appendString(b, c.Creator)
	b = appendString(b, c.Link)
	m := sum(st, b)
	b = append(b, m[:macLen]...)
	return base64.RawURLEncoding.AppendEncode(dst, b)
}

// sum returns HMAC(b) in st.sum.
func sum(st *state, b []byte) []byte {
	st.mac.Reset()
	st.mac.Write(b)
	return st.mac.Sum(st.sum[:0])
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Parse verifies id and returns its claims. Errors wrap ErrMalformed or
// ErrForged. Parse checks the signature in constant time; it does not check
// how old the id is.
func (s *Signer) Parse(id []byte) (Claims, error) {
	if len(id) == 0 {
		return Claims{}, fmt.Errorf("%w: empty id", ErrMalformed)
	}
	if len(id) > MaxLen {
		return Claims{}, fmt.Errorf("%w: id is %d bytes; max %d", ErrMalformed, len(id), MaxLen)
	}
	// encoding/base64 skips CR and LF; refuse them and anything else
	// outside the alphabet so that an id has exactly one spelling.
	for i, c := range id {
		if !isBase64URL(c) {
			return Claims{}, fmt.Errorf("%w: invalid character at offset %d", ErrMalformed, i)
		}
	}

	st := s.acquire()
	defer s.release(st)

	n, err := strict.Decode(st.buf[:], id)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	raw := st.buf[:n]
	if len(raw) < 1 {
		return Claims{}, fmt.Errorf("%w: too short", ErrMalformed)
	}
	// The version first, so that an id of another version says so.
	if raw[0] != version {
		return Claims{}, fmt.Errorf("%w: unknown version %d", ErrMalformed, raw[0])
	}
	if len(raw) < minRawLen {
		return Claims{}, fmt.Errorf("%w: too short", ErrMalformed)
	}
	flags := raw[1]
	if flags&^knownFlags != 0 {
		return Claims{}, fmt.Errorf("%w: unknown flags %#02x", ErrMalformed, flags)
	}

	p := raw[2:]
	t, p, ok := readUvarint(p)
	if !ok || t > math.MaxInt64 {
		return Claims{}, fmt.Errorf("%w: bad time", ErrMalformed)
	}
	if len(p) < NonceLen {
		return Claims{}, fmt.Errorf("%w: bad nonce", ErrMalformed)
	}
	var nonce [NonceLen]byte
	copy(nonce[:], p)
	p = p[NonceLen:]
	var lens [3]int
	var offs [3]int
	for i, name := range [3]string{"campaign", "creator", "link"} {
		var l uint64
		l, p, ok = readUvarint(p)
		if !ok || l > MaxFieldLen || l > uint64(len(p)) {
			return Claims{}, fmt.Errorf("%w: bad %s", ErrMalformed, name)
		}
		offs[i] = len(raw) - len(p)
		lens[i] = int(l)
		p = p[l:]
	}
	if len(p) != macLen {
		return Claims{}, fmt.Errorf("%w: %d bytes after the fields; want %d", ErrMalformed, len(p), macLen)
	}
	body := len(raw) - macLen
	if !hmac.Equal(sum(st, raw[:body])[:macLen], raw[body:]) {
		return Claims{}, ErrForged
	}

	// One allocation for the three strings.
	start := offs[0]
	all := string(raw[start:body])
	field := func(i int) string {
		o := offs[i] - start
		return all[o : o+lens[i]]
	}
	return Claims{
		Campaign:     field(0),
		Creator:      field(1),
		Link:         field(2),
		Time:         int64(t),
		Nonce:        nonce,
		Attributable: flags&flagAttributable != 0,
	}, nil
}

// readUvarint reads a minimally encoded uvarint from the front of b.
func readUvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	// binary.Uvarint accepts padded encodings such as 0x80 0x00; a last
	// byte of zero after a continuation byte is exactly that.
	if n > 1 && b[n-1] == 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

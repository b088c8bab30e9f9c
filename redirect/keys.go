package redirect

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/netip"
	"sync"

	"github.com/clickgate/clickgate/counter"
)

// DeriveKeys derives independent keys for visitor keys and click ids from
// the one configured secret, so that neither use can forge the other.
func DeriveKeys(secret []byte) (visitor, click []byte) {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	return derive("clickgate visitor key v1"), derive("clickgate click id v1")
}

// KeyingFingerprint identifies the visitor-key secret derived from secret
// without revealing it, so that stores can refuse a node with another one.
func KeyingFingerprint(secret []byte) string {
	vk, _ := DeriveKeys(secret)
	m := hmac.New(sha256.New, vk)
	m.Write([]byte("clickgate keying fingerprint v1"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// visitorHasher computes keyed visitor keys. Pooled HMAC states keep it
// allocation-free.
type visitorHasher struct {
	pool sync.Pool
}

func newVisitorHasher(key []byte) *visitorHasher {
	h := &visitorHasher{}
	h.pool.New = func() any { return &visitorState{mac: hmac.New(sha256.New, key)} }
	return h
}

type visitorState struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// NetworkKey returns the visitor key of a client at addr with User-Agent
// ua, for one creator in one campaign. IPv6 clients are keyed by their /64,
// since one device rotates through its network's addresses.
func (h *visitorHasher) NetworkKey(campaign, creator string, addr netip.Addr, ua []byte) counter.VisitorKey {
	s, b := h.begin(campaign, creator)
	if addr.Is4() || addr.Is4In6() {
		a := addr.Unmap().As4()
		b = append(b, 4)
		b = append(b, a[:]...)
	} else {
		a := addr.As16()
		b = append(b, 6)
		b = append(b, a[:8]...)
	}
	b = append(b, 0)
	b = append(b, ua...)
	return h.sum(s, b)
}

// NetworkBlock returns the keyed keys of the client network of addr (its
// IPv4 address, or its IPv6 /64), Visit.Network, and of its block of
// networks (its IPv4 /24, or IPv6 /48; see BlockKey), Visit.Block: what
// the judge counts velocity and budgets by, without a raw address in the
// log. One keyed hash gives both: of the block (its input, with no
// campaign, is none of a visitor key's), whose first 8 bytes are the
// block's key and next 8 a secret of the block, mixed with the network's
// address by a bijection, so the networks of a block have distinct keys
// and nobody without the secret can tell which. Neither key is 0, which
// the judge takes for one it does not know.
func (h *visitorHasher) NetworkBlock(addr netip.Addr) (network, block uint64) {
	s, b := h.begin("", "")
	b = binary.BigEndian.AppendUint64(append(b, 'b'), BlockKey(addr))
	k := h.sum(s, b)
	block = max(binary.LittleEndian.Uint64(k[:8]), 1)
	network = max(mix64(binary.LittleEndian.Uint64(k[8:16])^NetworkKey(addr)), 1)
	return network, block
}

// CookieKey returns the visitor key of a browser with visitor cookie id.
func (h *visitorHasher) CookieKey(campaign, creator string, id []byte) counter.VisitorKey {
	s, b := h.begin(campaign, creator)
	b = append(b, 'c')
	b = append(b, id...)
	return h.sum(s, b)
}

// begin takes a pooled state and starts its input with campaign and creator.
func (h *visitorHasher) begin(campaign, creator string) (*visitorState, []byte) {
	s := h.pool.Get().(*visitorState)
	b := append(s.buf[:0], campaign...)
	b = append(b, 0)
	b = append(b, creator...)
	return s, append(b, 0)
}

// sum returns the keyed hash of input and releases s.
func (h *visitorHasher) sum(s *visitorState, input []byte) counter.VisitorKey {
	s.buf = input
	s.mac.Reset()
	s.mac.Write(input)
	sum := s.mac.Sum(s.sum[:0])
	var k counter.VisitorKey
	copy(k[:], sum)
	h.pool.Put(s)
	return k
}

// Visitor cookies are 16 random bytes and an 8-byte tag, in base64url. The
// tag makes a made-up cookie worthless: without it, a client could send a
// new cookie with every click and be a new visitor each time.
const (
	visitorCookieLen = 32
	cookieIDLen      = 16
	cookieTagLen     = 8
)

// cookieTag returns the tag of a cookie id. Its input starts with a NUL
// byte, which no visitor-key input does (campaign ids are never empty).
func (h *visitorHasher) cookieTag(id []byte) (tag [cookieTagLen]byte) {
	s := h.pool.Get().(*visitorState)
	b := append(s.buf[:0], "\x00cookie\x00"...)
	b = append(b, id...)
	s.buf = b
	s.mac.Reset()
	s.mac.Write(b)
	copy(tag[:], s.mac.Sum(s.sum[:0]))
	h.pool.Put(s)
	return tag
}

// NewCookie writes a new signed cookie value to dst (visitorCookieLen
// bytes) and returns its id.
func (h *visitorHasher) NewCookie(dst []byte) (id [cookieIDLen]byte) {
	var raw [cookieIDLen + cookieTagLen]byte
	rand.Read(raw[:cookieIDLen])
	tag := h.cookieTag(raw[:cookieIDLen])
	copy(raw[cookieIDLen:], tag[:])
	base64.RawURLEncoding.Encode(dst, raw[:])
	copy(id[:], raw[:cookieIDLen])
	return id
}

// ParseCookie returns the id of a cookie value this service signed. It does
// not allocate.
func (h *visitorHasher) ParseCookie(v []byte) (id [cookieIDLen]byte, ok bool) {
	var raw [cookieIDLen + cookieTagLen]byte
	if len(v) != visitorCookieLen {
		return id, false
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(raw[:], v); err != nil || n != len(raw) {
		return id, false
	}
	tag := h.cookieTag(raw[:cookieIDLen])
	if subtle.ConstantTimeCompare(tag[:], raw[cookieIDLen:]) != 1 {
		return id, false
	}
	copy(id[:], raw[:cookieIDLen])
	return id, true
}

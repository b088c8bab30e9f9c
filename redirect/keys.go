package redirect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net"
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

// Key returns the visitor key of a client at ip with User-Agent ua, for one
// creator in one campaign. IPv6 clients are keyed by their /64, since one
// device rotates through its network's addresses.
func (h *visitorHasher) Key(campaign, creator string, ip net.IP, ua []byte) counter.VisitorKey {
	s := h.pool.Get().(*visitorState)
	b := s.buf[:0]
	b = append(b, campaign...)
	b = append(b, 0)
	b = append(b, creator...)
	b = append(b, 0)
	if ip4 := ip.To4(); ip4 != nil {
		b = append(b, 4)
		b = append(b, ip4...)
	} else if len(ip) == net.IPv6len {
		b = append(b, 6)
		b = append(b, ip[:8]...)
	}
	b = append(b, 0)
	b = append(b, ua...)
	s.mac.Reset()
	s.mac.Write(b)
	sum := s.mac.Sum(s.sum[:0])
	var k counter.VisitorKey
	copy(k[:], sum)
	s.buf = b
	h.pool.Put(s)
	return k
}

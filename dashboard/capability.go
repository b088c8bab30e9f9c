package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// A creator's page is reached by a capability URL, BASE/c/TOKEN, with
//
//	TOKEN = base64url(campaign "/" creator) "." base64url(32 random bytes)
//
// Whoever has the URL sees the page; nothing else opens it. The store
// keeps only the SHA-256 of the random part, under the creator's name, so
// a copy of the store opens no page, and minting a new URL replaces the
// hash: the old URL stops working on every node (within capCacheTTL on
// the others).

// Claims is the store's durable compare-and-set of named values
// (counter.Store's Claim and Reclaim).
type Claims interface {
	Claim(ctx context.Context, name, value string) (string, error)
	Reclaim(ctx context.Context, name, old, value string) (string, error)
}

const (
	capKeyLen = 32
	// capNone is recorded for a creator who has no page URL.
	capNone = "none"
	// maxIDLen bounds a campaign or creator id in a token (the admin API
	// takes 64 bytes).
	maxIDLen = 64
	// capCacheTTL is how long a node trusts a hash it read: a rotation on
	// another node revokes the old URL here within it.
	capCacheTTL = 5 * time.Second
)

// ErrBadCapability is the error of a page URL that opens nothing.
var ErrBadCapability = errors.New("dashboard: no page at this address")

// Capabilities mints and checks the creators' page URLs.
type Capabilities struct {
	claims Claims
	base   string
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedHash
}

type cachedHash struct {
	hash string
	at   time.Time
}

// NewCapabilities returns Capabilities kept in claims, minting URLs under
// base (the dashboard's URL as creators reach it, e.g.
// https://creators.example.com).
func NewCapabilities(claims Claims, base string) *Capabilities {
	return &Capabilities{claims: claims, base: strings.TrimSuffix(base, "/"), now: time.Now, cache: map[string]cachedHash{}}
}

func claimName(campaign, creator string) string {
	return "dashboard-page/" + campaign + "/" + creator
}

func hashKey(key []byte) string {
	sum := sha256.Sum256(key)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Rotate mints a new page URL for the creator and revokes the one before.
// The caller checks that the creator exists.
func (c *Capabilities) Rotate(ctx context.Context, campaign, creator string) (string, error) {
	key := make([]byte, capKeyLen)
	rand.Read(key)
	h := hashKey(key)
	name := claimName(campaign, creator)
	cur, err := c.claims.Claim(ctx, name, h)
	for err == nil && cur != h {
		cur, err = c.claims.Reclaim(ctx, name, cur, h)
	}
	if err != nil {
		return "", fmt.Errorf("cannot record the page of creator %q: %w", creator, err)
	}
	c.mu.Lock()
	c.cache[name] = cachedHash{h, c.now()}
	c.mu.Unlock()
	token := b64.EncodeToString([]byte(campaign+"/"+creator)) + "." + b64.EncodeToString(key)
	return c.base + "/c/" + token, nil
}

// parseToken splits a page token into its campaign, creator and key. It
// checks the shape only; Check checks the key.
func parseToken(token string) (campaign, creator string, key []byte, err error) {
	ids, k, ok := strings.Cut(token, ".")
	if !ok || len(ids) > b64.EncodedLen(2*maxIDLen+1) || len(k) != b64.EncodedLen(capKeyLen) {
		return "", "", nil, ErrBadCapability
	}
	// Decoding skips CR and LF: only the canonical encoding is taken.
	raw, err := b64.DecodeString(ids)
	if err != nil || b64.EncodeToString(raw) != ids {
		return "", "", nil, ErrBadCapability
	}
	campaign, creator, ok = strings.Cut(string(raw), "/")
	if !ok || !validID(campaign) || !validID(creator) {
		return "", "", nil, ErrBadCapability
	}
	key, err = b64.DecodeString(k)
	if err != nil || len(key) != capKeyLen || b64.EncodeToString(key) != k {
		return "", "", nil, ErrBadCapability
	}
	return campaign, creator, key, nil
}

// validID reports whether id has the shape of a campaign or creator id:
// 1 to 64 letters, digits, '_', '-' or '.' (what the admin API takes).
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Check returns the campaign and creator whose page token opens, or
// ErrBadCapability. exists is asked first, so that a token naming nobody
// records nothing in the store.
func (c *Capabilities) Check(ctx context.Context, token string, exists func(campaign, creator string) error) (campaign, creator string, err error) {
	campaign, creator, key, err := parseToken(token)
	if err != nil {
		return "", "", err
	}
	if err := exists(campaign, creator); err != nil {
		return "", "", err
	}
	name := claimName(campaign, creator)
	c.mu.Lock()
	ch, ok := c.cache[name]
	c.mu.Unlock()
	if !ok || c.now().Sub(ch.at) > capCacheTTL {
		// A creator never given a URL gets capNone, recorded once.
		h, err := c.claims.Claim(ctx, name, capNone)
		if err != nil {
			return "", "", fmt.Errorf("cannot read the page of creator %q: %w", creator, err)
		}
		ch = cachedHash{h, c.now()}
		c.mu.Lock()
		c.cache[name] = ch
		c.mu.Unlock()
	}
	want := hashKey(key)
	if subtle.ConstantTimeCompare([]byte(want), []byte(ch.hash)) != 1 {
		return "", "", ErrBadCapability
	}
	return campaign, creator, nil
}

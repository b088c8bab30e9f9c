package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// Headers of a delivery.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
	// t + "." + body)>", the scheme of POST /v1/conversions. t is the time
	// of the attempt, so every retry is signed afresh.
	SignatureHeader = "X-Clickgate-Signature"
	// IDHeader repeats the event's id: the idempotency key.
	IDHeader = "X-Clickgate-Event-Id"
	// TypeHeader repeats the event's type.
	TypeHeader = "X-Clickgate-Event-Type"
)

// Tolerance is the age of a signature a receiver should accept, as the
// conversions endpoint does.
const Tolerance = 300 * time.Second

// Sign returns the signature header of body signed with secret at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.AppendInt(nil, t.Unix(), 10)
	return "t=" + string(ts) + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(ts)
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrSignatureHeader = errors.New("webhook: bad signature header: want t=<unix seconds>,v1=<hex>")
	ErrSignatureAge    = errors.New("webhook: signature timestamp is outside the tolerance")
	ErrSignature       = errors.New("webhook: bad signature")
)

// Verify checks header, "t=<unix>,v1=<hex>[,v1=<hex>…]", for body signed
// with secret, at most tolerance away from now: what a receiver does with
// every delivery before it trusts it.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts []byte
	var sigs [][]byte
	for part := range bytes.SplitSeq([]byte(header), []byte(",")) {
		k, v, _ := bytes.Cut(bytes.TrimSpace(part), []byte("="))
		switch string(k) {
		case "t":
			if len(v) == 0 || len(v) > 18 || ts != nil {
				return ErrSignatureHeader
			}
			for _, c := range v {
				if c < '0' || c > '9' {
					return ErrSignatureHeader
				}
			}
			ts = v
		case "v1":
			if s, err := hex.DecodeString(string(v)); err == nil && len(s) == sha256.Size {
				sigs = append(sigs, s)
			}
		}
	}
	if ts == nil || len(sigs) == 0 {
		return ErrSignatureHeader
	}
	t, _ := strconv.ParseInt(string(ts), 10, 64) // at most 18 digits: fits
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureAge
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrSignature
}

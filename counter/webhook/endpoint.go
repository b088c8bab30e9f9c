package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Endpoint is a receiver of events.
type Endpoint struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"` // the types it receives
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	// Secret signs its deliveries. Shown once, when the endpoint is
	// added; never listed.
	Secret string `json:"secret,omitempty"`
}

// Spec is what an operator asks for to add an endpoint.
type Spec struct {
	// URL receives the deliveries as POSTs: absolute http or https, no
	// user info or fragment, at most 2048 bytes. Required.
	URL string `json:"url"`
	// Events are the types it receives. default: every type
	Events []string `json:"events"`
	// Description is for operators: at most 256 printable characters.
	// default: empty
	Description string `json:"description"`
	// Secret signs the deliveries: 32 to 256 printable ASCII characters,
	// for a receiver that has one already. default: generated, "whsec_"
	// and 64 hex digits
	Secret string `json:"secret"`
}

// ErrInvalid is the error of an invalid Spec.
var ErrInvalid = errors.New("webhook: invalid endpoint")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Endpoint validates s and returns the endpoint it describes, with the id
// and, unless given, the secret generated.
func (s Spec) Endpoint(now time.Time) (Endpoint, error) {
	if err := s.Validate(); err != nil {
		return Endpoint{}, err
	}
	events := s.Events
	if len(events) == 0 {
		events = Types
	}
	events = slices.Clone(events)
	slices.Sort(events)
	events = slices.Compact(events)
	var id [8]byte
	rand.Read(id[:])
	secret := s.Secret
	if secret == "" {
		var raw [32]byte
		rand.Read(raw[:])
		secret = "whsec_" + hex.EncodeToString(raw[:])
	}
	return Endpoint{ID: "wh_" + hex.EncodeToString(id[:]), URL: s.URL, Events: events, Description: s.Description,
		CreatedAt: now.UTC(), Secret: secret}, nil
}

// Validate reports what is wrong with s, naming the field.
func (s Spec) Validate() error {
	if err := checkURL(s.URL); err != nil {
		return err
	}
	for _, t := range s.Events {
		if !KnownType(t) {
			return invalid("events: unknown type %q; want some of %s", t, strings.Join(Types, ", "))
		}
	}
	if len(s.Description) > 256 || !printable(s.Description, true) {
		return invalid("description must be at most 256 printable characters")
	}
	if s.Secret != "" && (len(s.Secret) < 32 || len(s.Secret) > 256 || !printable(s.Secret, false) || strings.ContainsRune(s.Secret, ' ')) {
		return invalid("secret must be 32 to 256 printable ASCII characters without spaces (or left out, to have one generated)")
	}
	return nil
}

func checkURL(raw string) error {
	if raw == "" {
		return invalid("url is required")
	}
	if len(raw) > 2048 || !printable(raw, false) || strings.ContainsRune(raw, ' ') {
		return invalid("url %q must be at most 2048 printable ASCII characters without spaces", raw)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return invalid("url %q does not parse: %s", raw, err)
	case u.Scheme != "https" && u.Scheme != "http":
		return invalid("url %q must be http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return invalid("url %q has no host", raw)
	case u.User != nil:
		return invalid("url %q must not hold user info: the deliveries are signed instead", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return invalid("url %q must not have a fragment", raw)
	}
	if p := u.Port(); p != "" {
		for _, c := range p {
			if c < '0' || c > '9' {
				return invalid("url %q has a bad port", raw)
			}
		}
	}
	return nil
}

// printable reports whether s is printable ASCII, or with unicode, UTF-8
// without control characters.
func printable(s string, unicode bool) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r > 0x7e && !unicode) || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' {
			return false
		}
	}
	return true
}

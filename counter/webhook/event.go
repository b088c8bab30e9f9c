// Package webhook tells an app backend or a payments partner what happened,
// at least once: events are written to a durable outbox before they count
// as emitted, delivered to every endpoint that subscribed, signed with the
// endpoint's secret, retried with exponential backoff and jitter, and
// removed from the outbox only after a 2xx. Each event has a stable id, the
// same whenever the same fact is emitted again, so that a receiver that
// remembers the ids it processed processes each fact once.
package webhook

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Event types.
const (
	// SignupAttributed: POST /v1/conversions attributed a new user to a
	// creator.
	SignupAttributed = "signup.attributed"
	// CapReached: a flush into the ledger brought a creator's earnings
	// (before the cap) to the campaign's cap.
	CapReached = "creator.cap_reached"
	// CampaignPayable: a flush sealed the campaign's final statement
	// into the ledger; it can be paid out.
	CampaignPayable = "campaign.payable"
)

// Types are the event types, in the order they are documented.
var Types = []string{SignupAttributed, CapReached, CampaignPayable}

// KnownType reports whether t is an event type.
func KnownType(t string) bool { return slices.Contains(Types, t) }

// Event is one fact, as delivered: the JSON body of every delivery.
type Event struct {
	// ID is stable: derived from the type and the fact's identity (see
	// EventID), so a fact emitted again has the same id.
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"` // when this node first emitted it
	Data      json.RawMessage `json:"data"`
}

// idDomain separates event ids from any other SHA-256 of the same parts;
// changing it changes every id.
const idDomain = "clickgate/webhook-event/v1"

// EventID returns the id of the event of type typ about the fact named by
// parts: "evt_" and 32 lowercase hex digits of SHA-256(domain || len(typ)
// || typ || len(part) || part ...), each len 8 bytes big-endian.
func EventID(typ string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(idDomain))
	var n [8]byte
	for _, p := range append([]string{typ}, parts...) {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}

func newEvent(typ string, data any, parts ...string) Event {
	b, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot marshal the data of a %s event: %s", typ, err))
	}
	return Event{ID: EventID(typ, parts...), Type: typ, Data: b}
}

// Signup is the data of a signup.attributed event.
type Signup struct {
	Campaign   string    `json:"campaign"`
	Creator    string    `json:"creator"`
	UserID     string    `json:"user_id"`
	OccurredAt time.Time `json:"occurred_at"`
}

// SignupEvent is the signup.attributed event of s. Its id names the
// campaign and the user: one user is attributed once per campaign.
func SignupEvent(s Signup) Event {
	return newEvent(SignupAttributed, s, s.Campaign, s.UserID)
}

// Cap is the data of a creator.cap_reached event.
type Cap struct {
	Campaign        string `json:"campaign"`
	Creator         string `json:"creator"`
	CapCents        int64  `json:"cap_cents"`
	EarnedCents     int64  `json:"earned_cents"` // before the cap, as of the flush
	QualifiedVisits int64  `json:"qualified_visits"`
	Signups         int64  `json:"signups"`
	Status          string `json:"status"` // the creator's payout status: payable, invited, suspended, ineligible_country
	LedgerSeq       uint64 `json:"ledger_seq"`
}

// CapEvent is the creator.cap_reached event of c. Its id names the
// campaign, the creator and the cap: a cap raised later and reached again
// is a new event.
func CapEvent(c Cap) Event {
	return newEvent(CapReached, c, c.Campaign, c.Creator, fmt.Sprint(c.CapCents))
}

// Payable is the data of a campaign.payable event.
type Payable struct {
	Campaign   string `json:"campaign"`
	Statement  string `json:"statement"` // "final"
	Currency   string `json:"currency"`
	TotalCents int64  `json:"total_cents"`
	Creators   int    `json:"creators"` // rows of the statement
	LedgerHead string `json:"ledger_head"`
}

// PayableEvent is the campaign.payable event of p. Its id names the
// campaign: a campaign's final statement is sealed once.
func PayableEvent(p Payable) Event {
	return newEvent(CampaignPayable, p, p.Campaign)
}

// Package payout computes what each creator of a campaign is paid from the
// ledger's totals, and exports the statement for the payments partner as
// CSV or JSON. Money is integer cents; any overflow is an error, never a
// wrong number.
package payout

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// Currency is the currency of every amount. The reference program pays in
// USD; a per-campaign currency can come with a campaign field.
const Currency = "USD"

// Row statuses. A row is paid only when it is StatusPayable; otherwise
// CappedCents is 0 and Status says why.
//
// When several reasons apply, the first in this order wins: suspended,
// invited, ineligible_country. The creator's own status comes before the
// campaign's country rule because it is a decision an operator made about
// this person, and suspended comes first because it is the one reason that
// no other change (an invitation accepted, a country made eligible) lifts.
const (
	StatusPayable           = "payable"
	StatusSuspended         = counter.StatusSuspended
	StatusInvited           = counter.StatusInvited
	StatusIneligibleCountry = "ineligible_country"
)

// ErrOverflow means an amount does not fit in int64 cents.
var ErrOverflow = errors.New("payout: amount overflows int64 cents")

// Totals are a creator's cumulative counts from the ledger.
type Totals struct{ Qualified, Signups int64 }

// Row is what one creator is paid in one statement.
type Row struct {
	CreatorID       string `json:"creator_id"`
	Handle          string `json:"handle"`
	Country         string `json:"country"`
	QualifiedVisits int64  `json:"qualified_visits"`
	Signups         int64  `json:"signups"`
	EarnedCents     int64  `json:"earned_cents"` // before the cap
	CappedCents     int64  `json:"capped_cents"` // what is paid: min(earned, cap), 0 when not payable
	Currency        string `json:"currency"`
	Status          string `json:"status"`
	Reference       string `json:"reference"` // see Reference
}

// Statement is the payout of one campaign at one statement: one row per
// creator of the campaign, sorted by creator id.
type Statement struct {
	Campaign   string `json:"campaign"`
	Statement  string `json:"statement"`
	Currency   string `json:"currency"`
	TotalCents int64  `json:"total_cents"` // sum of the rows' CappedCents
	Rows       []Row  `json:"rows"`
	// LedgerHead is the head of the ledger the statement was computed
	// from: lowercase hex SHA-256 of its last record's line.
	LedgerHead string `json:"ledger_head,omitempty"`
}

// Final is the one statement of a campaign. Amounts are cumulative, so a
// second statement would pay again: there is no other.
const Final = "final"

// Compute returns the statement of campaign c: one row per creator of c,
// sorted by creator id (byte order). Creators of other campaigns are
// skipped, so the caller may pass the whole catalog. totals are keyed by
// creator id; a creator without totals has a row of zeros.
//
// Compute refuses, rather than export a file that pays the wrong people or
// amounts: totals of a creator id that is not a creator of c (the ledger
// knows someone the catalog does not), a creator listed twice, an unknown
// creator status, negative counts or campaign amounts, VisitBlockSize < 1,
// and any amount or total that overflows int64 (ErrOverflow).
//
// Countries are compared exactly; the catalog stores upper-case ISO 3166-1
// alpha-2 codes. An empty EligibleCountries makes every country eligible.
func Compute(c counter.Campaign, statement string, creators []counter.Creator, totals map[string]Totals) (Statement, error) {
	if err := checkCampaign(c); err != nil {
		return Statement{}, err
	}
	if statement == "" {
		return Statement{}, fmt.Errorf("cannot compute payouts of campaign %q: statement must not be empty", c.ID)
	}
	rows := make([]Row, 0, len(creators))
	seen := make(map[string]bool, len(creators))
	for _, cr := range creators {
		if cr.Campaign != c.ID {
			continue
		}
		if cr.ID == "" {
			return Statement{}, fmt.Errorf("campaign %q has a creator with an empty id", c.ID)
		}
		if seen[cr.ID] {
			return Statement{}, fmt.Errorf("creator %q is listed twice in campaign %q", cr.ID, c.ID)
		}
		seen[cr.ID] = true
		r, err := row(c, statement, cr, totals[cr.ID])
		if err != nil {
			return Statement{}, err
		}
		rows = append(rows, r)
	}
	for id := range totals {
		if !seen[id] {
			return Statement{}, fmt.Errorf("ledger has totals for creator %q, who is not a creator of campaign %q: refusing to export", id, c.ID)
		}
	}
	slices.SortFunc(rows, func(a, b Row) int { return strings.Compare(a.CreatorID, b.CreatorID) })

	var total int64
	for _, r := range rows {
		var ok bool
		if total, ok = add(total, r.CappedCents); !ok {
			return Statement{}, fmt.Errorf("cannot total campaign %q at creator %q: %w", c.ID, r.CreatorID, ErrOverflow)
		}
	}
	return Statement{Campaign: c.ID, Statement: statement, Currency: Currency, TotalCents: total, Rows: rows}, nil
}

func checkCampaign(c counter.Campaign) error {
	var bad string
	switch {
	case c.ID == "":
		return errors.New("cannot compute payouts: campaign id must not be empty")
	case c.VisitBlockSize < 1:
		bad = fmt.Sprintf("visit_block_size %d must be at least 1", c.VisitBlockSize)
	case c.SignupRewardCents < 0:
		bad = fmt.Sprintf("signup_reward_cents %d must not be negative", c.SignupRewardCents)
	case c.VisitBlockRewardCents < 0:
		bad = fmt.Sprintf("visit_block_reward_cents %d must not be negative", c.VisitBlockRewardCents)
	case c.CapCents < 0:
		bad = fmt.Sprintf("cap_cents %d must not be negative", c.CapCents)
	default:
		return nil
	}
	return fmt.Errorf("cannot compute payouts of campaign %q: %s", c.ID, bad)
}

func row(c counter.Campaign, statement string, cr counter.Creator, t Totals) (Row, error) {
	if t.Qualified < 0 || t.Signups < 0 {
		return Row{}, fmt.Errorf("creator %q of campaign %q has negative totals (qualified %d, signups %d)",
			cr.ID, c.ID, t.Qualified, t.Signups)
	}
	earned, err := Earned(c, t)
	if err != nil {
		return Row{}, fmt.Errorf("cannot compute the earnings of creator %q in campaign %q: %w", cr.ID, c.ID, err)
	}
	var status string
	switch {
	case cr.Status == counter.StatusSuspended:
		status = StatusSuspended
	case cr.Status == counter.StatusInvited:
		status = StatusInvited
	case cr.Status != counter.StatusActive:
		return Row{}, fmt.Errorf("creator %q of campaign %q has unknown status %q", cr.ID, c.ID, cr.Status)
	case !c.Eligible(cr.Country):
		status = StatusIneligibleCountry
	default:
		status = StatusPayable
	}
	var capped int64
	if status == StatusPayable {
		capped = min(earned, c.CapCents)
	}
	return Row{
		CreatorID:       cr.ID,
		Handle:          cr.Handle,
		Country:         cr.Country,
		QualifiedVisits: t.Qualified,
		Signups:         t.Signups,
		EarnedCents:     earned,
		CappedCents:     capped,
		Currency:        Currency,
		Status:          status,
		Reference:       Reference(c.ID, cr.ID, statement),
	}, nil
}

// Earned returns what totals t earn in campaign c before the cap:
// signups × SignupRewardCents + ⌊qualified / VisitBlockSize⌋ ×
// VisitBlockRewardCents. The remainder of a block earns nothing (it carries
// forward in the cumulative totals). Negative inputs and VisitBlockSize < 1
// are errors; so is a result that does not fit in int64 (ErrOverflow).
func Earned(c counter.Campaign, t Totals) (int64, error) {
	switch {
	case c.VisitBlockSize < 1:
		return 0, fmt.Errorf("visit_block_size %d must be at least 1", c.VisitBlockSize)
	case t.Qualified < 0 || t.Signups < 0 || c.SignupRewardCents < 0 || c.VisitBlockRewardCents < 0:
		return 0, errors.New("counts and rewards must not be negative")
	}
	fromSignups, ok1 := mul(t.Signups, c.SignupRewardCents)
	fromVisits, ok2 := mul(t.Qualified/c.VisitBlockSize, c.VisitBlockRewardCents)
	earned, ok3 := add(fromSignups, fromVisits)
	if !ok1 || !ok2 || !ok3 {
		return 0, ErrOverflow
	}
	return earned, nil
}

// mul returns a×b for non-negative a and b, and whether it fits in int64.
func mul(a, b int64) (int64, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

// add returns a+b for non-negative a and b, and whether it fits in int64.
func add(a, b int64) (int64, bool) {
	s, carry := bits.Add64(uint64(a), uint64(b), 0)
	if carry != 0 || s > math.MaxInt64 {
		return 0, false
	}
	return int64(s), true
}

// referenceEncoding is RFC 4648 base32 in lower case without padding: URL-
// and file-name-safe, case-insensitive for people who read it aloud.
var referenceEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// referenceDomain separates these hashes from any other SHA-256 of the same
// parts; changing it changes every reference (a new format version).
const referenceDomain = "clickgate/payout-reference/v1"

// Reference returns the idempotency key of the payment to creator in
// campaign for statement. The payments partner refuses a second payment
// with a reference it has seen, so the same inputs always give the same
// reference and different inputs give different ones.
//
// Format (35 bytes, matches ^cg_[a-z2-7]{32}$):
//
//	"cg_" + base32lower(SHA-256(D || len(campaign) || campaign ||
//	        len(creator) || creator || len(statement) || statement)[:20])
//
// where D is the ASCII string "clickgate/payout-reference/v1", each len is
// 8 bytes big-endian, and base32lower is RFC 4648 base32 in lower case
// without padding. Length prefixes keep ("ab", "c") and ("a", "bc") apart;
// 160 bits keep accidental collisions out of reach.
func Reference(campaign, creator, statement string) string {
	h := sha256.New()
	h.Write([]byte(referenceDomain))
	var n [8]byte
	for _, part := range [...]string{campaign, creator, statement} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	sum := h.Sum(nil)
	return "cg_" + referenceEncoding.EncodeToString(sum[:20])
}

// csvHeader is the first line of WriteCSV's output.
var csvHeader = []string{
	"creator_id", "handle", "country", "qualified_visits", "signups",
	"earned_cents", "capped_cents", "currency", "status", "reference",
}

// WriteCSV writes rows as CSV (RFC 4180 quoting, "\n" line endings) with a
// header line, in the order given.
//
// Finance opens this file in spreadsheets, which run a cell that starts
// with '=', '+', '-' or '@' as a formula (tab and CR can hide such a
// start). So a text cell (creator_id, handle, country) that starts with
// one of those six characters is written with a single quote in front:
// "=HYPERLINK(…)" becomes "'=HYPERLINK(…)" and "@alice" becomes "'@alice".
// Numbers, status, currency and reference are ours and never need it. The
// JSON export carries the values unchanged, and the reference is computed
// from the unchanged ids.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("cannot write payouts CSV header: %w", err)
	}
	rec := make([]string, len(csvHeader))
	for _, r := range rows {
		rec[0] = textCell(r.CreatorID)
		rec[1] = textCell(r.Handle)
		rec[2] = textCell(r.Country)
		rec[3] = strconv.FormatInt(r.QualifiedVisits, 10)
		rec[4] = strconv.FormatInt(r.Signups, 10)
		rec[5] = strconv.FormatInt(r.EarnedCents, 10)
		rec[6] = strconv.FormatInt(r.CappedCents, 10)
		rec[7] = r.Currency
		rec[8] = r.Status
		rec[9] = r.Reference
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("cannot write payouts CSV row of creator %q: %w", r.CreatorID, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("cannot write payouts CSV: %w", err)
	}
	return nil
}

// textCell defuses a cell that a spreadsheet would run as a formula.
func textCell(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// maxJSONInt is the largest integer a float64 holds exactly (2^53 - 1).
// Many JSON readers (JavaScript, spreadsheets' importers) parse numbers as
// doubles and would round anything above it.
const maxJSONInt = 1<<53 - 1

// WriteJSON writes s as one indented JSON object:
//
//	{"campaign": …, "statement": …, "currency": "USD", "total_cents": …, "rows": [{"creator_id": …}, …]}
//
// It refuses a statement whose TotalCents is not the sum of its rows'
// CappedCents, and any number above 2^53-1, which a JSON reader that
// parses numbers as doubles would round.
func WriteJSON(w io.Writer, s Statement) error {
	var sum int64
	for _, r := range s.Rows {
		for _, v := range [...]int64{r.QualifiedVisits, r.Signups, r.EarnedCents, r.CappedCents} {
			if v > maxJSONInt {
				return fmt.Errorf("cannot write payouts JSON: creator %q has %d, above 2^53-1", r.CreatorID, v)
			}
		}
		var ok bool
		if sum, ok = add(sum, r.CappedCents); !ok {
			return fmt.Errorf("cannot write payouts JSON: %w", ErrOverflow)
		}
	}
	switch {
	case sum != s.TotalCents:
		return fmt.Errorf("cannot write payouts JSON: total_cents %d is not the sum of the rows' capped_cents %d", s.TotalCents, sum)
	case sum > maxJSONInt:
		return fmt.Errorf("cannot write payouts JSON: total_cents %d is above 2^53-1", sum)
	}
	if s.Rows == nil {
		s.Rows = []Row{} // "rows": [], not null
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("cannot write payouts JSON: %w", err)
	}
	return nil
}

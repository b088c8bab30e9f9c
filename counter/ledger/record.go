package ledger

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/clickgate/clickgate/counter/payout"
)

// FileName is the name of the ledger file inside its directory.
const FileName = "ledger.jsonl"

// MaxIDLen is the longest campaign or creator id a record may hold, in bytes.
const MaxIDLen = 256

// Format is the version of the file format this package writes: the first
// record of a new ledger names it, and a ledger of version 1 (the first
// record has no format) is upgraded by the first record that needs it.
// Version 2 added the creators' accepted_at.
const Format = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// body is the canonical body of a record: the bytes that len, crc32c and
// hmac cover. Its field order is the order of the keys in the file.
type body struct {
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Ledger and Store are in the first record only: the ledger's id and
	// the id of the store it flushes.
	Ledger string `json:"ledger,omitempty"`
	Store  string `json:"store,omitempty"`
	// Format is the format version from this record on: in the first
	// record, or in the record that upgrades a version 1 ledger. Absent
	// (0) in the others, and in the first record of a version 1 ledger.
	Format     int                `json:"format,omitempty"`
	Entries    []Entry            `json:"entries,omitempty"`
	Campaigns  []Terms            `json:"campaigns,omitempty"`
	Statements []payout.Statement `json:"statements,omitempty"`
	Prev       string             `json:"prev"`
}

const (
	lenKey  = `,"len":`
	crcKey  = `,"crc32c":"`
	hmacKey = `","hmac":"`
	// trailerEnd follows the hmac's hex digits.
	trailerEnd = `"}`
	macHexLen  = 2 * sha256.Size
)

// encodeBody returns the canonical JSON of b: encoding/json with HTML
// escaping off, no insignificant white space.
func encodeBody(b *body) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	p := buf.Bytes()
	return p[:len(p)-1], nil // Encode ends the value with '\n'
}

// appendLine appends the record line of body (ending with '\n') to dst:
// body without its closing brace, then the len, crc32c and hmac members.
func appendLine(dst, body, key []byte) []byte {
	if len(body) < 2 || body[len(body)-1] != '}' {
		panic("BUG: a record body must be a JSON object")
	}
	dst = append(dst, body[:len(body)-1]...)
	dst = append(dst, lenKey...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, crcKey...)
	var sum [4]byte
	crc := crc32.Checksum(body, castagnoli)
	sum[0], sum[1], sum[2], sum[3] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	dst = hex.AppendEncode(dst, sum[:])
	dst = append(dst, hmacKey...)
	dst = hex.AppendEncode(dst, mac(key, body))
	return append(dst, trailerEnd+"\n"...)
}

// mac returns HMAC-SHA256(key, body): what proves that a record was
// written by a holder of the ledger key. The chain alone proves order, not
// authorship: anyone can recompute it after an edit.
func mac(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

// frame checks the framing of line (without its '\n'): the len, crc32c and
// hmac members' shape, the crc32c, and that the body is JSON of a record.
// Failing it is what a torn write looks like. It returns the body, its raw
// bytes and the recorded hmac, which authenticate checks.
func frame(line []byte) (*body, []byte, []byte, error) {
	i := bytes.LastIndex(line, []byte(lenKey))
	if i < 0 {
		return nil, nil, nil, errors.New(`no "len" member`)
	}
	rest := line[i+len(lenKey):]
	j := 0
	for j < len(rest) && '0' <= rest[j] && rest[j] <= '9' {
		j++
	}
	if j == 0 || j > 12 || (j > 1 && rest[0] == '0') {
		return nil, nil, nil, errors.New(`malformed "len" member`)
	}
	n, _ := strconv.ParseInt(string(rest[:j]), 10, 64)
	rest = rest[j:]
	const trailer = len(crcKey) + 8 + len(hmacKey) + macHexLen + len(trailerEnd)
	if !bytes.HasPrefix(rest, []byte(crcKey)) || len(rest) != trailer ||
		string(rest[len(crcKey)+8:len(crcKey)+8+len(hmacKey)]) != hmacKey || string(rest[trailer-len(trailerEnd):]) != trailerEnd {
		return nil, nil, nil, errors.New(`malformed "crc32c" or "hmac" member, or data after them`)
	}
	hexSum := rest[len(crcKey) : len(crcKey)+8]
	hexMac := rest[len(crcKey)+8+len(hmacKey) : trailer-len(trailerEnd)]
	if !lowerHex(hexSum) || !lowerHex(hexMac) {
		return nil, nil, nil, errors.New(`"crc32c" or "hmac" is not lowercase hex`)
	}
	if n != int64(i+1) {
		return nil, nil, nil, fmt.Errorf("length mismatch: len is %d, the body is %d bytes", n, i+1)
	}
	raw := make([]byte, i+1)
	copy(raw, line[:i])
	raw[i] = '}'
	want, _ := strconv.ParseUint(string(hexSum), 16, 32)
	if got := crc32.Checksum(raw, castagnoli); got != uint32(want) {
		return nil, nil, nil, fmt.Errorf("crc32c mismatch: recorded %s, computed %08x", hexSum, got)
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, nil, nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	m, _ := hex.DecodeString(string(hexMac))
	return &b, raw, m, nil
}

// legacy reports whether line (without its '\n') ends as a record of the
// first format did: `,"crc32c":"<8 hex>"}` with no hmac.
func legacy(line []byte) bool {
	n := len(line) - len(crcKey) - 8 - len(trailerEnd)
	return n > 0 && string(line[n:n+len(crcKey)]) == crcKey && lowerHex(line[n+len(crcKey):len(line)-len(trailerEnd)]) &&
		string(line[len(line)-len(trailerEnd):]) == trailerEnd
}

func lowerHex(p []byte) bool {
	for _, c := range p {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// errForeign is the reason given for a record whose hmac does not match.
const errForeign = "hmac mismatch: the record was not written with this ledger key (edited by hand, or the wrong --ledger-key-file)"

// checkBody checks what a well-framed record must hold on its own: a valid
// first record or batch, in the canonical form that Append writes.
func checkBody(b *body, raw []byte) error {
	switch {
	case b.Format == 1:
		return errors.New("format 1 is written by leaving format out")
	case b.Format < 0 || b.Format > Format:
		return fmt.Errorf("format %d is not one this clickgate reads (1 to %d): read it with a newer clickgate", b.Format, Format)
	}
	if b.Seq == 1 {
		if err := checkGenesis(b); err != nil {
			return err
		}
	} else {
		if b.Ledger != "" || b.Store != "" {
			return errors.New("only the first record names the ledger and its store")
		}
		if err := checkBatch(b.At, b.Entries, b.Campaigns, b.Statements); err != nil {
			return err
		}
	}
	canon, err := encodeBody(b)
	if err != nil {
		return fmt.Errorf("cannot re-encode the body: %w", err)
	}
	if !bytes.Equal(canon, raw) {
		return errors.New("body is not in canonical form")
	}
	return nil
}

// checkGenesis checks the first record: the ledger's and the store's ids,
// and nothing else.
func checkGenesis(b *body) error {
	if err := checkTime(b.At); err != nil {
		return err
	}
	if err := checkID("ledger", b.Ledger); err != nil {
		return fmt.Errorf("the first record must name the ledger: %w", err)
	}
	if err := checkID("store", b.Store); err != nil {
		return fmt.Errorf("the first record must name the store: %w", err)
	}
	if len(b.Entries) != 0 || len(b.Campaigns) != 0 || len(b.Statements) != 0 {
		return errors.New("the first record holds no entries, terms or statements")
	}
	return nil
}

func checkTime(at time.Time) error {
	if at.IsZero() {
		return errors.New("batch time is not set")
	}
	if _, off := at.Zone(); off != 0 {
		return fmt.Errorf("batch time %s is not UTC", at.Format(time.RFC3339Nano))
	}
	if y := at.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("batch time %s is out of range", at.Format(time.RFC3339Nano))
	}
	return nil
}

// checkBatch checks the time, the entries and the terms of a batch on
// their own. The entries must be sorted; see compareEntries. Statements
// are checked against the ledger, by state.seal.
func checkBatch(at time.Time, entries []Entry, campaigns []Terms, statements []payout.Statement) error {
	if err := checkTime(at); err != nil {
		return err
	}
	switch {
	case len(statements) > 0 && (len(entries) > 0 || len(campaigns) > 0):
		// A statement is computed from the ledger before its record.
		return errors.New("a record with statements holds no entries or terms")
	case len(entries) == 0 && len(campaigns) == 0 && len(statements) == 0:
		return errors.New("batch has no entries, terms or statements")
	}
	for i := 1; i < len(statements); i++ {
		if statements[i-1].Campaign >= statements[i].Campaign {
			return fmt.Errorf("statements are not sorted and unique at campaign %q", statements[i].Campaign)
		}
	}
	for i := range campaigns {
		c := &campaigns[i]
		if err := checkID("campaign", c.ID); err != nil {
			return err
		}
		if c.VisitBlockSize < 1 || c.SignupRewardCents < 0 || c.VisitBlockRewardCents < 0 || c.CapCents < 0 {
			return fmt.Errorf("terms of campaign %q are out of range", c.ID)
		}
		if i > 0 && campaigns[i-1].ID >= c.ID {
			return fmt.Errorf("terms are not sorted and unique at campaign %q", c.ID)
		}
	}
	for i := range entries {
		e := &entries[i]
		if err := checkID("campaign", e.Campaign); err != nil {
			return err
		}
		if err := checkID("creator", e.Creator); err != nil {
			return err
		}
		if e.Qualified < 0 || e.Signups < 0 {
			return fmt.Errorf("negative total for creator %q in campaign %q: qualified %d, signups %d",
				e.Creator, e.Campaign, e.Qualified, e.Signups)
		}
		if !e.AcceptedAt.IsZero() {
			if err := checkTime(e.AcceptedAt); err != nil {
				return fmt.Errorf("accepted_at of creator %q in campaign %q: %w", e.Creator, e.Campaign, err)
			}
		}
		if i > 0 {
			switch c := compareEntries(entries[i-1], *e); {
			case c == 0:
				return fmt.Errorf("creator %q in campaign %q appears twice", e.Creator, e.Campaign)
			case c > 0:
				return fmt.Errorf("entries are not sorted by campaign and creator at %q/%q", e.Campaign, e.Creator)
			}
		}
	}
	return nil
}

func checkID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("%s id is empty", kind)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%s id %q is longer than %d bytes", kind, id, MaxIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%s id %q is not valid UTF-8", kind, id)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s id %q contains a control character", kind, id)
		}
	}
	return nil
}

func compareEntries(a, b Entry) int {
	if c := cmp.Compare(a.Campaign, b.Campaign); c != 0 {
		return c
	}
	return cmp.Compare(a.Creator, b.Creator)
}

// checkTotals reports an entry whose totals are below the current ones,
// or that changes or drops an acceptance time the ledger holds.
func checkTotals(totals map[Key]Entry, entries []Entry) error {
	for _, e := range entries {
		old, ok := totals[Key{e.Campaign, e.Creator}]
		if ok && (e.Qualified < old.Qualified || e.Signups < old.Signups) {
			return fmt.Errorf("totals of creator %q in campaign %q would decrease: qualified %d -> %d, signups %d -> %d",
				e.Creator, e.Campaign, old.Qualified, e.Qualified, old.Signups, e.Signups)
		}
		if ok && !old.AcceptedAt.IsZero() && !e.AcceptedAt.Equal(old.AcceptedAt) {
			return fmt.Errorf("accepted_at of creator %q in campaign %q would change: %s -> %s", e.Creator, e.Campaign,
				old.AcceptedAt.Format(time.RFC3339Nano), formatAccepted(e.AcceptedAt))
		}
	}
	return nil
}

func formatAccepted(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Format(time.RFC3339Nano)
}

// checkFormat checks that entries fit format, the ledger's version as of
// their record: accepted_at is version 2's.
func checkFormat(format int, entries []Entry) error {
	if format >= 2 {
		return nil
	}
	for _, e := range entries {
		if !e.AcceptedAt.IsZero() {
			return fmt.Errorf("accepted_at of creator %q in campaign %q in a ledger of format 1: a record with format 2 upgrades it first",
				e.Creator, e.Campaign)
		}
	}
	return nil
}

// accepts reports whether entries hold an acceptance time.
func accepts(entries []Entry) bool {
	for _, e := range entries {
		if !e.AcceptedAt.IsZero() {
			return true
		}
	}
	return false
}

func hashLine(line []byte) [sha256.Size]byte { return sha256.Sum256(line) }

// lineSeq returns the seq written at the start of a line that may be
// damaged, or 0: only for naming a bad record in an error.
func lineSeq(line []byte) uint64 {
	const prefix = `{"seq":`
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return 0
	}
	line = line[len(prefix):]
	j := 0
	for j < len(line) && j < 20 && '0' <= line[j] && line[j] <= '9' {
		j++
	}
	n, _ := strconv.ParseUint(string(line[:j]), 10, 64)
	return n
}

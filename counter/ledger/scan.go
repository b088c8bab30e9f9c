package ledger

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/clickgate/clickgate/counter/payout"
)

// Errors that a *RecordError matches with errors.Is.
var (
	// ErrCorrupt: a bad record that a crash cannot explain. Open refuses
	// the ledger and changes nothing; an operator must look at it.
	ErrCorrupt = errors.New("ledger: corrupt")
	// ErrTorn: the ledger ends with an incomplete write. Open truncates
	// it; Verify reports it.
	ErrTorn = errors.New("ledger: torn tail")
)

// RecordError names the first bad record of a ledger file.
type RecordError struct {
	Path   string
	Line   int    // 1-based line number
	Offset int64  // byte offset of the line's first byte in the file
	Seq    uint64 // the seq the line starts with, possibly damaged; 0 if unreadable
	Torn   bool   // an incomplete last write rather than corruption
	Reason string
}

func (e *RecordError) Error() string {
	what := "bad record"
	if e.Torn {
		what = "torn tail"
	}
	seq := "seq unknown"
	if e.Seq != 0 {
		seq = "seq " + strconv.FormatUint(e.Seq, 10)
	}
	return fmt.Sprintf("ledger %q: %s at line %d (%s, byte offset %d): %s", e.Path, what, e.Line, seq, e.Offset, e.Reason)
}

// Is makes a RecordError match ErrTorn or ErrCorrupt.
func (e *RecordError) Is(target error) bool {
	if e.Torn {
		return target == ErrTorn
	}
	return target == ErrCorrupt
}

// Report is what Verify found in a valid ledger.
type Report struct {
	Records    int
	LastSeq    uint64
	Ledger     string // the ledger's id; empty when the ledger is empty
	Store      string // the id of the store it flushes; empty when the ledger is empty
	Format     int    // the format version of its last record: 1 or 2; 0 when the ledger is empty
	Totals     map[Key]Entry
	Campaigns  map[string]Terms            // latest terms
	Statements map[string]payout.Statement // sealed final statements, by campaign
	LastAt     time.Time                   // the time of the last record
	Head       string                      // hex SHA-256 of the last record's line; 64 zeros when empty
	heads      [][sha256.Size]byte         // every head the ledger had, by seq
}

func (st *state) report() Report {
	return Report{Records: st.records, LastSeq: st.seq, Ledger: st.ledger, Store: st.store, Format: st.format, Totals: maps.Clone(st.totals),
		Campaigns: maps.Clone(st.campaigns), Statements: maps.Clone(st.statements), LastAt: st.lastAt,
		Head: hex.EncodeToString(st.head[:]), heads: st.heads[: st.seq+1 : st.seq+1]}
}

// Extends reports whether the ledger's head is head or one of the records
// after it: the ledger still holds a record whose line hashes to head, so
// nothing from it back to the start was removed. The empty ledger's head is
// 64 zeros.
func (r Report) Extends(head string) bool {
	h, err := hex.DecodeString(head)
	if err != nil || len(h) != sha256.Size {
		return false
	}
	return slices.Contains(r.heads, [sha256.Size]byte(h))
}

// Verify checks every record of the ledger in dir without changing
// anything and without taking the lock: framing (len, crc32c), the hmac
// with key, JSON and canonical form, seq = previous + 1, the prev hash
// chain, that no creator's totals decrease, and that each sealed statement
// is the one the ledger before it computes. It returns an error naming the
// first bad record (a *RecordError), including a torn tail that Open would
// truncate.
//
// While a writer appends, Verify may see the record being written and
// report it as a torn tail; verify a ledger that is not being written.
func Verify(dir string, key []byte) (Report, error) {
	if len(key) == 0 {
		return Report{}, errNoKey
	}
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("cannot verify ledger: %w", err)
	}
	defer f.Close()
	st, bad, err := scan(path, f, key)
	if err != nil {
		return Report{}, fmt.Errorf("cannot verify ledger: %w", err)
	}
	if bad != nil {
		return Report{}, bad
	}
	return st.report(), nil
}

// state is the ledger as of its last good record.
type state struct {
	key     []byte // authenticates records
	records int
	seq     uint64
	ledger  string
	store   string
	format  int               // the format version as of the last record; 0 when empty
	head    [sha256.Size]byte // hash of the last record's line; zero when empty
	// heads[seq] is the head after record seq; heads[0] is the empty
	// ledger's. Only appended to, so a Report may keep a prefix.
	heads      [][sha256.Size]byte
	totals     map[Key]Entry
	campaigns  map[string]Terms
	statements map[string]payout.Statement
	lastAt     time.Time
	end        int64 // byte offset just past the last good record
}

func newState(key []byte) state {
	return state{key: key, heads: make([][sha256.Size]byte, 1), totals: make(map[Key]Entry),
		campaigns: make(map[string]Terms), statements: make(map[string]payout.Statement)}
}

// check checks a well-framed record against the ledger before it.
func (st *state) check(b *body) error {
	if b.Seq != st.seq+1 {
		return fmt.Errorf("seq %d follows seq %d", b.Seq, st.seq)
	}
	if prev := hex.EncodeToString(st.head[:]); b.Prev != prev {
		return fmt.Errorf("prev %q is not the hash of the previous record %q", b.Prev, prev)
	}
	format := st.format
	switch {
	case b.Seq == 1:
		format = max(1, b.Format)
	case b.Format != 0 && b.Format <= st.format:
		return fmt.Errorf("format %d in a ledger of format %d: a format is only ever raised", b.Format, st.format)
	case b.Format != 0:
		format = b.Format
	}
	if err := checkFormat(format, b.Entries); err != nil {
		return err
	}
	if err := checkTotals(st.totals, b.Entries); err != nil {
		return err
	}
	for _, s := range b.Statements {
		want, err := st.statement(s.Campaign, b.At)
		if err != nil {
			return err
		}
		if !sameStatement(s, want) {
			return fmt.Errorf("the statement of campaign %q is not the one the ledger before it computes", s.Campaign)
		}
	}
	return nil
}

// add records a good record whose line is line.
func (st *state) add(b *body, line []byte) {
	if b.Seq == 1 {
		st.ledger, st.store, st.format = b.Ledger, b.Store, 1
	}
	if b.Format != 0 {
		st.format = b.Format
	}
	for _, e := range b.Entries {
		st.totals[Key{e.Campaign, e.Creator}] = e
	}
	for _, c := range b.Campaigns {
		st.campaigns[c.ID] = c
	}
	for _, s := range b.Statements {
		st.statements[s.Campaign] = s
	}
	st.lastAt = b.At
	st.records++
	st.seq = b.Seq
	st.head = hashLine(line)
	st.heads = append(st.heads, st.head)
	st.end += int64(len(line))
}

// scan reads a ledger file from its start. It returns the state after the
// last good record and the first bad record, if any; err is a read error.
//
// A bad record is a torn tail when it fails framing (no '\n', len, crc32c,
// JSON) and no later line passes framing: what a crash in the middle of an
// append can leave, even with the file system writing the record's pages
// out of order. Anything else is corruption: a well-framed record that
// breaks a rule (seq, chain, totals, canonical form), or a badly framed one
// followed by a good one.
func scan(path string, r io.Reader, key []byte) (st state, bad *RecordError, err error) {
	st = newState(key)
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	var off int64
	for n := 1; ; n++ {
		line, err = readLine(br, line[:0])
		if err != nil {
			return st, nil, fmt.Errorf("cannot read %q at byte offset %d: %w", path, off, err)
		}
		if len(line) == 0 {
			return st, nil, nil
		}
		e := &RecordError{Path: path, Line: n, Offset: off, Seq: lineSeq(line)}
		torn, reason := apply(&st, line)
		off += int64(len(line))
		if reason == "" {
			continue
		}
		e.Reason = reason
		if !torn {
			return st, e, nil
		}
		if framedTail(line) {
			// A damaged '\n' merged two records; a crash cannot: the
			// next record is written only after the previous one's fsync.
			e.Reason += fmt.Sprintf("; a well-framed record follows within line %d", n)
			return st, e, nil
		}
		// Torn only if nothing after it is a record.
		for m := n + 1; ; m++ {
			line, err = readLine(br, line[:0])
			if err != nil {
				return st, nil, fmt.Errorf("cannot read %q at byte offset %d: %w", path, off, err)
			}
			if len(line) == 0 {
				e.Torn = true
				return st, e, nil
			}
			if line[len(line)-1] == '\n' {
				if _, _, _, err := frame(line[:len(line)-1]); err == nil {
					e.Reason += fmt.Sprintf("; a well-framed record follows at line %d", m)
					return st, e, nil
				}
			}
			off += int64(len(line))
		}
	}
}

// apply checks line (with its '\n', if any) as the record after st and, if
// it is good, adds it to st. A non-empty reason says why it is bad; torn
// says the failure is one of framing.
func apply(st *state, line []byte) (torn bool, reason string) {
	if line[len(line)-1] != '\n' {
		return true, "no newline at the end of the file"
	}
	b, raw, m, err := frame(line[:len(line)-1])
	if err != nil && legacy(line[:len(line)-1]) {
		// Never a torn tail: truncating it would drop the whole ledger.
		return false, "a record of the format before hmacs, which this clickgate does not read; verify and pay it with the clickgate that wrote it"
	}
	if err != nil {
		return true, err.Error()
	}
	if !hmac.Equal(m, mac(st.key, raw)) {
		return false, errForeign
	}
	if err := checkBody(b, raw); err != nil {
		return false, err.Error()
	}
	if err := st.check(b); err != nil {
		return false, err.Error()
	}
	st.add(b, line)
	return false, ""
}

// readLine appends the next line of br, with its '\n' if it has one, to
// buf. It returns an empty line at the end of the input.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		switch err {
		case nil, io.EOF:
			return buf, nil
		case bufio.ErrBufferFull:
			continue
		default:
			return buf, err
		}
	}
}

// framedTail reports whether line, which failed framing, ends with a
// well-framed record.
func framedTail(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte("\n"))
	i := bytes.LastIndex(line, []byte(lenKey))
	if i < 0 {
		return false
	}
	rest := line[i+len(lenKey):]
	j := 0
	for j < len(rest) && j < 12 && '0' <= rest[j] && rest[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(string(rest[:j]))
	if err != nil || n < 2 || n >= i+1 {
		return false
	}
	_, _, _, err = frame(line[i+1-n:])
	return err == nil
}

package ledger

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"time"
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
	Records   int
	LastSeq   uint64
	Totals    map[Key]Entry
	Campaigns map[string]Terms // latest terms
	LastAt    time.Time        // the time of the last batch
	Head      string           // hex SHA-256 of the last record's line; 64 zeros when empty
}

func (st *state) report() Report {
	return Report{Records: st.records, LastSeq: st.seq, Totals: maps.Clone(st.totals),
		Campaigns: maps.Clone(st.campaigns), LastAt: st.lastAt, Head: hex.EncodeToString(st.head[:])}
}

// Verify checks every record of the ledger in dir without changing
// anything and without taking the lock: framing (len, crc32c), JSON and
// canonical form, seq = previous + 1, the prev hash chain, and that no
// creator's totals decrease. It returns an error naming the first bad
// record (a *RecordError), including a torn tail that Open would truncate.
//
// While a writer appends, Verify may see the record being written and
// report it as a torn tail; verify a ledger that is not being written.
func Verify(dir string) (Report, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("cannot verify ledger: %w", err)
	}
	defer f.Close()
	st, bad, err := scan(path, f)
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
	records   int
	seq       uint64
	head      [sha256.Size]byte // hash of the last record's line; zero when empty
	totals    map[Key]Entry
	campaigns map[string]Terms
	lastAt    time.Time
	end       int64 // byte offset just past the last good record
}

// add records the entries and terms of a good record.
func (st *state) add(b *body) {
	for _, e := range b.Entries {
		st.totals[Key{e.Campaign, e.Creator}] = e
	}
	for _, c := range b.Campaigns {
		st.campaigns[c.ID] = c
	}
	st.lastAt = b.At
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
func scan(path string, r io.Reader) (st state, bad *RecordError, err error) {
	st.totals = make(map[Key]Entry)
	st.campaigns = make(map[string]Terms)
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
				if _, _, err := frame(line[:len(line)-1]); err == nil {
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
	b, raw, err := frame(line[:len(line)-1])
	if err != nil {
		return true, err.Error()
	}
	if err := checkBody(b, raw); err != nil {
		return false, err.Error()
	}
	if b.Seq != st.seq+1 {
		return false, fmt.Sprintf("seq %d follows seq %d", b.Seq, st.seq)
	}
	if prev := hex.EncodeToString(st.head[:]); b.Prev != prev {
		return false, fmt.Sprintf("prev %q is not the hash of the previous record %q", b.Prev, prev)
	}
	if err := checkTotals(st.totals, b.Entries); err != nil {
		return false, err.Error()
	}
	st.add(b)
	st.records++
	st.seq = b.Seq
	st.head = hashLine(line)
	st.end += int64(len(line))
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

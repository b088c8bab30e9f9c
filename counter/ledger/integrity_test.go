package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantCorrupt writes file to a new ledger directory and checks that Verify
// and Open refuse it as corruption at line, for a reason containing
// reason, and that Open leaves the file alone.
func wantCorrupt(t *testing.T, name string, file []byte, line int, reason string) *RecordError {
	t.Helper()
	dir := t.TempDir()
	writeLedger(t, dir, file)
	var re *RecordError
	for _, op := range []string{"Verify", "Open"} {
		var err error
		if op == "Verify" {
			_, err = Verify(dir, testKey)
		} else {
			var l *Ledger
			if l, err = Open(dir, testKey); err == nil {
				l.Close()
			}
		}
		if !errors.As(err, &re) || re.Torn || !errors.Is(err, ErrCorrupt) || re.Line != line {
			t.Fatalf("unexpected %s error for %s; got %v; want corruption at line %d", op, name, err, line)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("line %d (", line)) || !strings.Contains(err.Error(), "byte offset") ||
			!strings.Contains(re.Reason, reason) {
			t.Fatalf("unexpected %s error text for %s; got %q; want line %d and %q", op, name, err, line, reason)
		}
	}
	if got := readLedger(t, dir); !bytes.Equal(got, file) {
		t.Fatalf("Open changed a corrupt ledger (%s)", name)
	}
	return re
}

func TestCorruption(t *testing.T) {
	_, data := writeTestLedger(t)
	ls := lines(data)
	f := func(name string, file []byte, line int, reason string) {
		t.Helper()
		wantCorrupt(t, name, file, line, reason)
	}
	// Line 3 is the record of testBatches()[1].
	b, raw, _, err := frame(ls[2][:len(ls[2])-1])
	if err != nil || checkBody(b, raw) != nil {
		t.Fatalf("cannot parse line 3: %v", err)
	}
	rec := *b
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }

	bad := rec
	bad.Prev = strings.Repeat("ab", 32)
	f("chain broken in line 3", join(ls[0], ls[1], forge(t, testKey, bad), ls[3], ls[4]), 3, "is not the hash of the previous record")
	f("line 4 after a re-framed line 3", join(ls[0], ls[1], forge(t, testKey, withAt(rec, t0)), ls[3], ls[4]), 4, "is not the hash of the previous record")

	// Reordered, duplicated and missing records.
	f("lines 3 and 4 swapped", join(ls[0], ls[1], ls[3], ls[2], ls[4]), 3, "seq 4 follows seq 2")
	f("last two lines swapped", join(ls[0], ls[1], ls[2], ls[4], ls[3]), 4, "seq 5 follows seq 3")
	f("line 3 twice", join(ls[0], ls[1], ls[2], ls[2], ls[3], ls[4]), 4, "seq 3 follows seq 3")
	f("last line twice", join(data, ls[4]), 6, "seq 5 follows seq 5")
	f("first record twice", join(ls[0], ls[0], ls[1]), 2, "seq 1 follows seq 1")
	f("line 2 missing", join(ls[0], ls[2], ls[3], ls[4]), 2, "seq 3 follows seq 1")
	f("first record missing", join(ls[1], ls[2], ls[3], ls[4]), 1, "seq 2 follows seq 0")
	f("another ledger's line", join(ls[0], ls[1], lines(writeTestLedgerData(t))[2]), 3, "is not the hash of the previous record")

	bad = rec
	bad.Entries = slices.Clone(rec.Entries)
	bad.Entries[1].Qualified = 1 // spring26/leo had 87
	f("decreasing totals", join(ls[0], ls[1], forge(t, testKey, bad), ls[3], ls[4]), 3, "would decrease")

	// Well-framed but not what Append writes.
	spaced := append(slices.Clip(raw[:len(raw)-1]), " }"...)
	f("not canonical", join(ls[0], ls[1], appendLine(nil, spaced, testKey), ls[3], ls[4]), 3, "canonical")
	unsorted := rec
	unsorted.Entries = slices.Clone(rec.Entries)
	slices.Reverse(unsorted.Entries)
	f("unsorted entries", join(ls[0], ls[1], forge(t, testKey, unsorted), ls[3], ls[4]), 3, "not sorted")
	extra := append(slices.Clip(raw[:len(raw)-1]), `,"note":"x"}`...)
	f("unknown member", join(ls[0], ls[1], appendLine(nil, extra, testKey), ls[3], ls[4]), 3, "unknown field")
	empty := body{Seq: 3, At: t0, Prev: rec.Prev}
	f("record with nothing in it", join(ls[0], ls[1], forge(t, testKey, empty), ls[3], ls[4]), 3, "no entries, terms or statements")
	named := rec
	named.Store = "store-b"
	f("later record naming a store", join(ls[0], ls[1], forge(t, testKey, named), ls[3], ls[4]), 3, "only the first record names")

	// The first record names the ledger and the store, and holds nothing else.
	g := parse(t, ls[0])
	for _, c := range []struct {
		name   string
		edit   func(*body)
		reason string
	}{
		{"no ledger id", func(b *body) { b.Ledger = "" }, "must name the ledger"},
		{"no store id", func(b *body) { b.Store = "" }, "must name the store"},
		{"control character in the store id", func(b *body) { b.Store = "a\nb" }, "control character"},
		{"entries", func(b *body) { b.Entries = []Entry{{Campaign: "c", Creator: "x", Qualified: 1}} }, "holds no entries"},
		{"terms", func(b *body) { b.Campaigns = []Terms{{ID: "c", VisitBlockSize: 1}} }, "holds no entries"},
		{"a prev", func(b *body) { b.Prev = sha(ls[0]) }, "is not the hash of the previous record"},
		{"seq 0", func(b *body) { b.Seq = 0 }, "only the first record names"},
		{"seq 2", func(b *body) { b.Seq = 2 }, "only the first record names"},
	} {
		bad := g
		c.edit(&bad)
		f("first record with "+c.name, join(forge(t, testKey, bad), ls[1]), 1, c.reason)
	}

	// A well-framed last record that breaks the chain is not a torn write.
	lb := parse(t, ls[4])
	lb.Prev = zeroHead
	f("chain broken in the last line", join(ls[0], ls[1], ls[2], ls[3], forge(t, testKey, lb)), 5, "is not the hash")
	// Garbage between records, and a torn-looking line with a record after it.
	f("garbage line", join(ls[0], ls[1], []byte("garbage\n"), ls[2], ls[3], ls[4]), 3, "a well-framed record follows at line 4")
	f("partial line 3", join(ls[0], ls[1], ls[2][:20], ls[3], ls[4]), 3, "follows")
}

// writeTestLedgerData returns the file of another writeTestLedger: the same
// batches in a ledger with another id.
func writeTestLedgerData(t *testing.T) []byte {
	t.Helper()
	_, data := writeTestLedger(t)
	return data
}

func withAt(b body, at time.Time) body {
	b.At = at
	return b
}

// TestFlippedByte flips each byte of each record of a ledger with a first
// record, entries, terms and a statement, its '\n' included: Verify and
// Open name the record. A record before the last is corruption. The last
// line of the damaged file Open cannot tell from a torn write, so it may
// truncate it, and then the report no longer extends the head it had.
// That line is the last record, or the last two records when the flip
// turned the '\n' between them into another byte.
func TestFlippedByte(t *testing.T) {
	dir := t.TempDir()
	writeSealedLedger(t, dir, nil)
	data := readLedger(t, dir)
	head := mustVerify(t, dir).Head
	ls := lines(data)
	masks := []byte{0x01, 0x80, 0xff, 0x20}
	d := t.TempDir()
	off := 0
	for n, line := range ls {
		seq := uint64(n + 1)
		prefix := len(fmt.Sprintf(`{"seq":%d`, seq))
		for i := range line {
			mask := masks[(off+i)%len(masks)]
			file := bytes.Clone(data)
			file[off+i] ^= mask
			name := fmt.Sprintf("byte %d of line %d ^ %#x", i, n+1, mask)
			writeLedger(t, d, file)
			_, verr := Verify(d, testKey)
			var re *RecordError
			if !errors.As(verr, &re) || re.Line != n+1 || !strings.Contains(verr.Error(), fmt.Sprintf("line %d (", n+1)) {
				t.Fatalf("unexpected Verify error for %s; got %v; want an error naming line %d", name, verr, n+1)
			}
			if i >= prefix && (re.Seq != seq || !strings.Contains(verr.Error(), fmt.Sprintf("seq %d,", seq))) {
				t.Fatalf("unexpected Verify error for %s; got %v; want an error naming seq %d", name, verr, seq)
			}
			// The last line of the damaged file, and its length.
			// A damaged '\n' between the last two records merges them,
			// and the good record within is found: corruption, not a
			// torn tail, so Open truncates neither.
			last, lastLen := n == len(ls)-1, len(line)
			l, oerr := Open(d, testKey)
			switch {
			case !last:
				if re.Torn || !errors.Is(verr, ErrCorrupt) || !errors.As(oerr, &re) || !errors.Is(oerr, ErrCorrupt) || re.Line != n+1 {
					t.Fatalf("unexpected errors for %s; got %v and Open %v; want corruption at line %d", name, verr, oerr, n+1)
				}
				if !bytes.Equal(readLedger(t, d), file) {
					t.Fatalf("Open changed a corrupt ledger (%s)", name)
				}
			case oerr != nil:
				if !errors.As(oerr, &re) || re.Line != n+1 || !errors.Is(oerr, ErrCorrupt) {
					t.Fatalf("unexpected Open error for %s; got %v; want corruption at line %d", name, oerr, n+1)
				}
			default:
				// Truncated as a torn tail: the last record is gone, and
				// Extends says so.
				recovered := l.Recovered()
				l.Close()
				r := mustVerify(t, d)
				if !errors.Is(verr, ErrTorn) || recovered != int64(lastLen) || r.LastSeq != seq-1 || r.Extends(head) {
					t.Fatalf("unexpected Open for %s: Verify %v, recovered %d bytes, seq %d, extends the old head %t; want a torn tail of %d bytes, seq %d, false",
						name, verr, recovered, r.LastSeq, r.Extends(head), lastLen, seq-1)
				}
			}
		}
		off += len(line)
	}
}

// TestForgedWithAnotherKey edits a record and recomputes its crc32c and the
// chain after it, as anyone can: only the hmac catches it.
func TestForgedWithAnotherKey(t *testing.T) {
	_, data := writeTestLedger(t)
	ls := lines(data)
	edited := parse(t, ls[2])
	edited.Entries[1].Qualified = 1000000 // spring26/leo had 90
	for _, c := range []struct {
		name string
		key  []byte
		from int // the first line forged; line 3 is edited
		line int // the line named; 0 if none
	}{
		{"the ledger key", testKey, 2, 0}, // the forging is right: only the key is missing
		{"another key", otherKey, 2, 3},
		{"another key from the first record", otherKey, 0, 1},
	} {
		forged := slices.Clone(ls)
		forged[2] = forge(t, c.key, edited)
		file := bytes.Join(rechain(t, c.key, forged, c.from), nil)
		if c.line == 0 {
			dir := t.TempDir()
			writeLedger(t, dir, file)
			if r := mustVerify(t, dir); r.Totals[Key{"spring26", "leo"}].Qualified != 1000000 {
				t.Fatalf("unexpected totals of a ledger forged with %s: %v", c.name, r.Totals)
			}
			continue
		}
		re := wantCorrupt(t, "a ledger forged with "+c.name, file, c.line, errForeign)
		if re.Seq != uint64(c.line) {
			t.Fatalf("unexpected seq named for a ledger forged with %s; got %d; want %d", c.name, re.Seq, c.line)
		}
	}
}

// TestExtends removes records from the end, which leaves a valid chain:
// only a head known from before tells.
func TestExtends(t *testing.T) {
	dir := t.TempDir()
	writeSealedLedger(t, dir, nil)
	data := readLedger(t, dir)
	ls := lines(data)
	heads := []string{zeroHead}
	for _, line := range ls {
		heads = append(heads, sha(line))
	}
	r := mustVerify(t, dir)
	for i, h := range heads {
		if !r.Extends(h) {
			t.Fatalf("unexpected Extends for the head after %d records %q; got false; want true", i, h)
		}
	}
	for _, h := range []string{"", "00", strings.Repeat("g", 64), sha([]byte("not a record\n")), sha(ls[1][:len(ls[1])-1]), heads[2] + "00"} {
		if r.Extends(h) {
			t.Fatalf("unexpected Extends for %q; got true; want false", h)
		}
	}
	for removed := 1; removed <= len(ls); removed++ {
		d := t.TempDir()
		kept := len(ls) - removed
		writeLedger(t, d, bytes.Join(ls[:kept], nil))
		r := mustVerify(t, d)
		if r.LastSeq != uint64(kept) || r.Head != heads[kept] {
			t.Fatalf("unexpected report with %d records removed: seq %d, head %s", removed, r.LastSeq, r.Head)
		}
		for i, h := range heads {
			if got, want := r.Extends(h), i <= kept; got != want {
				t.Fatalf("unexpected Extends of the head after %d records with %d removed %q; got %t; want %t", i, removed, h, got, want)
			}
		}
	}

	// Removed, then as many records written again: the same seq, another head.
	d := t.TempDir()
	writeLedger(t, d, bytes.Join(ls[:len(ls)-1], nil))
	l := mustOpen(t, d)
	if !l.Snapshot().Extends(heads[len(ls)-1]) {
		t.Fatalf("unexpected Snapshot().Extends of the head before the last record; got false; want true")
	}
	mustAppend(t, l, Batch{At: t0.Add(27 * time.Hour), Entries: []Entry{{Campaign: "fall", Creator: "new", Qualified: 1, Status: "active"}}})
	s := l.Snapshot()
	mustClose(t, l)
	if r := mustVerify(t, d); r.LastSeq != uint64(len(ls)) || r.Extends(heads[len(ls)]) || s.Extends(heads[len(ls)]) || !r.Extends(heads[len(ls)-1]) {
		t.Fatalf("unexpected Extends after the last record was written again: seq %d, extends the old head %t (Snapshot %t)",
			r.LastSeq, r.Extends(heads[len(ls)]), s.Extends(heads[len(ls)]))
	}
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	if _, err := l.Append(testBatches()[0]); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Init") {
		t.Fatalf("unexpected error for Append before Init; got %v; want ErrInvalid naming Init", err)
	}
	if err := l.Init("", t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unexpected error for Init with an empty store id; got %v; want ErrInvalid", err)
	}
	if got := readLedger(t, dir); len(got) != 0 || l.LastSeq() != 0 {
		t.Fatalf("a refused Append or Init wrote %q", got)
	}
	mustInit(t, l)
	id := l.ID()
	first := readLedger(t, dir)
	want := forge(t, testKey, body{Seq: 1, At: t0, Ledger: id, Store: testStore, Format: Format, Prev: zeroHead})
	if len(id) != 32 || !bytes.Equal(first, want) {
		t.Fatalf("unexpected first record %q (id %q); want %q", first, id, want)
	}
	mustInit(t, l) // the same store: nothing written
	err := l.Init("store-b", t0)
	if !errors.Is(err, ErrOtherStore) || !strings.Contains(err.Error(), testStore) || !strings.Contains(err.Error(), "store-b") || !strings.Contains(err.Error(), id) {
		t.Fatalf("unexpected error for Init with another store; got %v; want ErrOtherStore naming %q, %q and the ledger %q", err, testStore, "store-b", id)
	}
	if got := readLedger(t, dir); !bytes.Equal(got, first) || l.ID() != id {
		t.Fatalf("Init wrote to a bound ledger: %q", got)
	}
	mustAppend(t, l, testBatches()[0])
	mustClose(t, l)
	if err := l.Init(testStore, t0); !errors.Is(err, ErrClosed) {
		t.Fatalf("unexpected error for Init after Close; got %v; want ErrClosed", err)
	}

	// Reopened: still bound to store-a.
	l = mustOpen(t, dir)
	if err := l.Init("store-b", t0.Add(time.Hour)); !errors.Is(err, ErrOtherStore) {
		t.Fatalf("unexpected error for Init with another store after reopening; got %v; want ErrOtherStore", err)
	}
	mustInit(t, l)
	if l.ID() != id || l.LastSeq() != 2 {
		t.Fatalf("unexpected ledger after reopening: id %q, seq %d; want %q, 2", l.ID(), l.LastSeq(), id)
	}
	mustClose(t, l)
	if r := mustVerify(t, dir); r.Ledger != id || r.Store != testStore {
		t.Fatalf("unexpected report: ledger %q, store %q; want %q, %q", r.Ledger, r.Store, id, testStore)
	}

	// Another ledger gets another id.
	l2 := newLedger(t, t.TempDir())
	defer mustClose(t, l2)
	if l2.ID() == id {
		t.Fatalf("unexpected id of a second ledger; got %q, the same as the first", id)
	}
}

func TestKey(t *testing.T) {
	dir, data := writeTestLedger(t)
	// The wrong key: the first record is not ours.
	for _, key := range [][]byte{otherKey, testKey[:len(testKey)-1], append(bytes.Clone(testKey), 'x')} {
		var re *RecordError
		_, err := Verify(dir, key)
		if !errors.As(err, &re) || re.Torn || re.Line != 1 || re.Seq != 1 || re.Reason != errForeign {
			t.Fatalf("unexpected Verify error for key %q; got %v; want an hmac mismatch at line 1", key, err)
		}
		l, err := Open(dir, key)
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &re) || re.Line != 1 || re.Reason != errForeign {
			if err == nil {
				l.Close()
			}
			t.Fatalf("unexpected Open error for key %q; got %v; want corruption at line 1", key, err)
		}
		if got := readLedger(t, dir); !bytes.Equal(got, data) {
			t.Fatalf("Open with key %q changed the ledger", key)
		}
	}
	// No key: refused before anything is created.
	for _, key := range [][]byte{nil, {}} {
		if _, err := Verify(dir, key); err == nil || !strings.Contains(err.Error(), "key") {
			t.Fatalf("unexpected Verify error for key %q; got %v; want an error about the key", key, err)
		}
		d := filepath.Join(t.TempDir(), "ledger")
		if l, err := Open(d, key); err == nil || !strings.Contains(err.Error(), "key") {
			if err == nil {
				l.Close()
			}
			t.Fatalf("unexpected Open error for key %q; got %v; want an error about the key", key, err)
		}
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open without a key created %q: %v", d, err)
		}
	}
	// Open keeps its own copy of the key.
	key := bytes.Clone(testKey)
	l, err := Open(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	key[0] ^= 0xff
	mustAppend(t, l, Batch{At: t0, Entries: []Entry{{Campaign: "c", Creator: "x", Qualified: 1}}})
	mustClose(t, l)
	mustVerify(t, dir)
}

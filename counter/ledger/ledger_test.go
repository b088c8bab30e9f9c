package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	// testKey authenticates the tests' ledgers; otherKey is anyone else's.
	testKey  = []byte("clickgate ledger test key")
	otherKey = []byte("not the ledger key")
	zeroHead = strings.Repeat("0", 64)
)

// testStore is the store id the tests' ledgers are bound to.
const testStore = "store-a"

func mustOpen(t testing.TB, dir string) *Ledger {
	t.Helper()
	l, err := Open(dir, testKey)
	if err != nil {
		t.Fatalf("cannot open ledger: %s", err)
	}
	return l
}

// mustInit binds l to testStore, writing its first record if it is empty.
func mustInit(t testing.TB, l *Ledger) {
	t.Helper()
	if err := l.Init(testStore, t0); err != nil {
		t.Fatalf("cannot init ledger: %s", err)
	}
}

// newLedger opens a new ledger in dir and binds it to testStore.
func newLedger(t testing.TB, dir string) *Ledger {
	t.Helper()
	l := mustOpen(t, dir)
	mustInit(t, l)
	return l
}

func mustClose(t testing.TB, l *Ledger) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("cannot close ledger: %s", err)
	}
}

func mustAppend(t testing.TB, l *Ledger, b Batch) Batch {
	t.Helper()
	got, err := l.Append(b)
	if err != nil {
		t.Fatalf("cannot append batch: %s", err)
	}
	return got
}

func mustVerify(t testing.TB, dir string) Report {
	t.Helper()
	r, err := Verify(dir, testKey)
	if err != nil {
		t.Fatalf("unexpected Verify error: %s", err)
	}
	return r
}

func readLedger(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeLedger(t testing.TB, dir string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// lines splits a ledger file after each '\n'.
func lines(data []byte) [][]byte {
	return bytes.SplitAfter(data, []byte("\n"))[:bytes.Count(data, []byte("\n"))]
}

// forge returns the line of a record with valid framing, authenticated
// with key, but whatever content the test wants.
func forge(t testing.TB, key []byte, b body) []byte {
	t.Helper()
	raw, err := encodeBody(&b)
	if err != nil {
		t.Fatal(err)
	}
	return appendLine(nil, raw, key)
}

// parse returns the body of a well-framed line (with its '\n').
func parse(t testing.TB, line []byte) body {
	t.Helper()
	b, _, _, err := frame(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil {
		t.Fatalf("cannot parse line %q: %s", line, err)
	}
	return *b
}

// rechain returns a copy of ls whose lines from index from on are forged
// again with key, numbered and chained to the line before, as someone who
// edited, inserted or removed a record and wants the chain after it to
// hold would.
func rechain(t testing.TB, key []byte, ls [][]byte, from int) [][]byte {
	t.Helper()
	ls = slices.Clone(ls)
	for i := from; i < len(ls); i++ {
		b := parse(t, ls[i])
		b.Seq = uint64(i + 1)
		b.Prev = zeroHead
		if i > 0 {
			b.Prev = sha(ls[i-1])
		}
		b.Statements = slices.Clone(b.Statements)
		for j := range b.Statements {
			b.Statements[j].LedgerHead = b.Prev
		}
		ls[i] = forge(t, key, b)
	}
	return ls
}

// genesis is the first record of a ledger with a fixed id, for tests that
// need the same bytes every run (Init picks a random id).
func genesis(t testing.TB, key []byte) []byte {
	t.Helper()
	return forge(t, key, body{Seq: 1, At: t0, Ledger: "0123456789abcdef0123456789abcdef", Store: testStore, Prev: zeroHead})
}

func sha(line []byte) string {
	h := sha256.Sum256(line)
	return hex.EncodeToString(h[:])
}

// testBatches raise the totals of a few creators, with ids that stress the
// framing: quotes, backslashes, HTML characters, non-ASCII, and the len key
// itself.
func testBatches() []Batch {
	return []Batch{
		{At: t0, Entries: []Entry{{Campaign: "spring26", Creator: "maya", Qualified: 1200, Signups: 3}, {Campaign: "spring26", Creator: "leo", Qualified: 87, Signups: 0}}},
		{At: t0.Add(time.Minute), Entries: []Entry{{Campaign: "spring26", Creator: "leo", Qualified: 90, Signups: 1}, {Campaign: "fall", Creator: `a"b\c`, Qualified: 5, Signups: 0}}},
		{At: t0.Add(2*time.Minute + 123456789), Entries: []Entry{{Campaign: "fall", Creator: `<&>,"len":1,"crc32c":"00000000"}`, Qualified: 1, Signups: 1}, {Campaign: "spring26", Creator: "ünïcødé 🎉", Qualified: 10, Signups: 0}}},
		{At: t0.Add(3 * time.Minute).In(time.FixedZone("CEST", 2*3600)), Entries: []Entry{{Campaign: "spring26", Creator: "maya", Qualified: 1300, Signups: 3}, {Campaign: "fall", Creator: `a"b\c`, Qualified: 6, Signups: 2}}},
	}
}

func wantTotals(batches []Batch) map[Key]Entry {
	m := make(map[Key]Entry)
	for _, b := range batches {
		for _, e := range b.Entries {
			m[Key{e.Campaign, e.Creator}] = e
		}
	}
	return m
}

// writeTestLedger writes a new ledger in a temp dir: its first record
// (line 1), then testBatches (lines 2 to 5).
func writeTestLedger(t testing.TB) (dir string, data []byte) {
	t.Helper()
	dir = t.TempDir()
	l := newLedger(t, dir)
	for _, b := range testBatches() {
		mustAppend(t, l, b)
	}
	mustClose(t, l)
	return dir, readLedger(t, dir)
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	if l.LastSeq() != 0 || len(l.Totals()) != 0 || l.Recovered() != 0 || l.ID() != "" {
		t.Fatalf("unexpected state of a new ledger: seq %d, totals %v, id %q", l.LastSeq(), l.Totals(), l.ID())
	}
	mustInit(t, l)
	if l.LastSeq() != 1 || len(l.Totals()) != 0 || len(l.ID()) != 32 {
		t.Fatalf("unexpected state of a ledger after Init: seq %d, totals %v, id %q", l.LastSeq(), l.Totals(), l.ID())
	}
	id := l.ID()
	batches := testBatches()
	for i, b := range batches {
		in := slices.Clone(b.Entries)
		got := mustAppend(t, l, b)
		if got.Seq != uint64(i+2) || l.LastSeq() != got.Seq {
			t.Fatalf("unexpected seq of batch %d; got %d (LastSeq %d); want %d", i, got.Seq, l.LastSeq(), i+2)
		}
		if !slices.Equal(b.Entries, in) {
			t.Fatalf("Append changed the caller's entries")
		}
		if !slices.IsSortedFunc(got.Entries, compareEntries) || len(got.Entries) != len(in) {
			t.Fatalf("unexpected entries returned; got %v", got.Entries)
		}
		if !got.At.Equal(b.At) || got.At.Location() != time.UTC {
			t.Fatalf("unexpected At returned; got %s; want %s in UTC", got.At, b.At)
		}
		if len(got.Statements) != 0 {
			t.Fatalf("unexpected statements returned for a batch that seals nothing; got %v", got.Statements)
		}
	}
	want := wantTotals(batches)
	if got := l.Totals(); !maps.Equal(got, want) {
		t.Fatalf("unexpected totals; got %v; want %v", got, want)
	}
	l.Totals()[Key{"spring26", "maya"}] = Entry{} // a copy
	if got := l.Totals(); !maps.Equal(got, want) {
		t.Fatalf("Totals returned the ledger's own map")
	}
	mustClose(t, l)

	r := mustVerify(t, dir)
	if r.Records != 5 || r.LastSeq != 5 || !maps.Equal(r.Totals, want) || r.Ledger != id || r.Store != testStore {
		t.Fatalf("unexpected report %+v", r)
	}

	// Reopen continues the chain.
	l = mustOpen(t, dir)
	if l.LastSeq() != 5 || l.Recovered() != 0 || !maps.Equal(l.Totals(), want) || l.ID() != id {
		t.Fatalf("unexpected state after reopen: seq %d, recovered %d, totals %v, id %q", l.LastSeq(), l.Recovered(), l.Totals(), l.ID())
	}
	before := readLedger(t, dir)
	mustInit(t, l) // bound already: writes nothing
	got := mustAppend(t, l, Batch{At: t0.Add(time.Hour), Entries: []Entry{{Campaign: "spring26", Creator: "leo", Qualified: 100, Signups: 1}}})
	mustClose(t, l)
	if got.Seq != 6 {
		t.Fatalf("unexpected seq after reopen; got %d; want 6", got.Seq)
	}
	after := readLedger(t, dir)
	if !bytes.HasPrefix(after, before) {
		t.Fatalf("Append rewrote earlier records")
	}
	last := after[len(before):]
	if !bytes.Contains(last, []byte(`"prev":"`+sha(lines(before)[4])+`"`)) {
		t.Fatalf("record 6 is not chained to record 5: %s", last)
	}
	r = mustVerify(t, dir)
	if r.Records != 6 || r.LastSeq != 6 || r.Head != sha(last) {
		t.Fatalf("unexpected report %+v; want 6 records, head %s", r, sha(last))
	}
}

func TestDeterministic(t *testing.T) {
	_, a := writeTestLedger(t)
	// The same first record and batches, with a reopen after each and
	// entries in another order.
	dir := t.TempDir()
	writeLedger(t, dir, lines(a)[0])
	for _, b := range testBatches() {
		l := mustOpen(t, dir)
		mustInit(t, l)
		slices.Reverse(b.Entries)
		mustAppend(t, l, b)
		mustClose(t, l)
	}
	if b := readLedger(t, dir); !bytes.Equal(a, b) {
		t.Fatalf("the same batches gave different files:\n%s\n%s", a, b)
	}
}

func TestEmptyBatch(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	defer mustClose(t, l)
	if got := mustAppend(t, l, Batch{At: t0}); got.Seq != 0 {
		t.Fatalf("unexpected seq of an empty batch on an empty ledger; got %d; want 0", got.Seq)
	}
	if got := readLedger(t, dir); len(got) != 0 {
		t.Fatalf("an empty batch wrote to an empty ledger: %q", got)
	}
	mustInit(t, l)
	if got := mustAppend(t, l, Batch{At: t0}); got.Seq != 1 {
		t.Fatalf("unexpected seq of an empty batch after Init; got %d; want 1", got.Seq)
	}
	mustAppend(t, l, testBatches()[0])
	before := readLedger(t, dir)
	for _, b := range []Batch{{At: t0, Entries: []Entry{}}, {At: t0, Seal: []string{}}, {At: t0, Campaigns: []Terms{}}} {
		if got := mustAppend(t, l, b); got.Seq != 2 {
			t.Fatalf("unexpected seq of empty batch %+v; got %d; want 2", b, got.Seq)
		}
	}
	if after := readLedger(t, dir); !bytes.Equal(before, after) || l.LastSeq() != 2 {
		t.Fatalf("an empty batch wrote something")
	}
}

func TestRefused(t *testing.T) {
	dir := t.TempDir()
	l := newLedger(t, dir)
	defer mustClose(t, l)
	mustAppend(t, l, Batch{At: t0, Entries: []Entry{{Campaign: "c", Creator: "maya", Qualified: 10, Signups: 2}}})
	before := readLedger(t, dir)
	long := strings.Repeat("x", MaxIDLen+1)
	f := func(name string, b Batch) {
		t.Helper()
		_, err := l.Append(b)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("unexpected error for %s; got %v; want ErrInvalid", name, err)
		}
		if after := readLedger(t, dir); !bytes.Equal(before, after) || l.LastSeq() != 2 {
			t.Fatalf("refused batch %s wrote something", name)
		}
	}
	e := func(campaign, creator string, q, s int64) Batch {
		return Batch{At: t0, Entries: []Entry{{Campaign: "c", Creator: "leo", Qualified: 1, Signups: 0}, {Campaign: campaign, Creator: creator, Qualified: q, Signups: s}}}
	}
	f("qualified decreasing", e("c", "maya", 9, 2))
	f("signups decreasing", e("c", "maya", 11, 1))
	f("negative qualified", e("c", "new", -1, 0))
	f("negative signups", e("c", "new", 0, -1))
	f("empty campaign", e("", "new", 1, 0))
	f("empty creator", e("c", "", 1, 0))
	f("newline in creator", e("c", "a\nb", 1, 0))
	f("carriage return in campaign", e("c\r", "new", 1, 0))
	f("NUL in creator", e("c", "a\x00", 1, 0))
	f("DEL in creator", e("c", "a\x7f", 1, 0))
	f("C1 control in creator", e("c", "a\u0085", 1, 0))
	f("invalid UTF-8", e("c", "a\xff", 1, 0))
	f("long creator", e("c", long, 1, 0))
	f("creator twice", e("c", "leo", 2, 0))
	f("zero time", Batch{Entries: []Entry{{Campaign: "c", Creator: "new", Qualified: 1, Signups: 0}}})
	f("time out of range", Batch{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Entries: []Entry{{Campaign: "c", Creator: "new", Qualified: 1, Signups: 0}}})
	f("seal with entries", Batch{At: t0, Entries: []Entry{{Campaign: "c", Creator: "new", Qualified: 1}}, Seal: []string{"c"}})
	f("seal of a campaign without terms", Batch{At: t0, Seal: []string{"c"}})

	// Still usable; equal totals are not a decrease.
	if got := mustAppend(t, l, e("c", "maya", 10, 2)); got.Seq != 3 {
		t.Fatalf("unexpected seq after refused batches; got %d; want 3", got.Seq)
	}
	mustVerify(t, dir)
}

func TestTornTail(t *testing.T) {
	_, data := writeTestLedger(t)
	ls := lines(data)
	last := ls[len(ls)-1]
	good := data[:len(data)-len(last)]
	batches := testBatches()
	for cut := 1; cut <= len(last); cut++ {
		dir := t.TempDir()
		writeLedger(t, dir, data[:len(data)-cut])
		_, err := Verify(dir, testKey)
		var re *RecordError
		if cut < len(last) {
			if !errors.As(err, &re) || !re.Torn || !errors.Is(err, ErrTorn) || re.Line != 5 || re.Offset != int64(len(good)) {
				t.Fatalf("unexpected Verify error with %d bytes cut; got %v; want a torn tail at line 5", cut, err)
			}
		} else if err != nil {
			t.Fatalf("unexpected Verify error with the whole record cut: %s", err)
		}

		l := mustOpen(t, dir)
		if got, want := l.Recovered(), int64(len(last)-cut); got != want {
			t.Fatalf("unexpected Recovered with %d bytes cut; got %d; want %d", cut, got, want)
		}
		if l.LastSeq() != 4 || !maps.Equal(l.Totals(), wantTotals(batches[:3])) {
			t.Fatalf("unexpected state with %d bytes cut: seq %d", cut, l.LastSeq())
		}
		if got := readLedger(t, dir); !bytes.Equal(got, good) {
			t.Fatalf("unexpected file after recovery with %d bytes cut: %q", cut, got)
		}
		if r := mustVerify(t, dir); r.LastSeq != 4 {
			t.Fatalf("unexpected LastSeq after repair; got %d; want 4", r.LastSeq)
		}
		// The flusher writes the lost batch again, once.
		if got := mustAppend(t, l, batches[3]); got.Seq != 5 {
			t.Fatalf("unexpected seq of the rewritten batch; got %d; want 5", got.Seq)
		}
		mustClose(t, l)
		if got := readLedger(t, dir); !bytes.Equal(got, data) {
			t.Fatalf("unexpected file after rewriting the batch with %d bytes cut:\n%s", cut, got)
		}
	}
}

// TestTornTailShapes covers what out-of-order page writes can leave: zeros,
// a damaged but complete last line, garbage lines after it.
func TestTornTailShapes(t *testing.T) {
	_, data := writeTestLedger(t)
	ls := lines(data)
	last := ls[len(ls)-1]
	good := data[:len(data)-len(last)]
	damaged := slices.Clone(last)
	for i := 10; i < 40; i++ {
		damaged[i] = 0
	}
	f := func(name string, good, file []byte) {
		t.Helper()
		dir := t.TempDir()
		writeLedger(t, dir, file)
		if _, err := Verify(dir, testKey); !errors.Is(err, ErrTorn) {
			t.Fatalf("unexpected Verify error for %s; got %v; want a torn tail", name, err)
		}
		l := mustOpen(t, dir)
		defer mustClose(t, l)
		if got := readLedger(t, dir); !bytes.Equal(got, good) || l.Recovered() != int64(len(file)-len(good)) {
			t.Fatalf("unexpected recovery for %s: recovered %d bytes, file %q", name, l.Recovered(), got)
		}
		mustVerify(t, dir)
	}
	f("zeros", good, append(slices.Clone(good), make([]byte, 4096)...))
	f("record then zeros", data, append(slices.Clone(data), make([]byte, 100)...))
	f("damaged last line", good, append(slices.Clone(good), damaged...))
	f("damaged last line and garbage lines", good, append(append(slices.Clone(good), damaged...), "x\n\n{}\n{\"seq\":5\n"...))
	f("blank line", data, append(slices.Clone(data), '\n'))
	f("partial record then newline", good, append(slices.Clone(good), append(slices.Clone(last[:50]), '\n')...))
	f("torn first record", nil, ls[0][:len(ls[0])-1])
	f("damaged first record", nil, append(slices.Clone(ls[0][:20]), make([]byte, 20)...))
}

// TestBroken: a failed write or fsync breaks the ledger. Its file is never
// fsynced again with the failed record in it: each later Append or Init
// first cuts the file back to the last good record and fsyncs that, and
// writes nothing while that fails. Once it works, the ledger goes on in
// place, with no trace of the failed record.
func TestBroken(t *testing.T) {
	t.Run("fsync", func(t *testing.T) {
		dir := t.TempDir()
		l := newLedger(t, dir)
		batches := testBatches()
		mustAppend(t, l, batches[0])
		before := readLedger(t, dir)
		failing := true
		var whole []bool // at each fsync, whether the file is as before the failed record
		errEIO := errors.New("input/output error")
		l.sync = func(f *os.File) error {
			whole = append(whole, bytes.Equal(readLedger(t, dir), before))
			if failing {
				return errEIO
			}
			return f.Sync()
		}
		_, err := l.Append(batches[1])
		if !errors.Is(err, ErrBroken) || !errors.Is(err, errEIO) {
			t.Fatalf("unexpected error when fsync fails; got %v; want ErrBroken wrapping the cause", err)
		}
		for _, b := range []Batch{batches[1], batches[2], {At: t0}} {
			if _, err := l.Append(b); !errors.Is(err, ErrBroken) || !errors.Is(err, errEIO) {
				t.Fatalf("unexpected error while the repair's fsync fails; got %v; want ErrBroken", err)
			}
		}
		if err := l.Init(testStore, t0); !errors.Is(err, ErrBroken) {
			t.Fatalf("unexpected Init error while the repair's fsync fails; got %v; want ErrBroken", err)
		}
		if !slices.Equal(whole, []bool{false, true, true, true, true}) || l.LastSeq() != 2 || !maps.Equal(l.Totals(), wantTotals(batches[:1])) {
			t.Fatalf("unexpected broken ledger: fsyncs of a file as before the failed record %v, seq %d; want false, then 4 repairs true, and seq 2", whole, l.LastSeq())
		}
		failing = false
		if got := mustAppend(t, l, batches[1]); got.Seq != 3 {
			t.Fatalf("unexpected seq after the repair; got %d; want 3", got.Seq)
		}
		mustAppend(t, l, batches[2])
		if !maps.Equal(l.Totals(), wantTotals(batches[:3])) {
			t.Fatalf("unexpected totals after the repair; got %v", l.Totals())
		}
		mustClose(t, l)
		l = mustOpen(t, dir)
		defer mustClose(t, l)
		if l.LastSeq() != 4 || l.Recovered() != 0 || !maps.Equal(l.Totals(), wantTotals(batches[:3])) {
			t.Fatalf("unexpected reopen of a repaired ledger: seq %d, recovered %d; want 4, 0", l.LastSeq(), l.Recovered())
		}
		mustVerify(t, dir)
	})
	t.Run("write", func(t *testing.T) {
		dir := t.TempDir()
		l := newLedger(t, dir)
		batches := testBatches()
		mustAppend(t, l, batches[0])
		before := readLedger(t, dir)
		errNoSpace := errors.New("no space left on device")
		l.write = func(f *os.File, p []byte) (int, error) {
			n, _ := f.Write(p[:len(p)/2])
			return n, errNoSpace
		}
		for range 2 {
			if _, err := l.Append(batches[1]); !errors.Is(err, ErrBroken) || !errors.Is(err, errNoSpace) {
				t.Fatalf("unexpected error when write fails; got %v; want ErrBroken wrapping the cause", err)
			}
		}
		l.write = (*os.File).Write
		if got := mustAppend(t, l, batches[1]); got.Seq != 3 {
			t.Fatalf("unexpected seq after the repair; got %d; want 3", got.Seq)
		}
		if after := readLedger(t, dir); !bytes.HasPrefix(after, before) || bytes.Count(after, []byte("\n")) != bytes.Count(before, []byte("\n"))+1 {
			t.Fatalf("unexpected ledger after a repair: the half-written records were not cut off\n%s", after)
		}
		mustClose(t, l)
		l = mustOpen(t, dir)
		defer mustClose(t, l)
		if l.LastSeq() != 3 || l.Recovered() != 0 {
			t.Fatalf("unexpected reopen of a repaired ledger: seq %d, recovered %d; want 3, 0", l.LastSeq(), l.Recovered())
		}
		mustVerify(t, dir)
	})
	t.Run("short write", func(t *testing.T) {
		l := newLedger(t, t.TempDir())
		defer mustClose(t, l)
		l.write = func(f *os.File, p []byte) (int, error) { return f.Write(p[:1]) }
		if _, err := l.Append(testBatches()[0]); !errors.Is(err, ErrBroken) {
			t.Fatalf("unexpected error after a short write; got %v; want ErrBroken", err)
		}
	})
	t.Run("first record", func(t *testing.T) {
		dir := t.TempDir()
		l := mustOpen(t, dir)
		l.write = func(f *os.File, p []byte) (int, error) { return f.Write(p[:1]) }
		if err := l.Init(testStore, t0); !errors.Is(err, ErrBroken) || l.ID() != "" {
			t.Fatalf("unexpected Init error after a short write; got %v (id %q); want ErrBroken", err, l.ID())
		}
		mustClose(t, l)
		// The torn first record goes; Init writes it again.
		l = newLedger(t, dir)
		if l.Recovered() != 1 || l.LastSeq() != 1 {
			t.Fatalf("unexpected recovery of a torn first record: recovered %d, seq %d; want 1, 1", l.Recovered(), l.LastSeq())
		}
		mustClose(t, l)
		mustVerify(t, dir)
		// So does a repair in place.
		dir = t.TempDir()
		l = mustOpen(t, dir)
		defer mustClose(t, l)
		l.write = func(f *os.File, p []byte) (int, error) { return f.Write(p[:1]) }
		if err := l.Init(testStore, t0); !errors.Is(err, ErrBroken) {
			t.Fatalf("unexpected Init error after a short write; got %v; want ErrBroken", err)
		}
		l.write = (*os.File).Write
		if err := l.Init(testStore, t0); err != nil || l.LastSeq() != 1 {
			t.Fatalf("unexpected Init of a repaired ledger; got %v, seq %d; want seq 1", err, l.LastSeq())
		}
		mustVerify(t, dir)
	})
}

func TestLock(t *testing.T) {
	dir, _ := writeTestLedger(t)
	l := mustOpen(t, dir)
	_, err := Open(dir, testKey)
	if !errors.Is(err, ErrInUse) || err.Error() != fmt.Sprintf("ledger %q is in use by another process", dir) {
		t.Fatalf("unexpected error for a second Open; got %v; want ErrInUse", err)
	}
	if r := mustVerify(t, dir); r.LastSeq != 5 {
		t.Fatalf("unexpected Verify of a locked ledger: %+v", r)
	}
	mustClose(t, l)
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("unexpected error for a second Close; got %v; want ErrClosed", err)
	}
	if _, err := l.Append(testBatches()[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("unexpected error for Append after Close; got %v; want ErrClosed", err)
	}
	mustClose(t, mustOpen(t, dir))
}

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "ledger")
	l := mustOpen(t, dir)
	mustClose(t, l)
	for _, c := range []struct {
		path string
		mode fs.FileMode
	}{{dir, fs.ModeDir | 0o700}, {filepath.Join(dir, FileName), 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Fatalf("unexpected mode of %q; got %v; want %v", c.path, fi.Mode(), c.mode)
		}
	}
	if r := mustVerify(t, dir); r.Records != 0 || r.LastSeq != 0 || r.Head != zeroHead || r.Ledger != "" || r.Store != "" || !r.Extends(zeroHead) {
		t.Fatalf("unexpected report of an empty ledger: %+v", r)
	}
	if _, err := Verify(filepath.Join(dir, "missing"), testKey); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unexpected Verify error for a missing ledger; got %v; want ErrNotExist", err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l := newLedger(t, dir)
	const writers, batches = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range batches {
				b := Batch{At: t0, Entries: []Entry{{Campaign: "c", Creator: fmt.Sprint("creator", w), Qualified: int64(i + 1)}}}
				if _, err := l.Append(b); err != nil {
					t.Errorf("cannot append: %s", err)
					return
				}
				l.Totals()
				l.LastSeq()
			}
		})
	}
	wg.Wait()
	mustClose(t, l)
	r := mustVerify(t, dir)
	if r.Records != writers*batches+1 || len(r.Totals) != writers {
		t.Fatalf("unexpected report after concurrent appends: %d records, %d creators", r.Records, len(r.Totals))
	}
}

func TestTermsAndDetails(t *testing.T) {
	dir := t.TempDir()
	l := newLedger(t, dir)
	terms := Terms{ID: "spring26", Name: "Spring", SignupRewardCents: 10000, VisitBlockSize: 1000, VisitBlockRewardCents: 10000, CapCents: 2000000, EligibleCountries: []string{"US"}}
	maya := Entry{Campaign: "spring26", Creator: "maya", Qualified: 10, Handle: "@maya", Country: "US", Status: "active"}
	if _, err := l.Append(Batch{At: t0, Entries: []Entry{maya}, Campaigns: []Terms{terms}}); err != nil {
		t.Fatal(err)
	}
	// A batch may change only terms, or only a creator's details.
	terms.CapCents = 500000
	if _, err := l.Append(Batch{At: t0, Campaigns: []Terms{terms}}); err != nil {
		t.Fatal(err)
	}
	maya.Status = "suspended"
	if _, err := l.Append(Batch{At: t0, Entries: []Entry{maya}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Terms{{ID: "x", VisitBlockSize: 0}, {ID: "", VisitBlockSize: 1}, {ID: "x", VisitBlockSize: 1, CapCents: -1}} {
		if _, err := l.Append(Batch{At: t0, Campaigns: []Terms{bad}}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unexpected error for terms %+v; got %v; want ErrInvalid", bad, err)
		}
	}
	l.Close()
	rep, err := Verify(dir, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 4 || rep.Campaigns["spring26"].CapCents != 500000 || rep.Totals[Key{"spring26", "maya"}] != maya {
		t.Fatalf("unexpected report: %+v", rep)
	}
	l, err = Open(dir, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Snapshot().Campaigns["spring26"]; got.CapCents != 500000 || got.EligibleCountries[0] != "US" {
		t.Fatalf("unexpected terms after reopen: %+v", got)
	}
}

package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

var t0 = time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)

func mustOpen(t testing.TB, dir string) *Ledger {
	t.Helper()
	l, err := Open(dir)
	if err != nil {
		t.Fatalf("cannot open ledger: %s", err)
	}
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
	r, err := Verify(dir)
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

// forge returns the line of a record with valid framing but whatever
// content the test wants.
func forge(t *testing.T, b body) []byte {
	t.Helper()
	raw, err := encodeBody(&b)
	if err != nil {
		t.Fatal(err)
	}
	return appendLine(nil, raw)
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

// writeTestLedger writes testBatches into a new ledger in a temp dir.
func writeTestLedger(t testing.TB) (dir string, data []byte) {
	t.Helper()
	dir = t.TempDir()
	l := mustOpen(t, dir)
	for _, b := range testBatches() {
		mustAppend(t, l, b)
	}
	mustClose(t, l)
	return dir, readLedger(t, dir)
}

// TestFormatExample keeps the example in the package doc true.
func TestFormatExample(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for line := range strings.Lines(string(doc)) {
		if s, ok := strings.CutPrefix(line, "//\t{\"seq\":"); ok {
			want = append(want, `{"seq":`+s)
		}
	}
	if len(want) != 2 {
		t.Fatalf("unexpected number of example lines in doc.go; got %d; want 2", len(want))
	}
	dir := t.TempDir()
	l := mustOpen(t, dir)
	mustAppend(t, l, Batch{At: t0, Entries: []Entry{{Campaign: "spring26", Creator: "maya", Qualified: 1200, Signups: 3}, {Campaign: "spring26", Creator: "leo", Qualified: 87, Signups: 0}}})
	mustAppend(t, l, Batch{At: t0.Add(time.Minute), Entries: []Entry{{Campaign: "spring26", Creator: "leo", Qualified: 90, Signups: 1}}})
	mustClose(t, l)
	if got := string(readLedger(t, dir)); got != strings.Join(want, "") {
		t.Fatalf("unexpected file for the doc example; got\n%s\nwant\n%s", got, strings.Join(want, ""))
	}
}

// TestIndependentCheck checks a ledger with the rules of the package doc
// only, the way a finance tool would, sharing no code with the package.
func TestIndependentCheck(t *testing.T) {
	dir, data := writeTestLedger(t)
	prev := strings.Repeat("0", 64)
	totals := map[[2]string][2]int64{}
	for n, line := range lines(data) {
		var r struct {
			Seq     uint64 `json:"seq"`
			Entries []struct {
				Campaign, Creator  string
				Qualified, Signups int64
			} `json:"entries"`
			Prev   string `json:"prev"`
			Len    int    `json:"len"`
			CRC32C string `json:"crc32c"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("line %d: %s", n+1, err)
		}
		body := append(slices.Clip(line[:r.Len-1]), '}')
		trailer := fmt.Sprintf(`,"len":%d,"crc32c":"%s"}`+"\n", r.Len, r.CRC32C)
		if string(line[r.Len-1:]) != trailer {
			t.Fatalf("line %d: unexpected trailer %q; want %q", n+1, line[r.Len-1:], trailer)
		}
		if got := fmt.Sprintf("%08x", crc32cBitwise(body)); got != r.CRC32C {
			t.Fatalf("line %d: unexpected crc32c; got %s; want %s", n+1, got, r.CRC32C)
		}
		if r.Seq != uint64(n+1) || r.Prev != prev {
			t.Fatalf("line %d: unexpected seq %d or prev %s; want %d, %s", n+1, r.Seq, r.Prev, n+1, prev)
		}
		for _, e := range r.Entries {
			k := [2]string{e.Campaign, e.Creator}
			if old := totals[k]; e.Qualified < old[0] || e.Signups < old[1] {
				t.Fatalf("line %d: totals of %q decrease", n+1, k)
			}
			totals[k] = [2]int64{e.Qualified, e.Signups}
		}
		prev = sha(line)
	}
	r := mustVerify(t, dir)
	if r.Head != prev || r.Records != len(testBatches()) || len(r.Totals) != len(totals) {
		t.Fatalf("unexpected report %+v; want head %s, %d records, %d creators", r, prev, len(testBatches()), len(totals))
	}
}

// crc32cBitwise is CRC-32C as the package doc defines it.
func crc32cBitwise(p []byte) uint32 {
	c := ^uint32(0)
	for _, x := range p {
		c ^= uint32(x)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0x82F63B78
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	if l.LastSeq() != 0 || len(l.Totals()) != 0 || l.Recovered() != 0 {
		t.Fatalf("unexpected state of a new ledger: seq %d, totals %v", l.LastSeq(), l.Totals())
	}
	batches := testBatches()
	for i, b := range batches {
		in := slices.Clone(b.Entries)
		got := mustAppend(t, l, b)
		if got.Seq != uint64(i+1) || l.LastSeq() != got.Seq {
			t.Fatalf("unexpected seq of batch %d; got %d (LastSeq %d); want %d", i, got.Seq, l.LastSeq(), i+1)
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
	if r.Records != 4 || r.LastSeq != 4 || !maps.Equal(r.Totals, want) {
		t.Fatalf("unexpected report %+v", r)
	}

	// Reopen continues the chain.
	l = mustOpen(t, dir)
	if l.LastSeq() != 4 || l.Recovered() != 0 || !maps.Equal(l.Totals(), want) {
		t.Fatalf("unexpected state after reopen: seq %d, recovered %d, totals %v", l.LastSeq(), l.Recovered(), l.Totals())
	}
	before := readLedger(t, dir)
	got := mustAppend(t, l, Batch{At: t0.Add(time.Hour), Entries: []Entry{{Campaign: "spring26", Creator: "leo", Qualified: 100, Signups: 1}}})
	mustClose(t, l)
	if got.Seq != 5 {
		t.Fatalf("unexpected seq after reopen; got %d; want 5", got.Seq)
	}
	after := readLedger(t, dir)
	if !bytes.HasPrefix(after, before) {
		t.Fatalf("Append rewrote earlier records")
	}
	last := after[len(before):]
	if !bytes.Contains(last, []byte(`"prev":"`+sha(lines(before)[3])+`"`)) {
		t.Fatalf("record 5 is not chained to record 4: %s", last)
	}
	r = mustVerify(t, dir)
	if r.Records != 5 || r.LastSeq != 5 || r.Head != sha(last) {
		t.Fatalf("unexpected report %+v; want 5 records, head %s", r, sha(last))
	}
}

func TestDeterministic(t *testing.T) {
	_, a := writeTestLedger(t)
	// The same batches, with a reopen after each and entries in another order.
	dir := t.TempDir()
	for _, b := range testBatches() {
		l := mustOpen(t, dir)
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
	mustAppend(t, l, testBatches()[0])
	before := readLedger(t, dir)
	if got := mustAppend(t, l, Batch{At: t0, Entries: []Entry{}}); got.Seq != 1 {
		t.Fatalf("unexpected seq of an empty batch; got %d; want 1", got.Seq)
	}
	if after := readLedger(t, dir); !bytes.Equal(before, after) || l.LastSeq() != 1 {
		t.Fatalf("an empty batch wrote something")
	}
}

func TestRefused(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
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
		if after := readLedger(t, dir); !bytes.Equal(before, after) || l.LastSeq() != 1 {
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

	// Still usable; equal totals are not a decrease.
	if got := mustAppend(t, l, e("c", "maya", 10, 2)); got.Seq != 2 {
		t.Fatalf("unexpected seq after refused batches; got %d; want 2", got.Seq)
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
		_, err := Verify(dir)
		var re *RecordError
		if cut < len(last) {
			if !errors.As(err, &re) || !re.Torn || !errors.Is(err, ErrTorn) || re.Line != 4 || re.Offset != int64(len(good)) {
				t.Fatalf("unexpected Verify error with %d bytes cut; got %v; want a torn tail at line 4", cut, err)
			}
		} else if err != nil {
			t.Fatalf("unexpected Verify error with the whole record cut: %s", err)
		}

		l := mustOpen(t, dir)
		if got, want := l.Recovered(), int64(len(last)-cut); got != want {
			t.Fatalf("unexpected Recovered with %d bytes cut; got %d; want %d", cut, got, want)
		}
		if l.LastSeq() != 3 || !maps.Equal(l.Totals(), wantTotals(batches[:3])) {
			t.Fatalf("unexpected state with %d bytes cut: seq %d", cut, l.LastSeq())
		}
		if got := readLedger(t, dir); !bytes.Equal(got, good) {
			t.Fatalf("unexpected file after recovery with %d bytes cut: %q", cut, got)
		}
		if r := mustVerify(t, dir); r.LastSeq != 3 {
			t.Fatalf("unexpected LastSeq after repair; got %d; want 3", r.LastSeq)
		}
		// The flusher writes the lost batch again, once.
		if got := mustAppend(t, l, batches[3]); got.Seq != 4 {
			t.Fatalf("unexpected seq of the rewritten batch; got %d; want 4", got.Seq)
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
		if _, err := Verify(dir); !errors.Is(err, ErrTorn) {
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
}

func TestCorruption(t *testing.T) {
	_, data := writeTestLedger(t)
	ls := lines(data)
	off2 := len(ls[0])
	f := func(name string, file []byte, line int, reason string) {
		t.Helper()
		dir := t.TempDir()
		writeLedger(t, dir, file)
		for _, op := range []string{"Verify", "Open"} {
			var err error
			if op == "Verify" {
				_, err = Verify(dir)
			} else {
				var l *Ledger
				if l, err = Open(dir); err == nil {
					l.Close()
				}
			}
			var re *RecordError
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
	}
	// Every single-byte flip in a middle record, its '\n' included.
	for i := range ls[1] {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			file := slices.Clone(data)
			file[off2+i] ^= mask
			f(fmt.Sprintf("byte %d of line 2 ^ %#x", i, mask), file, 2, "")
		}
	}
	var rec body
	b, raw, err := frame(ls[1][:len(ls[1])-1])
	if err != nil || checkBody(b, raw) != nil {
		t.Fatalf("cannot parse line 2: %v", err)
	}
	rec = *b
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }

	bad := rec
	bad.Prev = strings.Repeat("ab", 32)
	f("chain broken in line 2", join(ls[0], forge(t, bad), ls[2], ls[3]), 2, "is not the hash of the previous record")
	f("line 3 after a re-framed line 2", join(ls[0], forge(t, withAt(rec, t0)), ls[2], ls[3]), 3, "is not the hash of the previous record")
	f("lines 2 and 3 swapped", join(ls[0], ls[2], ls[1], ls[3]), 2, "seq 3 follows seq 1")
	f("line 2 twice", join(ls[0], ls[1], ls[1], ls[2], ls[3]), 3, "seq 2 follows seq 2")
	f("line 1 missing", join(ls[1], ls[2], ls[3]), 1, "seq 2 follows seq 0")

	bad = rec
	bad.Entries = slices.Clone(rec.Entries)
	bad.Entries[1].Qualified = 1 // spring26/leo had 87
	f("decreasing totals", join(ls[0], forge(t, bad), ls[2], ls[3]), 2, "would decrease")

	// Well-framed but not what Append writes.
	spaced := append(slices.Clip(raw[:len(raw)-1]), " }"...)
	f("not canonical", join(ls[0], appendLine(nil, spaced), ls[2], ls[3]), 2, "canonical")
	unsorted := rec
	unsorted.Entries = slices.Clone(rec.Entries)
	slices.Reverse(unsorted.Entries)
	f("unsorted entries", join(ls[0], forge(t, unsorted), ls[2], ls[3]), 2, "not sorted")
	extra := append(slices.Clip(raw[:len(raw)-1]), `,"note":"x"}`...)
	f("unknown member", join(ls[0], appendLine(nil, extra), ls[2], ls[3]), 2, "unknown field")

	// A well-framed last record that breaks the chain is not a torn write.
	last := lines(data)[3]
	lb, _, _ := frame(last[:len(last)-1])
	lb.Prev = strings.Repeat("0", 64)
	f("chain broken in the last line", join(ls[0], ls[1], ls[2], forge(t, *lb)), 4, "is not the hash")
	// Garbage between records, and a torn-looking line with a record after it.
	f("garbage line", join(ls[0], []byte("garbage\n"), ls[1], ls[2], ls[3]), 2, "a well-framed record follows at line 3")
	f("partial line 2", join(ls[0], ls[1][:20], ls[2], ls[3]), 2, "follows")
}

func withAt(b body, at time.Time) body {
	b.At = at
	return b
}

func TestBroken(t *testing.T) {
	t.Run("fsync", func(t *testing.T) {
		dir := t.TempDir()
		l := mustOpen(t, dir)
		batches := testBatches()
		mustAppend(t, l, batches[0])
		syncs := 0
		errEIO := errors.New("input/output error")
		l.sync = func(*os.File) error { syncs++; return errEIO }
		_, err := l.Append(batches[1])
		if !errors.Is(err, ErrBroken) || !errors.Is(err, errEIO) {
			t.Fatalf("unexpected error when fsync fails; got %v; want ErrBroken wrapping the cause", err)
		}
		l.sync = (*os.File).Sync // a retry would now succeed: it must not happen
		for _, b := range []Batch{batches[1], batches[2], {At: t0}} {
			if _, err := l.Append(b); !errors.Is(err, ErrBroken) {
				t.Fatalf("unexpected error after a failed fsync; got %v; want ErrBroken", err)
			}
		}
		if syncs != 1 || l.LastSeq() != 1 || !maps.Equal(l.Totals(), wantTotals(batches[:1])) {
			t.Fatalf("unexpected state of a broken ledger: %d fsyncs, seq %d", syncs, l.LastSeq())
		}
		mustClose(t, l)
		// The record reached the page cache, so a restart finds it: the
		// flusher must read LastSeq and Totals after an error.
		l = mustOpen(t, dir)
		defer mustClose(t, l)
		if l.LastSeq() != 2 {
			t.Fatalf("unexpected seq after restart; got %d; want 2", l.LastSeq())
		}
		mustAppend(t, l, batches[2])
		mustVerify(t, dir)
	})
	t.Run("write", func(t *testing.T) {
		dir := t.TempDir()
		l := mustOpen(t, dir)
		batches := testBatches()
		mustAppend(t, l, batches[0])
		before := readLedger(t, dir)
		errNoSpace := errors.New("no space left on device")
		l.write = func(f *os.File, p []byte) (int, error) {
			n, _ := f.Write(p[:len(p)/2])
			return n, errNoSpace
		}
		if _, err := l.Append(batches[1]); !errors.Is(err, ErrBroken) || !errors.Is(err, errNoSpace) {
			t.Fatalf("unexpected error when write fails; got %v; want ErrBroken wrapping the cause", err)
		}
		l.write = (*os.File).Write
		if _, err := l.Append(batches[1]); !errors.Is(err, ErrBroken) {
			t.Fatalf("unexpected error after a failed write; got %v; want ErrBroken", err)
		}
		mustClose(t, l)
		l = mustOpen(t, dir)
		defer mustClose(t, l)
		if l.LastSeq() != 1 || l.Recovered() == 0 || !bytes.Equal(readLedger(t, dir), before) {
			t.Fatalf("unexpected recovery after a failed write: seq %d, recovered %d", l.LastSeq(), l.Recovered())
		}
		if got := mustAppend(t, l, batches[1]); got.Seq != 2 {
			t.Fatalf("unexpected seq after recovery; got %d; want 2", got.Seq)
		}
		mustVerify(t, dir)
	})
	t.Run("short write", func(t *testing.T) {
		l := mustOpen(t, t.TempDir())
		defer mustClose(t, l)
		l.write = func(f *os.File, p []byte) (int, error) { return f.Write(p[:1]) }
		if _, err := l.Append(testBatches()[0]); !errors.Is(err, ErrBroken) {
			t.Fatalf("unexpected error after a short write; got %v; want ErrBroken", err)
		}
	})
}

func TestLock(t *testing.T) {
	dir, _ := writeTestLedger(t)
	l := mustOpen(t, dir)
	_, err := Open(dir)
	if !errors.Is(err, ErrInUse) || err.Error() != fmt.Sprintf("ledger %q is in use by another process", dir) {
		t.Fatalf("unexpected error for a second Open; got %v; want ErrInUse", err)
	}
	if r := mustVerify(t, dir); r.LastSeq != 4 {
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
	if r := mustVerify(t, dir); r.Records != 0 || r.LastSeq != 0 || r.Head != strings.Repeat("0", 64) {
		t.Fatalf("unexpected report of an empty ledger: %+v", r)
	}
	if _, err := Verify(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unexpected Verify error for a missing ledger; got %v; want ErrNotExist", err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
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
	if r.Records != writers*batches || len(r.Totals) != writers {
		t.Fatalf("unexpected report after concurrent appends: %d records, %d creators", r.Records, len(r.Totals))
	}
}

func TestTermsAndDetails(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
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
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 3 || rep.Campaigns["spring26"].CapCents != 500000 || rep.Totals[Key{"spring26", "maya"}] != maya {
		t.Fatalf("unexpected report: %+v", rep)
	}
	l, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Snapshot().Campaigns["spring26"]; got.CapCents != 500000 || got.EligibleCountries[0] != "US" {
		t.Fatalf("unexpected terms after reopen: %+v", got)
	}
}

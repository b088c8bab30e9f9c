package ledger

import (
	"bytes"
	"errors"
	"flag"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/clickgate/clickgate/counter/internal/fuzzseed"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the generated seeds in testdata/fuzz/FuzzOpen")

// FuzzOpen feeds arbitrary files to Verify and Open: neither panics, a file
// that verifies opens unchanged with the same state, a file that opens
// verifies afterwards, and a file that does not open is left alone. The
// ledgers it starts from are the files in testdata/fuzz/FuzzOpen, which
// TestFuzzSeeds keeps in the current format.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte(`{"seq":1,"len":1,"crc32c":"00000000","hmac":"` + zeroHead + `"}` + "\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) { checkOpen(t, dir, data) })
}

// FuzzRecord fuzzes what lies behind the hmac: FuzzOpen's mutations almost
// never carry a valid hmac, so they stop there. Its input is record bodies,
// one a line, which it frames with the test key after replacing each
// "@PREV@" with the hash of the line before, so that mutations reach the
// JSON, the first record's rules, the canonical form, the chain, the totals
// and the recomputation of sealed statements.
func FuzzRecord(f *testing.F) {
	dir := f.TempDir()
	writeSealedLedger(f, dir, genesis(f, testKey))
	var seed []byte
	for i, line := range lines(readLedger(f, dir)) {
		b, raw, _, err := frame(line[:len(line)-1])
		if err != nil {
			f.Fatal(err)
		}
		if i > 0 {
			raw = bytes.ReplaceAll(raw, []byte(b.Prev), []byte("@PREV@"))
		}
		seed = append(append(seed, raw...), '\n')
	}
	f.Add(seed)
	f.Add([]byte(`{"seq":1,"at":"2026-05-11T12:00:00Z","ledger":"x","store":"y","prev":"` + zeroHead + `"}` + "\n"))
	fdir := f.TempDir()
	f.Fuzz(func(t *testing.T, bodies []byte) {
		var file []byte
		prev := zeroHead
		for _, raw := range bytes.SplitAfter(bodies, []byte("\n")) {
			raw = bytes.TrimSuffix(raw, []byte("\n"))
			if len(raw) < 2 || raw[len(raw)-1] != '}' {
				file = append(append(file, raw...), '\n')
				continue
			}
			line := appendLine(nil, bytes.ReplaceAll(raw, []byte("@PREV@"), []byte(prev)), testKey)
			file = append(file, line...)
			prev = sha(line)
		}
		checkOpen(t, fdir, file)
	})
}

// checkOpen checks what Verify and Open make of the ledger file data,
// written to dir. A fuzz target runs its inputs one at a time, so it can
// give every input the same dir: creating one per input costs more than
// the rest of the check.
func checkOpen(t *testing.T, dir string, data []byte) {
	writeLedger(t, dir, data)
	r, verr := Verify(dir, testKey)
	l, oerr := Open(dir, testKey)
	if oerr != nil {
		if verr == nil || errors.Is(verr, ErrTorn) || !errors.Is(oerr, ErrCorrupt) {
			t.Fatalf("unexpected Open error %v after Verify error %v", oerr, verr)
		}
		if got := readLedger(t, dir); !bytes.Equal(got, data) {
			t.Fatalf("Open changed a ledger it refused")
		}
		return
	}
	defer l.Close()
	if verr == nil {
		s := l.Snapshot()
		if l.Recovered() != 0 || s.LastSeq != r.LastSeq || s.Head != r.Head || s.Ledger != r.Ledger || s.Store != r.Store ||
			!maps.Equal(s.Totals, r.Totals) || !reflect.DeepEqual(s.Statements, r.Statements) || len(s.Campaigns) != len(r.Campaigns) {
			t.Fatalf("unexpected Open of a valid ledger: recovered %d, seq %d; want 0, %d", l.Recovered(), l.LastSeq(), r.LastSeq)
		}
		if (r.LastSeq == 0) != (r.Ledger == "") || (r.LastSeq == 0) != (r.Store == "") || !r.Extends(r.Head) || !r.Extends(zeroHead) {
			t.Fatalf("unexpected report of a valid ledger: seq %d, ledger %q, store %q, head %s", r.LastSeq, r.Ledger, r.Store, r.Head)
		}
		for id, st := range r.Statements {
			if _, ok := r.Campaigns[id]; !ok || st.Campaign != id || !r.Extends(st.LedgerHead) || slices.Contains(r.Payable(r.LastAt.AddDate(100, 0, 0)), id) {
				t.Fatalf("unexpected sealed statement of campaign %q: %+v", id, st)
			}
		}
	}
	if verr != nil && !errors.Is(verr, ErrTorn) {
		t.Fatalf("unexpected Verify error %v for a ledger that opens", verr)
	}
	r2, err := Verify(dir, testKey)
	if err != nil {
		t.Fatalf("unexpected Verify error after Open: %s", err)
	}
	if r2.LastSeq != l.LastSeq() || !maps.Equal(r2.Totals, l.Totals()) || int64(len(data))-l.Recovered() != int64(len(readLedger(t, dir))) {
		t.Fatalf("unexpected Verify after Open: seq %d; want %d", r2.LastSeq, l.LastSeq())
	}
}

// fuzzSeeds are FuzzOpen's seed ledgers, by file name: a valid ledger with
// a first record, entries, terms and a sealed statement, and damaged
// copies of it. They are the same bytes every run (a fixed ledger id).
func fuzzSeeds(t *testing.T) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	writeSealedLedger(t, dir, genesis(t, testKey))
	data := readLedger(t, dir)
	ls := lines(data)
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	flipped := slices.Clone(data)
	flipped[len(ls[0])+len(ls[1])+40] ^= 0x01
	forged := parse(t, ls[sealedLine])
	forged.Statements[0].Rows[0].CappedCents = 100
	forged.Statements[0].TotalCents += 100
	withForged := slices.Clone(ls)
	withForged[sealedLine] = forge(t, testKey, forged)
	withForged = rechain(t, testKey, withForged, sealedLine+1)
	return map[string][]byte{
		"ledger":           data,
		"first-record":     ls[0],
		"torn-tail":        data[:len(data)-7],
		"zeros-after":      append(slices.Clone(data), 0, 0, 0),
		"no-first-record":  join(ls[1:]...),
		"swapped":          join(ls[0], ls[2], ls[1], ls[3], ls[4]),
		"flipped-byte":     flipped,
		"forged-statement": join(withForged...),
		"other-key":        join(rechain(t, otherKey, ls, 0)...),
	}
}

// TestFuzzSeeds keeps FuzzOpen's seed files in the current format: run
// with -update-seeds after changing it.
func TestFuzzSeeds(t *testing.T) {
	seeds := fuzzSeeds(t)
	fuzzseed.Check(t, "FuzzOpen", seeds, *updateSeeds)
	// What each seed is: the valid ledger verifies, every other is refused.
	for name, data := range seeds {
		d := t.TempDir()
		writeLedger(t, d, data)
		_, err := Verify(d, testKey)
		if (err == nil) != (name == "ledger" || name == "first-record") {
			t.Fatalf("unexpected Verify error for seed %q; got %v", name, err)
		}
	}
}

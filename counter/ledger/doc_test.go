package ledger

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// exampleKey is the ledger key of the example in the package doc.
var exampleKey = []byte("example ledger key")

// exampleLedger writes the ledger of the package doc's example into a new
// directory and returns its file: a first record with a fixed id, then
// what Append writes for a flush with terms and entries, a flush after
// the campaign's end plus grace, and the seal of its statement.
func exampleLedger(t *testing.T) []byte {
	t.Helper()
	at := time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)
	payable := time.Date(2026, 6, 25, 0, 0, 0, 0, time.UTC)
	mayaAt := time.Date(2026, 5, 11, 9, 41, 7, 0, time.UTC)
	dir := t.TempDir()
	writeLedger(t, dir, forge(t, exampleKey, body{Seq: 1, At: at, Ledger: "9f86d081884c7d659a2feaa0c55ad015", Store: "store-7c2e91", Format: Format, Prev: zeroHead}))
	l, err := Open(dir, exampleKey)
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, l)
	terms := Terms{ID: "spring26", Name: "Spring 2026", SignupRewardCents: 10000, VisitBlockSize: 1000, VisitBlockRewardCents: 10000,
		CapCents: 2000000, EligibleCountries: []string{"US"}, PayableAfter: payable}
	for _, b := range []Batch{
		{At: at.Add(time.Minute), Campaigns: []Terms{terms}, Entries: []Entry{
			{Campaign: "spring26", Creator: "maya", Qualified: 1200, Signups: 3, Handle: "@maya", Country: "US", Status: "active", AcceptedAt: mayaAt},
			{Campaign: "spring26", Creator: "leo", Qualified: 87, Signups: 0, Handle: "@leo", Country: "FR", Status: "active"},
		}},
		{At: payable.Add(time.Minute), Entries: []Entry{{Campaign: "spring26", Creator: "maya", Qualified: 2300, Signups: 4, Handle: "@maya", Country: "US", Status: "active", AcceptedAt: mayaAt}}},
		{At: payable.Add(time.Minute), Seal: []string{"spring26"}},
	} {
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	return readLedger(t, dir)
}

// TestFormatExample keeps the example in the package doc true: its lines
// are what the code writes.
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
	got := string(exampleLedger(t))
	if g := strings.Join(want, ""); got != g {
		var doc strings.Builder
		for line := range strings.Lines(got) {
			doc.WriteString("//\t" + line)
		}
		t.Fatalf("unexpected example in doc.go; got\n%s\nwant (the lines for doc.go)\n%s", g, doc.String())
	}
	if !strings.Contains(string(exampleDoc(t, doc)), fmt.Sprintf("%q", exampleKey)) {
		t.Fatalf("unexpected doc.go: it does not name the example's key %q", exampleKey)
	}
	// The first record is the one Init writes, but for its random id.
	dir := t.TempDir()
	l, err := Open(dir, exampleKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Init("store-7c2e91", time.Date(2026, 5, 11, 12, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	id := l.ID()
	mustClose(t, l)
	first := lines([]byte(got))[0]
	b := parse(t, first)
	b.Ledger = id
	if g, w := readLedger(t, dir), forge(t, exampleKey, b); !bytes.Equal(g, w) {
		t.Fatalf("unexpected first record from Init; got %s; want %s", g, w)
	}
}

// exampleDoc returns the part of doc.go from the example's introduction on.
func exampleDoc(t *testing.T, doc []byte) []byte {
	t.Helper()
	_, after, ok := bytes.Cut(doc, []byte("// Example,"))
	if !ok {
		t.Fatalf("no example in doc.go")
	}
	return after
}

// TestIndependentCheck checks a ledger with the rules of the package doc
// only, the way a finance tool would, sharing no code with the package.
func TestIndependentCheck(t *testing.T) {
	dir := t.TempDir()
	writeSealedLedger(t, dir, nil)
	data := readLedger(t, dir)
	prev := strings.Repeat("0", 64)
	totals := map[[2]string][2]int64{}
	sealed := map[string]bool{}
	for n, line := range lines(data) {
		var r struct {
			Seq     uint64 `json:"seq"`
			Ledger  string `json:"ledger"`
			Store   string `json:"store"`
			Entries []struct {
				Campaign, Creator  string
				Qualified, Signups int64
			} `json:"entries"`
			Campaigns  []json.RawMessage `json:"campaigns"`
			Statements []struct {
				Campaign   string `json:"campaign"`
				LedgerHead string `json:"ledger_head"`
			} `json:"statements"`
			Prev   string `json:"prev"`
			Len    int    `json:"len"`
			CRC32C string `json:"crc32c"`
			HMAC   string `json:"hmac"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("line %d: %s", n+1, err)
		}
		body := append(slices.Clip(line[:r.Len-1]), '}')
		trailer := fmt.Sprintf(`,"len":%d,"crc32c":"%s","hmac":"%s"}`+"\n", r.Len, r.CRC32C, r.HMAC)
		if string(line[r.Len-1:]) != trailer {
			t.Fatalf("line %d: unexpected trailer %q; want %q", n+1, line[r.Len-1:], trailer)
		}
		if got := fmt.Sprintf("%08x", crc32cBitwise(body)); got != r.CRC32C {
			t.Fatalf("line %d: unexpected crc32c; got %s; want %s", n+1, got, r.CRC32C)
		}
		m := hmac.New(sha256.New, testKey)
		m.Write(body)
		if got := hex.EncodeToString(m.Sum(nil)); got != r.HMAC {
			t.Fatalf("line %d: unexpected hmac; got %s; want %s", n+1, got, r.HMAC)
		}
		if r.Seq != uint64(n+1) || r.Prev != prev {
			t.Fatalf("line %d: unexpected seq %d or prev %s; want %d, %s", n+1, r.Seq, r.Prev, n+1, prev)
		}
		first := r.Ledger != "" && r.Store != "" && len(r.Entries) == 0 && len(r.Campaigns) == 0 && len(r.Statements) == 0
		if (n == 0) != first || (n > 0 && (r.Ledger != "" || r.Store != "")) {
			t.Fatalf("line %d: unexpected ledger %q and store %q; want them in the first record alone", n+1, r.Ledger, r.Store)
		}
		for _, e := range r.Entries {
			k := [2]string{e.Campaign, e.Creator}
			if old := totals[k]; e.Qualified < old[0] || e.Signups < old[1] {
				t.Fatalf("line %d: totals of %q decrease", n+1, k)
			}
			totals[k] = [2]int64{e.Qualified, e.Signups}
		}
		for _, s := range r.Statements {
			if sealed[s.Campaign] || s.LedgerHead != prev || len(r.Entries)+len(r.Campaigns) != 0 {
				t.Fatalf("line %d: unexpected statement of %q", n+1, s.Campaign)
			}
			sealed[s.Campaign] = true
		}
		prev = sha(line)
	}
	r := mustVerify(t, dir)
	if r.Head != prev || r.Records != len(sealedBatches())+1 || len(r.Totals) != len(totals) || len(r.Statements) != len(sealed) || len(sealed) != 1 {
		t.Fatalf("unexpected report %+v; want head %s, %d records, %d creators, %d statements", r, prev, len(sealedBatches())+1, len(totals), len(sealed))
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

// TestPythonChecker runs testdata/check_ledger.py, the checker the package
// doc points finance to, on a ledger with entries, terms, acceptance times
// and a statement (a version 1 ledger is TestVersion1's), and on damaged and forged copies, which both it and Verify must refuse,
// naming the same line. It fails, never skips, without python3: CI
// installs it (.ci/ledger-check).
func TestPythonChecker(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required to test testdata/check_ledger.py (apt-get install python3): %s", err)
	}
	checker, err := filepath.Abs(filepath.Join("testdata", "check_ledger.py"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	keyFile := filepath.Join(tmp, "key")
	// As an operator's --ledger-key-file: the key, and white space around it.
	if err := os.WriteFile(keyFile, []byte(" "+string(testKey)+"\r\n\u00a0"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(file []byte, args ...string) (stdout, stderr string, err error) {
		t.Helper()
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		cmd := exec.Command(python, append(append([]string{checker}, args...), path)...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		return out.String(), errOut.String(), err
	}

	dir := t.TempDir()
	writeSealedLedger(t, dir, nil)
	data := readLedger(t, dir)
	rep := mustVerify(t, dir)
	out, errOut, err := check(data, "--key-file", keyFile)
	want := fmt.Sprintf("ok: %d records, ledger %s, store %s, head %s\n", rep.Records, rep.Ledger, rep.Store, rep.Head)
	if err != nil || !strings.HasSuffix(out, want) || !strings.Contains(out, fmt.Sprintf("sealed spring26: %d cents to 4 creators", wantSealedCents)) {
		t.Fatalf("unexpected output of check_ledger.py for a valid ledger; got %v, stdout\n%s\nstderr\n%s\nwant it to end with %q", err, out, errOut, want)
	}
	// The doc's example, and a ledger with the default key, derived from
	// the click secret.
	exampleKeyFile := filepath.Join(tmp, "example-key")
	if err := os.WriteFile(exampleKeyFile, exampleKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := check(exampleLedger(t), "--key-file", exampleKeyFile); err != nil {
		t.Fatalf("unexpected failure of check_ledger.py for the doc's example: %v\n%s%s", err, out, errOut)
	}
	secret := "a click secret of at least 32 bytes, for the tests"
	secretFile := filepath.Join(tmp, "click-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("clickgate/ledger-key/v1"))
	if got, want := DeriveKey([]byte(secret)), m.Sum(nil); !bytes.Equal(got, want) {
		t.Fatalf("unexpected DeriveKey for %q; got %x; want %x, as the package doc says", secret, got, want)
	}
	derived := bytes.Join(rechain(t, DeriveKey([]byte(secret)), lines(data), 0), nil)
	if out, errOut, err := check(derived, "--click-secret-file", secretFile); err != nil {
		t.Fatalf("unexpected failure of check_ledger.py for a ledger with the default key: %v\n%s%s", err, out, errOut)
	}

	ls := lines(data)
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	edited := func(i int, key []byte, fn func(*body)) []byte {
		b := parse(t, ls[i])
		fn(&b)
		forged := slices.Clone(ls)
		forged[i] = forge(t, key, b)
		return join(rechain(t, key, forged, i+1)...)
	}
	flipped := bytes.Clone(data)
	flipped[len(ls[0])+len(ls[1])+30] ^= 0x01
	for _, c := range []struct {
		name   string
		file   []byte
		line   int
		reason string // in check_ledger.py's message
	}{
		{"a flipped byte", flipped, 3, "crc32c mismatch"},
		{"a record forged with another key", join(rechain(t, otherKey, ls, 2)...), 3, "hmac mismatch"},
		{"the whole ledger with another key", join(rechain(t, otherKey, ls, 0)...), 1, "hmac mismatch"},
		{"decreasing totals", edited(2, testKey, func(b *body) { b.Entries[0].Qualified = 1 }), 3, "decrease"},
		{"a forged statement", edited(sealedLine, testKey, func(b *body) {
			b.Statements[0].Rows[2].CappedCents, b.Statements[0].Rows[2].Status = b.Statements[0].Rows[2].EarnedCents, "payable"
			b.Statements[0].TotalCents += b.Statements[0].Rows[2].EarnedCents
		}), 4, "not the one the records before it compute"},
		{"a statement sealed too early", edited(sealedLine, testKey, func(b *body) { b.At = t0.Add(23 * time.Hour) }), 4, "payable after"},
		{"a statement sealed twice", join(rechain(t, testKey, slices.Insert(slices.Clone(ls), sealedLine+1, ls[sealedLine]), sealedLine+1)...), 5, "sealed already"},
		{"swapped records", join(ls[0], ls[2], ls[1], ls[3], ls[4]), 2, "seq 3 follows seq 1"},
		{"a missing first record", join(ls[1:]...), 1, "seq 2 follows seq 0"},
		{"a removed middle record", join(ls[0], ls[1], ls[3], ls[4]), 3, "seq 4 follows seq 2"},
		{"a first record with entries", edited(0, testKey, func(b *body) { b.Entries = []Entry{{Campaign: "c", Creator: "x", Qualified: 1}} }), 1, "want exactly"},
		{"a store in a later record", edited(1, testKey, func(b *body) { b.Store = "store-b" }), 2, "only the first record"},
		{"an unknown member", join(ls[0], appendLine(nil, append(bytes.TrimSuffix(parseRaw(t, ls[1]), []byte("}")), `,"note":"x"}`...), testKey), ls[2]), 2, "members"},
		{"a torn tail", data[:len(data)-10], 5, "no newline"},
		{"a blank line", append(bytes.Clone(data), '\n'), 6, "no well-formed"},
	} {
		out, errOut, err := check(c.file, "--key-file", keyFile)
		var ee *exec.ExitError
		prefix := fmt.Sprintf("line %d: ", c.line)
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut, prefix) || !strings.Contains(errOut, c.reason) {
			t.Fatalf("unexpected result of check_ledger.py for %s; got %v, stdout\n%s\nstderr\n%s\nwant exit status 1 and %q, %q", c.name, err, out, errOut, prefix, c.reason)
		}
		d := t.TempDir()
		writeLedger(t, d, c.file)
		var re *RecordError
		if _, err := Verify(d, testKey); !errors.As(err, &re) || re.Line != c.line {
			t.Fatalf("unexpected Verify error for %s; got %v; want one at line %d, as check_ledger.py", c.name, err, c.line)
		}
	}
	// Bad arguments.
	emptyFile := filepath.Join(tmp, "empty")
	if err := os.WriteFile(emptyFile, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{}, {"--key-file", filepath.Join(tmp, "missing")}, {"--key-file", emptyFile}, {"--click-secret-file", emptyFile}, {"--key-file", keyFile, "--click-secret-file", secretFile}} {
		if _, errOut, err := check(data, args...); err == nil || err.(*exec.ExitError).ExitCode() != 2 {
			t.Fatalf("unexpected result of check_ledger.py for arguments %q; got %v, %s; want exit status 2", args, err, errOut)
		}
	}
}

// parseRaw returns the body bytes of a well-framed line.
func parseRaw(t *testing.T, line []byte) []byte {
	t.Helper()
	_, raw, _, err := frame(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

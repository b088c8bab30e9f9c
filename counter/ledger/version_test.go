package ledger

import (
	"bytes"
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

// v1Ledger is a ledger of format version 1, written by clickgate before
// accepted_at: the package doc's example as it was then, with the key
// exampleKey.
const v1Ledger = "testdata/v1/ledger.jsonl"

// checkPython runs testdata/check_ledger.py on file with key.
func checkPython(t *testing.T, file, key []byte) (stdout, stderr string, err error) {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required to test testdata/check_ledger.py (apt-get install python3): %s", err)
	}
	tmp := t.TempDir()
	path, keyFile := filepath.Join(tmp, FileName), filepath.Join(tmp, "key")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(python, filepath.Join("testdata", "check_ledger.py"), "--key-file", keyFile, path)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestVersion1 reads a ledger written before format versions, continues
// it as version 1 while no entry has an acceptance time, and upgrades it
// at the first one: Verify and check_ledger.py accept it at each step.
func TestVersion1(t *testing.T) {
	v1, err := os.ReadFile(v1Ledger)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(v1, []byte(`"format"`)) || bytes.Contains(v1, []byte(`"accepted_at"`)) {
		t.Fatalf("%s is not a version 1 ledger", v1Ledger)
	}
	dir := t.TempDir()
	writeLedger(t, dir, v1)
	check := func(want int) []byte {
		t.Helper()
		r, err := Verify(dir, exampleKey)
		if err != nil || r.Format != want {
			t.Fatalf("unexpected Verify of the ledger; got format %d, %v; want format %d", r.Format, err, want)
		}
		data := readLedger(t, dir)
		if out, errOut, err := checkPython(t, data, exampleKey); err != nil || !strings.Contains(out, "head "+r.Head) {
			t.Fatalf("unexpected result of check_ledger.py; got %v, stdout\n%s\nstderr\n%s\nwant head %s", err, out, errOut, r.Head)
		}
		if !bytes.HasPrefix(data, v1) {
			t.Fatalf("the records of the version 1 ledger changed")
		}
		return data
	}
	check(1)

	l, err := Open(dir, exampleKey)
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, l)
	if err := l.Init("store-7c2e91", t0); err != nil || l.LastSeq() != 4 {
		t.Fatalf("unexpected Init of the version 1 ledger: %v, seq %d", err, l.LastSeq())
	}
	at := time.Date(2026, 6, 26, 0, 0, 0, 0, time.UTC)
	leo := Entry{Campaign: "spring26", Creator: "leo", Qualified: 90, Signups: 0, Handle: "@leo", Country: "FR", Status: "active"}
	mustAppend(t, l, Batch{At: at, Entries: []Entry{leo}})
	if data := check(1); bytes.Contains(data, []byte(`"format"`)) {
		t.Fatalf("a record without acceptance times upgraded the ledger: %s", data)
	}

	accepted := time.Date(2026, 6, 25, 23, 59, 1, 500000000, time.FixedZone("CEST", 2*3600))
	leo.AcceptedAt = accepted
	mustAppend(t, l, Batch{At: at.Add(time.Minute), Entries: []Entry{leo}})
	data := check(2)
	last := lines(data)[5]
	if !bytes.Contains(last, []byte(`,"format":2,"entries":`)) || !bytes.Contains(last, []byte(`"accepted_at":"2026-06-25T21:59:01.5Z"`)) {
		t.Fatalf("unexpected upgrade record %s; want format 2 and leo's accepted_at in UTC", last)
	}
	if got := l.Totals()[Key{"spring26", "leo"}].AcceptedAt; !got.Equal(accepted) {
		t.Fatalf("unexpected accepted_at of leo; got %s; want %s", got, accepted)
	}

	// Once recorded, an acceptance time is neither changed nor dropped.
	for _, a := range []time.Time{accepted.Add(time.Second), {}} {
		leo.AcceptedAt, leo.Qualified = a, leo.Qualified+1
		if _, err := l.Append(Batch{At: at.Add(2 * time.Minute), Entries: []Entry{leo}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "accepted_at") {
			t.Fatalf("unexpected error for accepted_at %s after %s; got %v; want ErrInvalid", a, accepted, err)
		}
	}
	// A later record stays version 2 without saying so again.
	leo.AcceptedAt = accepted
	mustAppend(t, l, Batch{At: at.Add(3 * time.Minute), Entries: []Entry{leo}})
	if data := check(2); bytes.Count(data, []byte(`"format"`)) != 1 {
		t.Fatalf("unexpected format members in %s; want the upgrade record's alone", data)
	}
}

// TestNewLedgerVersion2: Init writes version 2, and the ledger never
// says so again.
func TestNewLedgerVersion2(t *testing.T) {
	dir := t.TempDir()
	writeSealedLedger(t, dir, nil)
	data := readLedger(t, dir)
	if r := mustVerify(t, dir); r.Format != Format || bytes.Count(data, []byte(`"format"`)) != 1 ||
		!bytes.Contains(lines(data)[0], []byte(`"format":2`)) {
		t.Fatalf("unexpected format %d of a new ledger:\n%s", r.Format, data)
	}
}

// TestVersionRules: what Verify and check_ledger.py both refuse about
// format versions and acceptance times, naming the same line.
func TestVersionRules(t *testing.T) {
	v1, err := os.ReadFile(v1Ledger)
	if err != nil {
		t.Fatal(err)
	}
	v1Lines := lines(v1)
	dir := t.TempDir()
	writeSealedLedger(t, dir, nil) // version 2, maya accepted
	v2Lines := lines(readLedger(t, dir))
	edited := func(ls [][]byte, key []byte, i int, fn func(*body)) []byte {
		b := parse(t, ls[i])
		fn(&b)
		forged := slices.Clone(ls)
		forged[i] = forge(t, key, b)
		return bytes.Join(rechain(t, key, forged, i+1), nil)
	}
	// withMember adds a member to line i's body where format goes.
	withMember := func(ls [][]byte, key []byte, i int, member string) []byte {
		raw := parseRaw(t, ls[i])
		j := bytes.LastIndex(raw, []byte(`,"prev":`))
		if k := bytes.Index(raw, []byte(`,"entries":`)); k >= 0 {
			j = k
		}
		raw = slices.Concat(raw[:j], []byte(","+member), raw[j:])
		forged := slices.Clone(ls)
		forged[i] = appendLine(nil, raw, key)
		return bytes.Join(rechain(t, key, forged, i+1), nil)
	}
	// replaced replaces old with new in line i's body.
	replaced := func(ls [][]byte, key []byte, i int, old, new string) []byte {
		raw := parseRaw(t, ls[i])
		if !bytes.Contains(raw, []byte(old)) {
			t.Fatalf("no %q in line %d", old, i+1)
		}
		forged := slices.Clone(ls)
		forged[i] = appendLine(nil, bytes.Replace(raw, []byte(old), []byte(new), 1), key)
		return bytes.Join(rechain(t, key, forged, i+1), nil)
	}
	maya := func(b *body) *Entry {
		for i := range b.Entries {
			if b.Entries[i].Creator == "maya" {
				return &b.Entries[i]
			}
		}
		t.Fatalf("no entry of maya in record %d", b.Seq)
		return nil
	}
	for _, c := range []struct {
		name     string
		key      []byte
		file     []byte
		line     int
		goReason string
		pyReason string
	}{
		{"accepted_at in a version 1 ledger", exampleKey,
			edited(v1Lines, exampleKey, 1, func(b *body) { maya(b).AcceptedAt = t0 }), 2, "ledger of format 1", "ledger of format 1"},
		{"format 1 written out", exampleKey, withMember(v1Lines, exampleKey, 0, `"format":1`), 1, "leaving format out", "leaving format out"},
		{"a format newer than 2", exampleKey, edited(v1Lines, exampleKey, 0, func(b *body) { b.Format = 3 }), 1, "format 3", "newer than this checker"},
		{"a format raised twice", testKey, edited(v2Lines, testKey, 2, func(b *body) { b.Format = 2 }), 3, "only ever raised", "only ever raised"},
		{"an upgrade of a version 1 ledger to 1", exampleKey, withMember(v1Lines, exampleKey, 1, `"format":1`), 2, "leaving format out", "leaving format out"},
		{"a changed accepted_at", testKey,
			edited(v2Lines, testKey, 2, func(b *body) { maya(b).AcceptedAt = mayaAccepted.Add(time.Second) }), 3, "would change", "changes"},
		{"a dropped accepted_at", testKey,
			edited(v2Lines, testKey, 2, func(b *body) { maya(b).AcceptedAt = time.Time{} }), 3, "would change", "changes"},
		{"an accepted_at not in UTC", testKey,
			edited(v2Lines, testKey, 1, func(b *body) { maya(b).AcceptedAt = mayaAccepted.In(time.FixedZone("CEST", 2*3600)) }), 2, "not UTC", "in UTC"},
		// Go writes the zero time by leaving accepted_at out.
		{"a zero accepted_at", testKey, replaced(v2Lines, testKey, 1, mayaAccepted.Format(time.RFC3339Nano), "0001-01-01T00:00:00Z"),
			2, "canonical form", "zero time"},
	} {
		out, errOut, err := checkPython(t, c.file, c.key)
		var ee *exec.ExitError
		prefix := fmt.Sprintf("line %d: ", c.line)
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut, prefix) || !strings.Contains(errOut, c.pyReason) {
			t.Fatalf("unexpected result of check_ledger.py for %s; got %v, stdout\n%s\nstderr\n%s\nwant exit status 1 and %q, %q", c.name, err, out, errOut, prefix, c.pyReason)
		}
		d := t.TempDir()
		writeLedger(t, d, c.file)
		var re *RecordError
		if _, err := Verify(d, c.key); !errors.As(err, &re) || re.Line != c.line || !strings.Contains(re.Reason, c.goReason) {
			t.Fatalf("unexpected Verify error for %s; got %v; want one at line %d with %q", c.name, err, c.line, c.goReason)
		}
	}
}

// Package fuzzseed keeps generated fuzz seed files in testdata/fuzz in the
// current format of what they encode, for the tests of counter's packages.
package fuzzseed

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// Check compares testdata/fuzz/TARGET/NAME with each of seeds, encoded as
// `go test` writes a []byte corpus entry, and fails naming a missing or
// stale one. With update it writes them instead.
func Check(t testing.TB, target string, seeds map[string][]byte, update bool) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", seeds[name])
		path := filepath.Join(dir, name)
		if update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("cannot read seed %q (go test -run TestFuzzSeeds -update-seeds writes it): %s", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %q is out of date: go test -run TestFuzzSeeds -update-seeds rewrites it", path)
		}
	}
}

// Read returns the []byte that the corpus entry testdata/fuzz/TARGET/NAME
// holds, as Check writes it: for golden inputs of an older format, kept
// beside the current seeds so that the fuzzer starts from them too.
func Read(t testing.TB, target, name string) []byte {
	t.Helper()
	path := filepath.Join("testdata", "fuzz", target, name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read seed %q: %s", path, err)
	}
	body, ok := bytes.CutPrefix(b, []byte("go test fuzz v1\n[]byte("))
	body, ok2 := bytes.CutSuffix(body, []byte(")\n"))
	s, err := strconv.Unquote(string(body))
	if !ok || !ok2 || err != nil {
		t.Fatalf("seed %q is not one []byte corpus entry", path)
	}
	return []byte(s)
}

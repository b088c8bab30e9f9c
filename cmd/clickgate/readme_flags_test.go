package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeFlagsInReadme: every flag of `clickgate serve -h` has its row in
// the README's table of serve flags, and every row a flag, with its environment variable, and a
// default that is the flag's own, when the flag has one and the row gives
// it as a value (durations compare as durations: `1m` is 1m0s).
func TestServeFlagsInReadme(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := section(t, readme, "### `clickgate serve`", "#")
	rows := map[string][]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\| ([^|]*) \\| ([^|]*) \\|").FindAllSubmatch(table, -1) {
		rows[string(m[1])] = []string{strings.TrimSpace(string(m[2])), strings.TrimSpace(string(m[3]))}
	}
	if len(rows) < 40 {
		t.Fatalf("the README's table of serve flags has %d rows; want one a flag", len(rows))
	}

	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-h"}, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("serve -h exited %d:\n%s", code, stderr.String())
	}
	usage := stderr.String()
	starts := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatchIndex(usage, -1)
	if len(starts) < 40 {
		t.Fatalf("serve -h lists %d flags:\n%s", len(starts), usage)
	}
	defaultRe := regexp.MustCompile(`\(default (.*)\)\s*$`)
	listed := map[string]bool{}
	for _, s := range starts {
		listed[usage[s[2]:s[3]]] = true
	}
	for name := range rows {
		if !listed[name] {
			t.Errorf("the README's table of serve flags has --%s, which serve does not take", name)
		}
	}
	for i, s := range starts {
		name := usage[s[2]:s[3]]
		end := len(usage)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		row, ok := rows[name]
		if !ok {
			t.Errorf("--%s is not in the README's table of serve flags", name)
			continue
		}
		if want := "`" + envName(name) + "`"; row[0] != want {
			t.Errorf("--%s: the README names its variable %s; want %s", name, row[0], want)
		}
		m := defaultRe.FindStringSubmatch(usage[s[0]:end])
		if m == nil {
			continue // a zero default: the README says what it means
		}
		def := m[1]
		if u, err := strconv.Unquote(def); err == nil {
			def = u
		}
		doc, ok := strings.CutPrefix(row[1], "`")
		if !ok {
			t.Errorf("--%s: the README's default is %q; want `%s`", name, row[1], def)
			continue
		}
		doc, _, _ = strings.Cut(doc, "`")
		if doc == def {
			continue
		}
		if a, err := time.ParseDuration(doc); err == nil {
			if b, err := time.ParseDuration(def); err == nil && a == b {
				continue
			}
		}
		t.Errorf("--%s: the README's default is %q; the flag's is %q", name, doc, def)
	}
}

package useragent

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// heldOutRow is one User-Agent of a held-out set in testdata.
type heldOutRow struct {
	line    int
	section string // the first word after the section's marker
	ua      string
}

// readHeldOut reads a held-out set: sections that start with a line
// "# MARKER NAME …", one User-Agent per other non-empty line that does not
// start with '#'.
func readHeldOut(tb testing.TB, path, marker string) []heldOutRow {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("cannot open the held-out set: %v", err)
	}
	defer f.Close()
	var rows []heldOutRow
	section := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# "+marker+" "); ok {
			section, _, _ = strings.Cut(rest, " ")
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if section == "" {
			tb.Fatalf("%s:%d: a User-Agent before the first %q line", path, n, "# "+marker)
		}
		rows = append(rows, heldOutRow{line: n, section: section, ua: line})
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("cannot read the held-out set: %v", err)
	}
	return rows
}

// minHeldOutShare is the share of testdata/robots_heldout.txt that must not
// be classified as a person. Not 100%: the set is someone else's, and a few
// of its robots send a UA no rule can tell from a browser's without also
// catching browsers.
const minHeldOutShare = 0.99

// TestHeldOutRobots measures the classifier on robots' UAs that none of its
// lists was built from: the share classified as a person is what a list
// that has gone stale lets through.
func TestHeldOutRobots(t *testing.T) {
	rows := readHeldOut(t, "testdata/robots_heldout.txt", "category")
	if len(rows) < 1000 {
		t.Fatalf("unexpected size of the held-out set; got %d; want at least 1000", len(rows))
	}
	people := map[string]int{}
	total := map[string]int{}
	n := 0
	for _, r := range rows {
		total[r.section]++
		if Classify([]byte(r.ua)) == Person {
			people[r.section]++
			n++
			t.Logf("person: %q (line %d, %s)", r.ua, r.line, r.section)
		}
	}
	share := 1 - float64(n)/float64(len(rows))
	t.Logf("%d of %d held-out robots (%.2f%%) classified as people; by category (people/all): %v / %v", n, len(rows), 100*float64(n)/float64(len(rows)), people, total)
	if share < minHeldOutShare {
		t.Errorf("unexpected share of held-out robots not classified as people; got %.4f; want at least %.2f", share, minHeldOutShare)
	}
}

// heldOutPeopleDisagreements are UAs of testdata/people_heldout.txt that
// its sources count among browsers and this package does not, each with
// the reason. Keep it short: every entry is a claim that the source is
// wrong.
var heldOutPeopleDisagreements = map[string]string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0":   "no engine: no browser sends this, scrapers that trim a Chrome UA do",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36": "cut short after the engine's version, as some scraping tools' default UA is",
}

// TestHeldOutPeople classifies browsers' UAs from real traffic that none of
// the package's lists or tables was built from: every one must stay a
// person, whatever a new crawler list or a new rule catches.
func TestHeldOutPeople(t *testing.T) {
	rows := readHeldOut(t, "testdata/people_heldout.txt", "source")
	if len(rows) < 900 {
		t.Fatalf("unexpected size of the held-out set; got %d; want at least 900", len(rows))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		got := Classify([]byte(r.ua))
		if why, ok := heldOutPeopleDisagreements[r.ua]; ok {
			seen[r.ua] = true
			if got != Bot {
				t.Errorf("unexpected class for %q (line %d, %s); got %v; want bot (%s)", r.ua, r.line, r.section, got, why)
			}
			continue
		}
		if got != Person {
			t.Errorf("unexpected class for %q (line %d, %s); got %v; want person", r.ua, r.line, r.section, got)
		}
	}
	for ua := range heldOutPeopleDisagreements {
		if !seen[ua] {
			t.Errorf("disagreement about %q, which is not in the held-out set", ua)
		}
	}
	t.Logf("%d held-out people, %d of them classified as robots on purpose", len(rows), len(heldOutPeopleDisagreements))
}

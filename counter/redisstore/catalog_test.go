package redisstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestMerge: merge keeps one entry per key, the last given (a change after
// the entry it replaces, the second of an entry scanned twice), sorted by
// key bytes, whatever the keys' lengths and shared 8-byte prefixes.
func TestMerge(t *testing.T) {
	type entry struct{ key, v string }
	key := func(e *entry) string { return e.key }
	cases := []struct {
		scanned, changed, want []entry
	}{
		{nil, nil, []entry{}},
		{[]entry{{"b", "1"}, {"a", "1"}}, nil, []entry{{"a", "1"}, {"b", "1"}}},
		{[]entry{{"b", "1"}, {"a", "1"}, {"b", "2"}}, []entry{{"a", "3"}}, []entry{{"a", "3"}, {"b", "2"}}},
		// Keys alike in their first 8 bytes, or shorter, or padded with
		// what the prefix pads with.
		{[]entry{{"abcdefghZ", "1"}, {"abcdefghA", "1"}, {"abcdefgh", "1"}, {"ab\x00", "1"}, {"ab", "1"}, {"", "1"}},
			[]entry{{"abcdefghA", "2"}, {"ab", "2"}},
			[]entry{{"", "1"}, {"ab", "2"}, {"ab\x00", "1"}, {"abcdefgh", "1"}, {"abcdefghA", "2"}, {"abcdefghZ", "1"}}},
	}
	for i, c := range cases {
		if got := merge(slices.Clone(c.scanned), c.changed, key); !slices.Equal(got, c.want) {
			t.Errorf("case %d: got %q; want %q", i, got, c.want)
		}
	}

	// Against a plain reference: random keys over a small alphabet, many
	// repeated, the last of each kept.
	r := rand.New(rand.NewPCG(1, 2))
	var all []entry
	last := map[string]string{}
	for i := range 5000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteByte("ab\x00z"[r.IntN(4)])
		}
		e := entry{b.String(), fmt.Sprint(i)}
		all = append(all, e)
		last[e.key] = e.v
	}
	var want []entry
	for k, v := range last {
		want = append(want, entry{k, v})
	}
	slices.SortFunc(want, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	if got := merge(slices.Clone(all[:4000]), all[4000:], key); !slices.Equal(got, want) {
		t.Fatalf("merge of random keys differs from the reference (%d entries, want %d)", len(got), len(want))
	}
}

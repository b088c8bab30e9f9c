package counter

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSortByKey(t *testing.T) {
	type entry struct{ key, tag string }
	key := func(e *entry) string { return e.key }
	for _, tc := range []struct {
		name    string
		in, out []entry
	}{
		{"empty", nil, []entry{}},
		{"one", []entry{{"a", "1"}}, []entry{{"a", "1"}}},
		// Keys alike in their first 8 bytes are ordered by the rest, and
		// shorter ones (zero-padded) first.
		{"prefixes", []entry{{"abcdefghz", ""}, {"abcdefgh", ""}, {"abcdefgha", ""}, {"ab", ""}, {"", ""}},
			[]entry{{"", ""}, {"ab", ""}, {"abcdefgh", ""}, {"abcdefgha", ""}, {"abcdefghz", ""}}},
		// Equal keys keep their order.
		{"stable", []entry{{"b", "1"}, {"a", "1"}, {"b", "2"}, {"a", "2"}, {"b", "3"}},
			[]entry{{"a", "1"}, {"a", "2"}, {"b", "1"}, {"b", "2"}, {"b", "3"}}},
		{"bytes above 0x7f", []entry{{"\xff", ""}, {"\x80a", ""}, {"z", ""}}, []entry{{"z", ""}, {"\x80a", ""}, {"\xff", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			if got := SortByKey(in, key); !slices.Equal(got, tc.out) || !slices.Equal(in, tc.out) {
				t.Fatalf("got %q, in place %q; want %q", got, in, tc.out)
			}
		})
	}
}

// TestSortByKeyPermutations: entries of a few keys in random orders, so
// that moving them in place follows cycles of every length, come out as a
// stable sort puts them.
func TestSortByKeyPermutations(t *testing.T) {
	type entry struct {
		key string
		i   int
	}
	key := func(e *entry) string { return e.key }
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 3, 10, 100, 1000} {
		in := make([]entry, n)
		for i := range in {
			in[i] = entry{strconv.Itoa(r.IntN(max(n/4, 2))), i}
		}
		want := slices.Clone(in)
		slices.SortStableFunc(want, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		if got := SortByKey(in, key); !slices.Equal(got, want) {
			t.Fatalf("%d entries: got %v; want %v", n, got, want)
		}
	}
}

package counter

import (
	"slices"
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
			if got := SortByKey(in, key); !slices.Equal(got, tc.out) {
				t.Fatalf("got %q; want %q", got, tc.out)
			}
			if !slices.Equal(in, tc.in) {
				t.Fatalf("the input changed: %q", in)
			}
		})
	}
}

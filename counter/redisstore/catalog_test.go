package redisstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/counter"
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

// TestChangesKept: the feed keeps the entries that hold one of the last
// Options.CatalogChanges versions: a write's entry goes once its last
// change is older, and a read from before what is kept says Trimmed.
func TestChangesKept(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{CatalogChanges: 10})
	link := func(code string) counter.Link {
		return counter.Link{Code: code, Campaign: "spring", Creator: "alice", Destinations: counter.Destinations{Default: "https://app.example.com/a"}}
	}
	// Versions 1-8 in one entry, then one each.
	var bulk []counter.Link
	for i := 1; i <= 8; i++ {
		bulk = append(bulk, link(fmt.Sprintf("BULK%d", i)))
	}
	if err := e.s.CreateLinks(ctx, bulk); err != nil {
		t.Fatal(err)
	}
	check := func(since uint64, trimmed bool) {
		t.Helper()
		ch, err := e.s.CatalogChanges(ctx, since, 0)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := e.s.Version(ctx)
		if ch.Trimmed != trimmed || (!trimmed && (ch.Version != v || len(ch.Links) != int(v-since))) {
			t.Fatalf("at version %d: unexpected changes after %d; got version %d, %d links, trimmed %v; want trimmed %v", v, since, ch.Version, len(ch.Links), ch.Trimmed, trimmed)
		}
	}
	for i := 9; i <= 17; i++ {
		if err := e.s.CreateLink(ctx, link(fmt.Sprintf("ONE%d", i))); err != nil {
			t.Fatal(err)
		}
		// Version 8, in the entry of 1-8, is among the last 10 up to 17.
		check(0, false)
	}
	if err := e.s.CreateLink(ctx, link("ONE18")); err != nil {
		t.Fatal(err)
	}
	if n := e.rdb.XLen(ctx, "cg:{catalog}:changes").Val(); n != 10 {
		t.Fatalf("unexpected entries in the feed; got %d; want 10 (versions 9-18)", n)
	}
	for since, trimmed := range map[uint64]bool{0: true, 7: true, 8: false, 12: false, 18: false} {
		check(since, trimmed)
	}
}

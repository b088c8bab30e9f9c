package redirect

import (
	"slices"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// Links returns the links the table holds, served or not (disabled, or
// that cannot be served), in code order, those whose code is after after
// and for which keep is true, at most limit of them, and whether there
// are more: the links of creator in campaign, of every creator of
// campaign when creator is "", of every campaign when campaign is "".
// What the admin API lists, from memory: reading them from the store
// decodes every link of the catalog. Refresh first for the store's
// catalog as it is now.
func (t *Table) Links(campaign, creator, after string, limit int, keep func(*counter.Link) bool) ([]counter.Link, bool) {
	// Under the lock, only what a refresh changes in place: the codes of
	// each creator (appended to, so their slice headers are a stable
	// view) and the links not served, copied. The snapshot never
	// changes, nor do its entries: the scan and sort need no lock, and
	// a refresh does not wait for them.
	t.mu.Lock()
	snap := t.snap.Load()
	var lists []codes
	for id, c := range t.st.codes {
		if (campaign == "" || id.campaign == campaign) && (creator == "" || id.id == creator) {
			lists = append(lists, c)
		}
	}
	unserved := map[string]*counter.Link{}
	for code, l := range t.st.orphans {
		if (campaign == "" || l.Campaign == campaign) && (creator == "" || l.Creator == creator) {
			c := *l
			unserved[code] = &c
		}
	}
	t.mu.Unlock()

	var found []*counter.Link
	for _, c := range lists {
		for code := range c.all() {
			if string(code) <= after {
				continue
			}
			l := unserved[string(code)]
			if r := find(snap, code); l == nil && r != nil {
				var e Entry
				snap.entry(r, &e)
				l = &e.Link
			}
			if l != nil && keep(l) {
				found = append(found, l)
			}
		}
	}
	slices.SortFunc(found, func(a, b *counter.Link) int { return strings.Compare(a.Code, b.Code) })
	more := len(found) > limit
	found = found[:min(len(found), limit)]
	out := make([]counter.Link, len(found))
	for i, l := range found {
		out[i] = *l
	}
	return out, more
}

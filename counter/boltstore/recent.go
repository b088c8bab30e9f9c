package boltstore

import (
	"bytes"
	"sync"
	"unicode/utf8"

	"github.com/clickgate/clickgate/counter"
)

// recentLinks are the links this process wrote last, each with the JSON
// it was stored as, so that the change feed hands the link table a link
// just created without decoding it again: on an idle node that decoding
// was a quarter of a bulk import's CPU. An entry serves a read only when
// the JSON read is the one it was made from, and only links that decode
// to exactly themselves are kept (roundTrips), so a read returns what
// decoding would.
type recentLinks struct {
	mu   sync.Mutex
	ring [recentKept]recentLink
}

// recentKept is how many links recentLinks keeps: many bulk chunks, as
// the table reads the feed a poll interval behind the import.
const recentKept = 4096

type recentLink struct {
	seq  uint64
	json []byte
	link counter.Link
}

// put keeps l, created seq-th and stored as b.
func (r *recentLinks) put(seq uint64, b []byte, l *counter.Link) {
	if !roundTrips(l) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring[seq%recentKept] = recentLink{seq, b, *l}
}

// get sets l to the link created seq-th if it is kept as b, and reports
// whether it was.
func (r *recentLinks) get(seq uint64, b []byte, l *counter.Link) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := &r.ring[seq%recentKept]
	if e.seq != seq || !bytes.Equal(e.json, b) {
		return false
	}
	*l = e.link
	return true
}

// roundTrips reports whether l decodes from its JSON to exactly itself:
// its strings are valid UTF-8 (JSON replaces invalid bytes) and its time
// is in UTC without a monotonic reading, as decoding makes it. A field
// added to counter.Link must be checked here too (TestRoundTripsFields).
func roundTrips(l *counter.Link) bool {
	for _, s := range [...]string{l.Code, l.Campaign, l.Creator, l.Destinations.Default, l.Destinations.IOS,
		l.Destinations.Android, l.Preview.Title, l.Preview.Description, l.Preview.Image} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return l.CreatedAt == l.CreatedAt.Round(0).UTC()
}

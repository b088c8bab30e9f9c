package judge

import (
	"maps"
	"slices"
)

// maxBatches is how many batch ids a judge remembers.
const maxBatches = 1 << 14

// batches remembers the ids of the last maxBatches batches applied. A log
// may hold a batch twice: an edge appends it again after a failure that
// left the first append's fate unknown, seconds later as a rule (its
// spool replays it once the store answers), and the judge applies it once.
// The ids are in the checkpoint, so a judge that takes a partition over
// remembers them too.
type batches struct {
	ring []uint64 // the oldest at next once full
	next int
	set  map[uint64]struct{}
}

// add remembers id and reports whether it was new.
func (b *batches) add(id uint64) bool {
	if _, ok := b.set[id]; ok {
		return false
	}
	if b.set == nil {
		b.set = make(map[uint64]struct{})
	}
	if len(b.ring) < maxBatches {
		b.ring = append(b.ring, id)
	} else {
		delete(b.set, b.ring[b.next])
		b.ring[b.next] = id
		b.next = (b.next + 1) % maxBatches
	}
	b.set[id] = struct{}{}
	return true
}

// ordered returns the ids, oldest first.
func (b *batches) ordered() []uint64 {
	return append(slices.Clone(b.ring[b.next:]), b.ring[:b.next]...)
}

func (b *batches) clone() batches {
	return batches{ring: slices.Clone(b.ring), next: b.next, set: maps.Clone(b.set)}
}

// NewBatch remembers the id of a batch about to be applied and reports
// whether it is not among the last 16,384 the judge was given: a batch
// the log holds twice is applied once. The ids are part of the judge's
// state, in its checkpoint. The embedded store, whose log never holds a
// batch twice, does not call it.
func (j *Judge) NewBatch(id uint64) bool { return j.batches.add(id) }

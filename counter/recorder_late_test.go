package counter

import (
	"sync/atomic"
	"testing"
)

// appendCounter is a Spool that only counts the batches written to it.
type appendCounter struct{ appends atomic.Int64 }

func (s *appendCounter) Append([]Visit, bool) (uint64, error) { return uint64(s.appends.Add(1)), nil }
func (s *appendCounter) Release(uint64)                       {}
func (s *appendCounter) Ack(uint64) error                     { return nil }
func (s *appendCounter) Pending(dst []uint64) []uint64        { return dst }
func (s *appendCounter) Read(_ uint64, dst []Visit) ([]Visit, error) {
	return dst, nil
}

// TestSpoolLateAnswered: a caller whose CommitTimeout fires after the
// store answered its batch, but before the batch is released, leaves it
// alone. Spooled then, not held, as answered, a batch the store took was
// replayed, and its visitors were counted again, as duplicates: under
// load, TestSlowConnections counted 305 clicks of 200, 105 duplicates. A
// batch in flight, not answered, is still spooled.
func TestSpoolLateAnswered(t *testing.T) {
	p, err := NewDedupeParams(1000, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	sp := &appendCounter{}
	r := NewRecorder(RecorderOptions{Params: p, Spool: sp})
	for _, answered := range []bool{true, false} {
		b := newBatch()
		b.visits, b.out, b.sent, b.answered = make([]Visit, 3), make([]Reason, 3), true, answered
		r.spoolLate(b)
		r.mu.Lock()
		spooled := b.spool != notSpooled
		r.mu.Unlock()
		if spooled == answered {
			t.Errorf("a late caller of a batch in flight, answered %v: spooled %v; want %v", answered, spooled, !answered)
		}
		if !answered {
			<-b.done // released once written
		}
	}
	if n := sp.appends.Load(); n != 1 {
		t.Errorf("unexpected batches written to the spool; got %d; want 1, the one not answered", n)
	}
}

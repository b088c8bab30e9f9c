package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/clickgate/clickgate/counter/disk"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// Salvage rewrites each segment of the spool in dir that Open refuses as
// corrupt (ErrCorrupt), so that it opens and its batches are replayed:
// its header, and every whole record (framed and decoded) in order, but a
// batch whose id an earlier record has. The segment as it was is first
// written beside it, as NAME.damaged (see disk.KeepAside). A segment whose
// only flaw is a torn tail, which Open cuts, is left alone. No Spool may be
// open on dir: Salvage takes its lock.
//
// What Salvage drops is lost; an ack it drops replays its batch again, a
// duplicate for the store's dedupe. It is for an operator whose node will
// not start otherwise.
func Salvage(dir string) ([]visitlog.Salvaged, error) {
	if dir == "" {
		return nil, errors.New("spool directory is required")
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no spool in %q: %w", dir, err)
	}
	lock, err := disk.LockDir(dir, ErrInUse)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read spool %q: %w", dir, err)
	}
	var done []visitlog.Salvaged
	seen := map[uint64]bool{} // batch ids not acked, over every segment, as Open checks them
	for _, e := range entries {
		if _, ok := disk.ParseSegmentName(e.Name()); !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return done, fmt.Errorf("cannot read spool segment: %w", err)
		}
		s, out := salvage(path, data, seen)
		if s == nil {
			continue
		}
		if s.Original, err = disk.KeepAside(path, data); err != nil {
			return done, fmt.Errorf("cannot keep the damaged spool segment: %w", err)
		}
		if err := disk.WriteFile(path, out); err != nil {
			return done, fmt.Errorf("cannot rewrite the damaged spool segment: %w", err)
		}
		done = append(done, *s)
	}
	return done, nil
}

// salvage returns what Salvage makes of the segment path, whose bytes are
// data, and the bytes to write instead; nil when Open takes it as it is.
// seen holds the batch ids that the segments before it left unacked, and
// is brought past this one.
func salvage(path string, data []byte, seen map[uint64]bool) (*visitlog.Salvaged, []byte) {
	s := &visitlog.Salvaged{Segment: path, Damage: -1}
	mark := func(off int) {
		if s.Damage < 0 {
			s.Damage = int64(off)
		}
	}
	if len(data) < headerLen || !bytes.Equal(data[:headerLen], header) {
		mark(0) // a new header
	}
	out := append([]byte(nil), header...)
	tail := len(data)
	for off := headerLen; off < len(data); {
		n, payload, err := frame(data[off:])
		if err != nil {
			next := nextFramed(data, off+1)
			if next < 0 {
				tail = off // nothing whole after it: a torn tail, which Open cuts
				break
			}
			mark(off)
			s.Dropped += int64(next - off)
			off = next
			continue
		}
		r, err := parsePayload(payload)
		batch := err == nil && (r.kind == kindBatch || r.kind == kindLegacy)
		if err != nil || batch && seen[r.id] {
			// A framed record that does not decode, or a batch twice:
			// no crash explains either.
			mark(off)
			s.Dropped += int64(n)
			off += n
			continue
		}
		switch {
		case batch:
			seen[r.id] = true
		case r.kind == kindAck:
			delete(seen, r.id) // as Open: an acked id may come again
		}
		out = append(out, data[off:off+n]...)
		if s.Damage >= 0 {
			s.Kept++
		}
		off += n
	}
	if s.Damage < 0 {
		return nil, nil
	}
	s.Dropped += int64(len(data) - tail)
	return s, out
}

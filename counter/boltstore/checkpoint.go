package boltstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/disk"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// The judge's checkpoints (see core.go): the current one, the one before
// it, which a start falls back on, and a damaged one moved aside.
const (
	checkpointName = "judge.checkpoint"
	prevName       = checkpointName + ".prev"
	damagedName    = checkpointName + ".damaged"
)

// pickCheckpoint loads the checkpoint that a start judges from (see
// loadCheckpoint): the current one or, when it is damaged
// (judge.ErrCorrupt) or missing (a crash between the two renames of save),
// the previous one; fellBack is then the current one's error. With
// neither, the error matches fs.ErrNotExist.
func pickCheckpoint(dir string, p counter.DedupeParams, want judge.Params) (j *judge.Judge, w judge.Params, from visitlog.Offset, fellBack, err error) {
	j, w, from, err = loadCheckpoint(filepath.Join(dir, checkpointName), p, want)
	if !errors.Is(err, judge.ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
		return j, w, from, nil, err
	}
	pj, pw, pFrom, perr := loadCheckpoint(filepath.Join(dir, prevName), p, want)
	switch {
	case perr == nil:
		return pj, pw, pFrom, err, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, pw, pFrom, nil, perr // why the previous one cannot be loaded, or none either
	}
	return j, w, from, nil, err
}

// loadCheckpoint loads the judge's checkpoint at path into a new judge, of
// the checkpoint's sizing if it is want's or want is the zero Params,
// and returns it, the parameters to adopt (want, with the checkpoint's
// velocity rule for an open without one: a command that judges nothing)
// and the log offset it reached. The error matches fs.ErrNotExist when
// there is none, judge.ErrCorrupt when it is damaged.
//
// The log after the checkpoint may hold visits that the judge which wrote
// it decided before a crash: they are judged again under its policy, so
// that they are decided as they were. A checkpoint of another sizing is
// refused by UnmarshalBinary.
func loadCheckpoint(path string, p counter.DedupeParams, want judge.Params) (*judge.Judge, judge.Params, visitlog.Offset, error) {
	var from visitlog.Offset
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, want, from, fmt.Errorf("cannot read the judge's checkpoint: %w", err)
	}
	cp, err := judge.CheckpointParams(b) // its version and checksum checked
	if err != nil {
		return nil, want, from, fmt.Errorf("cannot load the judge's checkpoint %s: %w", path, err)
	}
	jp, anySizing := want, want == (judge.Params{}) // Salvage's
	if p.VelocityWindow == 0 {
		want.VelocityMax, want.VelocityWindow = cp.VelocityMax, cp.VelocityWindow
	}
	if cp.SameSizing(want) || anySizing {
		jp = cp
	}
	j, err := judge.New(jp)
	if err == nil {
		err = j.UnmarshalBinary(b)
	}
	if err == nil && len(j.Offset()) > 0 {
		if err = from.UnmarshalBinary(j.Offset()); err != nil {
			err = fmt.Errorf("%w: bad log offset: %w", judge.ErrCorrupt, err)
		}
	}
	if err != nil {
		return nil, want, from, fmt.Errorf("cannot load the judge's checkpoint %s: %w", path, err)
	}
	return j, want, from, nil
}

// save writes cp, whose log offset is below, as the checkpoint, fsynced
// and renamed into place, the one it replaces kept as the previous one,
// records it for /metrics as taken from start on, then trims the log below
// the previous one. Checkpoints are saved one at a time and never replaced
// by an older one.
func (c *core) save(cp []byte, below visitlog.Offset, start time.Time) error {
	c.saving.Lock()
	defer c.saving.Unlock()
	if below.Less(c.savedAt) {
		return nil
	}
	// The checkpoint before becomes the previous one, which a start falls
	// back on when this one is damaged: the log is kept from its offset.
	path := filepath.Join(c.dir, checkpointName)
	if err := os.Rename(path, filepath.Join(c.dir, prevName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot keep the judge's previous checkpoint: %w", err)
	}
	if err := disk.WriteFile(path, cp); err != nil {
		return fmt.Errorf("cannot write the judge's checkpoint: %w", err)
	}
	prev := c.savedAt
	c.savedAt = below
	counter.CheckpointTaken(time.Since(start), len(cp))
	return c.log.Trim(prev)
}

// Salvage makes the visit log of the store in dir open again when damage
// to visits not yet judged stops the store from opening: see
// visitlog.Salvage, from the checkpoint that the next open judges from.
// The visits it drops are lost. The store must be closed.
func Salvage(dir string) ([]visitlog.Salvaged, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no store in %q: %w", dir, err)
	}
	_, _, from, _, err := pickCheckpoint(dir, counter.DedupeParams{}, judge.Params{})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return visitlog.Salvage(visitlog.Options{Dir: filepath.Join(dir, "visits"), From: from})
}

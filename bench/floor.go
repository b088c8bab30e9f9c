package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/clickgate/clickgate/counter/disk"
)

// NewFloor returns the floor of a durable design: the bare handler, but
// each GET first appends a record of its code to the file at path and
// waits until a group commit has written and fdatasynced it. It does
// nothing else clickgate does (no classification, no dedupe, no cookie,
// no click id), so no design that makes each visit durable before its 302
// can be faster on the same disk and core. Close stops it.
func NewFloor(links map[string]string, path string) (*Baseline, error) {
	l, err := openFloorLog(path)
	if err != nil {
		return nil, err
	}
	return &Baseline{links: links, log: l}, nil
}

// Close stops the floor's group commit and closes its file, once no
// request is in flight; a no-op for the other designs.
func (b *Baseline) Close() error {
	if b.log == nil {
		return nil
	}
	close(b.log.quit)
	<-b.log.stopped
	return b.log.f.Close()
}

const (
	// FloorRecordLen is the floor's record: a time and a code.
	FloorRecordLen = 32
	floorFileLen   = 64 << 20 // written with zeros ahead; records wrap around
)

// floorLog is the floor's log. A commit starts as soon as the last one
// returns, with every record that arrived meanwhile: the least a request
// can wait. The file is written with zeros first, so that, as in
// clickgate's visit log, an fdatasync changes no metadata.
type floorLog struct {
	f       *os.File
	off     int64 // where the next commit writes
	mu      sync.Mutex
	cur     *floorCommit // takes records; under mu
	wake    chan struct{}
	quit    chan struct{}
	stopped chan struct{}
}

type floorCommit struct {
	recs []byte
	done chan struct{} // closed once recs are durable, or err set
	err  error
}

func openFloorLog(path string) (*floorLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < floorFileLen && err == nil; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros, off)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot prepare the floor's log %q: %w", path, err)
	}
	l := &floorLog{f: f, cur: &floorCommit{done: make(chan struct{})}, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), stopped: make(chan struct{})}
	go l.run()
	return l, nil
}

// append adds a record of code to the next commit and waits for it.
func (l *floorLog) append(code []byte) error {
	var rec [FloorRecordLen]byte
	binary.LittleEndian.PutUint64(rec[:], uint64(time.Now().UnixNano()))
	copy(rec[8:], code)
	l.mu.Lock()
	c := l.cur
	c.recs = append(c.recs, rec[:]...)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-c.done
	return c.err
}

func (l *floorLog) run() {
	defer close(l.stopped)
	for {
		select {
		case <-l.quit:
			return
		case <-l.wake:
		}
		l.mu.Lock()
		c := l.cur
		l.cur = &floorCommit{done: make(chan struct{})}
		l.mu.Unlock()
		if len(c.recs) > 0 { // not taken by the commit before
			if l.off+int64(len(c.recs)) > floorFileLen {
				l.off = 0
			}
			_, c.err = l.f.WriteAt(c.recs, l.off)
			if c.err == nil {
				c.err = disk.DataSync(l.f)
			}
			l.off += int64(len(c.recs))
		}
		close(c.done)
	}
}

package ledger

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/clickgate/clickgate/counter/disk"
)

var (
	// ErrBroken is returned by Append once a write or an fsync of the
	// ledger file failed. The file's state on disk is then unknown (an
	// fsync error may have dropped pages that later fsyncs report as
	// clean), so the Ledger writes nothing more; reopening it recovers.
	ErrBroken = errors.New("ledger: broken; restart to recover")
	// ErrInvalid is wrapped by Append's errors for a batch it refuses;
	// nothing was written and the Ledger stays usable.
	ErrInvalid = errors.New("ledger: invalid batch")
	// ErrInUse is matched by Open's error when another Ledger holds the file.
	ErrInUse = errors.New("ledger: in use by another process")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("ledger: closed")
)

// Entry is one creator's cumulative totals in one campaign as of a batch,
// with what a payout needs to know of the creator at that time.
type Entry struct {
	Campaign  string `json:"campaign"`
	Creator   string `json:"creator"`
	Qualified int64  `json:"qualified"` // cumulative qualified visits
	Signups   int64  `json:"signups"`   // cumulative attributed signups
	Handle    string `json:"handle,omitempty"`
	Country   string `json:"country,omitempty"`
	Status    string `json:"status,omitempty"`
}

// Terms are a campaign's payout terms as of a batch, so that payouts are
// computed from the ledger alone.
type Terms struct {
	ID                    string   `json:"id"`
	Name                  string   `json:"name,omitempty"`
	SignupRewardCents     int64    `json:"signup_reward_cents"`
	VisitBlockSize        int64    `json:"visit_block_size"`
	VisitBlockRewardCents int64    `json:"visit_block_reward_cents"`
	CapCents              int64    `json:"cap_cents"`
	EligibleCountries     []string `json:"eligible_countries,omitempty"`
	// PayableAfter is the campaign's end plus its signup grace: a
	// statement needs a flush after it.
	PayableAfter time.Time `json:"payable_after"`
}

// Batch is one flush: the entries and terms that changed, written as one
// record.
type Batch struct {
	Seq       uint64    // assigned by Append: last Seq + 1, starting at 1
	At        time.Time // when the flush read the store (set by the caller)
	Entries   []Entry
	Campaigns []Terms
}

// Key names one creator in one campaign.
type Key struct{ Campaign, Creator string }

// Ledger is the writer of a ledger directory. It holds an exclusive lock on
// the file from Open to Close. Its methods are safe for concurrent use.
type Ledger struct {
	dir, path string
	recovered int64

	// Hooks for tests: a real write or fsync failure cannot be provoked
	// portably.
	write func(f *os.File, p []byte) (int, error)
	sync  func(f *os.File) error

	mu     sync.Mutex
	f      *os.File // nil after Close
	broken error    // the first write or fsync failure; wraps ErrBroken
	st     state
	line   []byte // reused record buffer
}

// Open opens the ledger in dir, creating dir (0700) and the file (0600)
// when missing, and takes an exclusive lock on the file: a second Open, in
// this process or another, fails at once with an error matching ErrInUse.
//
// Open reads every record. A torn tail is truncated back to the end of the
// last good record and fsynced; Recovered says how many bytes that dropped.
// Any other bad record is corruption: Open returns a *RecordError naming it
// (matching ErrCorrupt) and changes nothing.
func Open(dir string) (*Ledger, error) {
	if err := disk.MakeDir(dir); err != nil {
		return nil, fmt.Errorf("cannot open ledger %q: %w", dir, err)
	}
	l := &Ledger{
		dir:   dir,
		path:  filepath.Join(dir, FileName),
		write: (*os.File).Write,
		sync:  (*os.File).Sync,
	}
	f, created, err := openFile(l.path)
	if err != nil {
		return nil, fmt.Errorf("cannot open ledger %q: %w", dir, err)
	}
	if err := disk.Lock(f); err != nil {
		f.Close()
		if errors.Is(err, disk.ErrWouldBlock) {
			return nil, &inUseError{dir}
		}
		return nil, fmt.Errorf("cannot lock ledger %q: %w", dir, err)
	}
	if err := l.recover(f, created); err != nil {
		f.Close() // releases the lock
		return nil, err
	}
	l.f = f
	return l, nil
}

func (l *Ledger) recover(f *os.File, created bool) error {
	if created {
		// The file's directory entry must be durable before any batch is.
		if err := f.Sync(); err != nil {
			return fmt.Errorf("cannot sync new ledger %q: %w", l.path, err)
		}
		if err := disk.SyncDir(l.dir); err != nil {
			return err
		}
	}
	st, bad, err := scan(l.path, io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return fmt.Errorf("cannot open ledger %q: %w", l.dir, err)
	}
	if bad != nil && !bad.Torn {
		return bad // names the file, the line and the offset
	}
	if bad != nil {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("cannot open ledger %q: %w", l.dir, err)
		}
		if err := f.Truncate(st.end); err != nil {
			return fmt.Errorf("cannot truncate the torn tail of %q: %w", l.path, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("cannot sync %q after truncating its torn tail: %w", l.path, err)
		}
		l.recovered = fi.Size() - st.end
		slog.Warn("ledger: truncated a torn tail", "path", l.path, "line", bad.Line,
			"offset", bad.Offset, "bytes", l.recovered, "reason", bad.Reason, "last_seq", st.seq)
	}
	l.st = st
	return nil
}

// Recovered returns how many bytes of a torn tail Open truncated; 0 when the
// file ended with a whole record.
func (l *Ledger) Recovered() (bytes int64) { return l.recovered }

// Append writes b as the next record and fsyncs it; the batch counts as
// written only once Append returns nil. It returns b with Seq set, At in
// UTC and Entries sorted by campaign and creator (a copy: b.Entries is left
// alone). A batch with no entries writes nothing and gets the last Seq.
//
// A batch with a bad id, a negative total, a creator twice, a zero At or a
// total below the ledger's is refused with an error wrapping ErrInvalid.
// Once a write or an fsync fails, this and every later Append return an
// error wrapping ErrBroken. After an error, the record may or may not be in
// the file when it is reopened: compare Totals and LastSeq then.
func (l *Ledger) Append(b Batch) (Batch, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return b, ErrClosed
	}
	if l.broken != nil {
		return b, l.broken
	}
	if len(b.Entries) == 0 && len(b.Campaigns) == 0 {
		b.Seq = l.st.seq
		return b, nil
	}
	b.At = b.At.UTC()
	b.Entries = slices.Clone(b.Entries)
	slices.SortFunc(b.Entries, compareEntries)
	b.Campaigns = slices.Clone(b.Campaigns)
	slices.SortFunc(b.Campaigns, func(x, y Terms) int { return cmp.Compare(x.ID, y.ID) })
	if err := checkBatch(b.At, b.Entries, b.Campaigns); err != nil {
		return b, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := checkTotals(l.st.totals, b.Entries); err != nil {
		return b, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	rec := body{Seq: l.st.seq + 1, At: b.At, Entries: b.Entries, Campaigns: b.Campaigns, Prev: hex.EncodeToString(l.st.head[:])}
	raw, err := encodeBody(&rec)
	if err != nil {
		return b, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	l.line = appendLine(l.line[:0], raw)

	n, err := l.write(l.f, l.line)
	if err == nil && n != len(l.line) {
		err = io.ErrShortWrite
	}
	if err == nil {
		// Never retried: after a failed fsync the kernel may have marked
		// the unwritten pages clean, and a second fsync would succeed.
		err = l.sync(l.f)
	}
	if err != nil {
		l.broken = fmt.Errorf("%w: cannot write batch %d to %q: %w", ErrBroken, rec.Seq, l.path, err)
		return b, l.broken
	}
	l.st.add(&rec)
	l.st.records++
	l.st.seq = rec.Seq
	l.st.head = hashLine(l.line)
	l.st.end += int64(len(l.line))
	if cap(l.line) > 1<<20 {
		l.line = nil // don't keep a huge batch's buffer
	}
	b.Seq = rec.Seq
	return b, nil
}

// Totals returns a copy of the latest cumulative totals of every creator in
// the ledger.
func (l *Ledger) Totals() map[Key]Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.st.totals)
}

// Snapshot returns what Verify would report, read under the writer's lock,
// so that a reader never sees a record being written.
func (l *Ledger) Snapshot() Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.report()
}

// LastSeq returns the Seq of the last record written; 0 when empty.
func (l *Ledger) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.seq
}

// Close closes the file, releasing the lock.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return ErrClosed
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("cannot close ledger %q: %w", l.dir, err)
	}
	return nil
}

type inUseError struct{ dir string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("ledger %q is in use by another process", e.dir)
}

func (e *inUseError) Is(target error) bool { return target == ErrInUse }

// openFile opens path for appending, creating it if missing.
func openFile(path string) (f *os.File, created bool, err error) {
	for range 2 {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		if !errors.Is(err, fs.ErrNotExist) {
			return f, false, err
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			return f, err == nil, err
		}
		// Created by someone else in between: open theirs.
	}
	return nil, false, err
}

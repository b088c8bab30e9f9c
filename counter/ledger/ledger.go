package ledger

import (
	"bytes"
	"cmp"
	"crypto/rand"
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
	"github.com/clickgate/clickgate/counter/payout"
)

var (
	// ErrBroken is matched by the error of an Append or an Init whose
	// write or fsync failed, and of those after it until a repair
	// succeeds. What the file holds past its last good record is then
	// unknown (an fsync error may have dropped pages that later fsyncs
	// report as clean), so it is never fsynced as it is: the next Append
	// or Init first cuts the file back to that record's end and fsyncs
	// the cut.
	ErrBroken = errors.New("ledger: broken")
	// ErrInvalid is wrapped by Append's errors for a batch it refuses;
	// nothing was written and the Ledger stays usable.
	ErrInvalid = errors.New("ledger: invalid batch")
	// ErrInUse is matched by Open's error when another Ledger holds the file.
	ErrInUse = errors.New("ledger: in use by another process")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("ledger: closed")
	// ErrOtherStore is matched by Init's error when the ledger was
	// created for another store.
	ErrOtherStore = errors.New("ledger: created for another store")
	errNoKey      = errors.New("ledger: no key: records are authenticated with the ledger key")
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
	// AcceptedAt is when the creator accepted the campaign's terms, in
	// UTC; zero if they have not (format 2 on). Once in the ledger it
	// never changes.
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
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
// record; or the campaigns whose final statements it seals, written as a
// record of their own.
type Batch struct {
	Seq       uint64    // assigned by Append: last Seq + 1 (the first record, by Init, is 1)
	At        time.Time // when the flush read the store (set by the caller)
	Entries   []Entry
	Campaigns []Terms
	// Seal names campaigns whose final statements the record seals,
	// computed by Append from the ledger before it; Statements returns
	// them. A batch that seals holds no entries or terms.
	Seal       []string
	Statements []payout.Statement
}

// Key names one creator in one campaign.
type Key struct {
	Campaign string `json:"campaign"`
	Creator  string `json:"creator"`
}

// Ledger is the writer of a ledger directory. It holds an exclusive lock on
// the file from Open to Close. Its methods are safe for concurrent use.
type Ledger struct {
	dir, path string
	key       []byte
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

// keyLabel derives the default ledger key from the click secret.
const keyLabel = "clickgate/ledger-key/v1"

// DeriveKey returns the ledger key derived from secret: HMAC-SHA256(secret,
// "clickgate/ledger-key/v1"). It is what a node uses when no key file is
// configured; a key kept apart from the data directory is stronger.
func DeriveKey(secret []byte) []byte {
	return mac(secret, []byte(keyLabel))
}

// Open opens the ledger in dir, creating dir (0700) and the file (0600)
// when missing, and takes an exclusive lock on the file: a second Open, in
// this process or another, fails at once with an error matching ErrInUse.
// key authenticates every record (see the package doc); keep it where the
// ledger's readers can get it and its writers' attackers cannot.
//
// Open reads every record. A torn tail is truncated back to the end of the
// last good record and fsynced; Recovered says how many bytes that dropped.
// Any other bad record, one whose hmac fails included, is corruption: Open
// returns a *RecordError naming it (matching ErrCorrupt) and changes
// nothing. A new ledger is empty until Init writes its first record.
func Open(dir string, key []byte) (*Ledger, error) {
	if len(key) == 0 {
		return nil, errNoKey
	}
	if err := disk.MakeDir(dir); err != nil {
		return nil, fmt.Errorf("cannot open ledger %q: %w", dir, err)
	}
	l := &Ledger{
		dir:   dir,
		path:  filepath.Join(dir, FileName),
		key:   bytes.Clone(key),
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
	st, bad, err := scan(l.path, io.NewSectionReader(f, 0, 1<<62), l.key)
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

// Init binds the ledger to the store whose id is store: an empty ledger
// gets its first record, naming a new random ledger id and store; a ledger
// created for another store is refused with an error matching
// ErrOtherStore, since one ledger flushes one store only.
func (l *Ledger) Init(store string, at time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	switch {
	case l.st.seq > 0:
		if l.st.store != store {
			return fmt.Errorf("%w: ledger %q (id %s) was created for store %s, and this store is %s; point --ledger at this store's own ledger",
				ErrOtherStore, l.dir, l.st.ledger, l.st.store, store)
		}
		return nil
	}
	if err := checkID("store", store); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var id [16]byte
	rand.Read(id[:])
	return l.write1(&body{Seq: 1, At: at.UTC(), Ledger: hex.EncodeToString(id[:]), Store: store, Format: Format})
}

// ID returns the ledger's id; empty before Init.
func (l *Ledger) ID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.ledger
}

// Append writes b as the next record and fsyncs it; the batch counts as
// written only once Append returns nil. It returns b with Seq set, At in
// UTC, Entries sorted by campaign and creator (a copy: b.Entries is left
// alone) and the Statements that Seal asked for. A batch with nothing in it
// writes nothing and gets the last Seq.
//
// A batch before Init, with a bad id, a negative total, a creator twice, a
// zero At, a total below the ledger's, or a campaign to seal that is
// unknown, sealed already or not payable at At, is refused with an error
// wrapping ErrInvalid. When a write or the fsync fails, this Append
// returns an error wrapping ErrBroken, and so does every later one until
// the repair that each first tries succeeds (see ErrBroken); the repair
// cuts the record off. After a crash meanwhile, the record may or may not
// be in the file when it is reopened: compare Totals and LastSeq then.
func (l *Ledger) Append(b Batch) (Batch, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return b, err
	}
	switch {
	case len(b.Entries) == 0 && len(b.Campaigns) == 0 && len(b.Seal) == 0:
		b.Seq = l.st.seq
		return b, nil
	case l.st.seq == 0:
		return b, fmt.Errorf("%w: ledger %q has no first record; Init binds it to its store", ErrInvalid, l.dir)
	}
	b.At = b.At.UTC()
	b.Entries = slices.Clone(b.Entries)
	for i := range b.Entries {
		b.Entries[i].AcceptedAt = b.Entries[i].AcceptedAt.UTC()
	}
	slices.SortFunc(b.Entries, compareEntries)
	b.Campaigns = slices.Clone(b.Campaigns)
	slices.SortFunc(b.Campaigns, func(x, y Terms) int { return cmp.Compare(x.ID, y.ID) })
	b.Statements = nil
	for _, id := range slices.Compact(slices.Sorted(slices.Values(b.Seal))) {
		s, err := l.st.statement(id, b.At)
		if err != nil {
			return b, fmt.Errorf("%w: cannot seal: %w", ErrInvalid, err)
		}
		b.Statements = append(b.Statements, s)
	}
	if err := checkBatch(b.At, b.Entries, b.Campaigns, b.Statements); err != nil {
		return b, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := checkTotals(l.st.totals, b.Entries); err != nil {
		return b, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	rec := body{Seq: l.st.seq + 1, At: b.At, Entries: b.Entries, Campaigns: b.Campaigns, Statements: b.Statements}
	if l.st.format < Format && accepts(b.Entries) {
		// The first acceptance time in a version 1 ledger: this record
		// upgrades it.
		rec.Format = Format
	}
	if err := l.write1(&rec); err != nil {
		return b, err
	}
	b.Seq = rec.Seq
	return b, nil
}

// usable returns ErrClosed after Close, and repairs a broken ledger: it
// cuts the file back to the end of its last good record, as Open cuts a
// torn tail, and fsyncs it. What the failed write left past that end, in
// the file or only in the page cache, is gone; the pages before it were
// fsynced by the appends that wrote them. It returns why the ledger is
// still broken. The caller holds l.mu.
func (l *Ledger) usable() error {
	switch {
	case l.f == nil:
		return ErrClosed
	case l.broken == nil:
		return nil
	}
	err := l.f.Truncate(l.st.end)
	if err == nil {
		err = l.sync(l.f)
	}
	if err != nil {
		return fmt.Errorf("%w; cannot cut %q back to byte offset %d to repair it: %w", l.broken, l.path, l.st.end, err)
	}
	l.broken = nil
	return nil
}

// write1 chains rec to the ledger, writes and fsyncs it, and adds it to the
// state. The caller holds l.mu and has checked that l is open and whole.
func (l *Ledger) write1(rec *body) error {
	rec.Prev = hex.EncodeToString(l.st.head[:])
	raw, err := encodeBody(rec)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	l.line = appendLine(l.line[:0], raw, l.key)

	n, err := l.write(l.f, l.line)
	if err == nil && n != len(l.line) {
		err = io.ErrShortWrite
	}
	if err == nil {
		// Never retried as it is (see usable): after a failed fsync the
		// kernel may have marked the unwritten pages clean, and a second
		// fsync would succeed.
		err = l.sync(l.f)
	}
	if err != nil {
		l.broken = fmt.Errorf("%w: cannot write record %d to %q: %w", ErrBroken, rec.Seq, l.path, err)
		return l.broken
	}
	l.st.add(rec, l.line)
	if cap(l.line) > 1<<20 {
		l.line = nil // don't keep a huge batch's buffer
	}
	return nil
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

// Package boltstore is the embedded counter.Store: single node, in-process,
// persisted under a data directory. It is what `clickgate serve` runs when
// no Redis URL is given.
//
// Visits go to the visit log (DIR/visits, one fsync per group commit) and
// are decided by the judge in this process, whose checkpoint is
// DIR/judge.checkpoint (see core.go). The catalog, the counts that need no
// dedupe, signups and claims are in one bbolt file, written at a low rate.
// Stats are the judge's counters plus the file's.
//
// Layout of <dir>/clickgate.db (top-level buckets):
//
//	meta       "params"  → DedupeParams.String() recorded on first open
//	           "version" → catalog version, 8-byte big-endian uint64
//	campaigns  id → JSON counter.Campaign
//	creators   campaign 0x00 id → JSON counter.Creator
//	links      code → JSON counter.Link
//	counters   campaign 0x00 creator 0x00 day reason → 8-byte big-endian int64
//	link_counters  campaign 0x00 creator 0x00 code 0x00 day reason → the same, of one
//	           link of the creator (counts added with their link, signups on a link)
//	signups    campaign 0x00 user → creator
//	clicks     campaign 0x00 click key → user who used the click id
//
// day is the 4-byte big-endian counter.Day with its sign bit flipped, so
// that keys sort by time, negative values included. reason is
// the reason's name (counter.Reason.String()), so one creator's counters are
// a prefix scan in day order.
//
// Because 0x00 separates the parts of a key, ids must not contain it; the
// store rejects such ids instead of letting two creators share counters.
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/clickgate/clickgate/counter"

	"github.com/clickgate/clickgate/counter/disk"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// FileName is the name of the database file in the data directory.
const FileName = "clickgate.db"

// lockTimeout bounds the wait for the file lock, so that a second process on
// the same data directory fails with a clear error instead of hanging.
const lockTimeout = time.Second

var (
	bucketMeta         = []byte("meta")
	bucketCampaigns    = []byte("campaigns")
	bucketCreators     = []byte("creators")
	bucketLinks        = []byte("links") // by code: earlier versions' (see linkindex.go)
	bucketCounters     = []byte("counters")
	bucketLinkCounters = []byte("link_counters") // a link's share of counters
	bucketSignups      = []byte("signups")       // campaign \x00 user → creator
	bucketClicks       = []byte("clicks")        // campaign \x00 click key → user

	allBuckets = [][]byte{bucketMeta, bucketCampaigns, bucketCreators, bucketLinkSeq,
		bucketCounters, bucketLinkCounters, bucketSignups, bucketClicks}

	keyParams  = []byte("params")
	keyVersion = []byte("version")
)

// Store is the embedded counter.Store. Safe for concurrent use; write
// transactions (Commit, AddCounts, catalog changes) run one at a time.
type Store struct {
	db      *bolt.DB
	dir     string
	core    *core      // the visit log and its judge
	links   *linkIndex // code → key in bucketLinkSeq
	linksMu sync.Mutex // held by the one transaction that creates links
	recent  recentLinks
}

var _ counter.Store = (*Store)(nil)

// Open opens the store in dir, creating dir (0700) and the database file
// (0600) if they are missing. The first open records p; a later open with
// other parameters fails with an error wrapping counter.ErrParamsMismatch,
// and one whose judge's checkpoint has another sizing (p.Expected, p.FP,
// p.Keying) with one wrapping judge.ErrParams. The budgets and the
// velocity rule (p.BudgetNetwork, p.BudgetBlock, p.VelocityMax,
// p.VelocityWindow) may change from one open to the next:
// the change is logged and applies to the visits committed after (see
// core.go).
// A data directory is open in at most one process at a time: Open fails
// after about a second if another process holds it.
func Open(dir string, p counter.DedupeParams) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data directory %q: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)

	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		// Files of earlier versions dropped whole dedupe windows at once; the hashmap
		// freelist keeps allocation fast when the free list is long.
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("data directory %q is in use by another process", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open database %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("cannot create bucket %q: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		want := p.String()
		got := meta.Get(keyParams)
		if got == nil {
			return meta.Put(keyParams, []byte(want))
		}
		if string(got) != want {
			return fmt.Errorf("stored dedupe parameters %q, given %q: %w", got, want, counter.ErrParamsMismatch)
		}
		return nil
	})
	if err == nil && created {
		// The file's directory entry must be durable too, or a crash could
		// lose every visit committed to a new data directory.
		err = disk.SyncDir(dir)
	}
	var links *linkIndex
	if err == nil {
		links, err = openLinks(db)
	}
	var c *core
	if err == nil {
		c, err = openCore(dir, p, slog.Default())
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot open store in %q: %w", dir, err)
	}
	return &Store{db: db, dir: dir, core: c, links: links}, nil
}

// Ping reports whether the store takes visits: an error while its visit
// log is broken (a write or an fsync failed) and while it has no room for
// them (a full disk). Commits fail meanwhile, and their visits go to the
// spool. An error too while the room ahead of the log's records runs out:
// commits go on in what is left, but not for long. /readyz says so. The
// log is repaired in place by the next commit, or by Ping itself, once the
// disk takes writes again.
func (s *Store) Ping(context.Context) error {
	err := s.core.log.Repair()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, visitlog.ErrShort):
		return fmt.Errorf("the visit log runs out of room: it takes visits in what it has left, but cannot make more: %w", err)
	}
	return fmt.Errorf("the visit log cannot take visits: %w", err)
}

// Close takes the judge's last checkpoint and closes the log and the
// database. Call it once, after every other call returned.
func (s *Store) Close() error {
	err := s.core.close()
	if e := s.db.Close(); err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("cannot close store in %q: %w", s.dir, err)
	}
	return nil
}

func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// checkID rejects ids that cannot be part of a key: empty ones, and ones
// with the 0x00 separator.
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%s id must not be empty", what)
	}
	if strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("%s id %q must not contain a NUL byte", what, id)
	}
	return nil
}

const signBit32 = 1 << 31

func appendPair(dst []byte, a, b string) []byte {
	dst = append(dst, a...)
	dst = append(dst, 0)
	return append(dst, b...)
}

// appendCounterPrefix appends the prefix of every counter of one creator.
func appendCounterPrefix(dst []byte, campaign, creator string) []byte {
	return append(appendPair(dst, campaign, creator), 0)
}

// appendCounterKey appends the key of one counter; reason is a reason name.
func appendCounterKey(dst []byte, campaign, creator string, d counter.Day, reason string) []byte {
	dst = appendCounterPrefix(dst, campaign, creator)
	return appendDayReason(dst, d, reason)
}

// appendLinkCounterPrefix appends the prefix of every counter of link
// code of creator, in bucket link_counters.
func appendLinkCounterPrefix(dst []byte, campaign, creator, code string) []byte {
	dst = appendCounterPrefix(dst, campaign, creator)
	return append(append(dst, code...), 0)
}

func appendDayReason(dst []byte, d counter.Day, reason string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(d)^signBit32)
	return append(dst, reason...)
}

func decodeDay(b []byte) counter.Day {
	return counter.Day(int32(binary.BigEndian.Uint32(b) ^ signBit32))
}

func getUint64(b *bolt.Bucket, key []byte) (uint64, error) {
	v := b.Get(key)
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, fmt.Errorf("value of %q is %d bytes; want 8", key, len(v))
}

func putUint64(b *bolt.Bucket, key []byte, n uint64) error {
	// bbolt keeps the value until the transaction ends: give it its own.
	return b.Put(key, binary.BigEndian.AppendUint64(make([]byte, 0, 8), n))
}

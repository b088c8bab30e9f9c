package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/clickgate/clickgate/counter"
)

// Links are kept in the order they were created, not by code: bucket
// links_seq maps a link's key, an 8-byte big-endian sequence number and
// then its code, to its JSON. Creating links so appends to the bucket's
// last pages, where in a bucket keyed by code the random codes land on
// random pages and each link rewrote one in its transaction. (Measured
// once with a throwaway program, 10,000 links in transactions of 64 into
// a bucket of 40,000 or 200,000: bbolt took 32-44 µs of CPU per link
// keyed by code, 8-12 µs appended.) The index from code to key is in
// memory, built from the keys at open. A data directory of an earlier
// version, its links keyed by code in bucket links, has them moved over
// then.
var bucketLinkSeq = []byte("links_seq")

// linkKey is the key in bucketLinkSeq of the link code created seq-th.
func linkKey(seq uint64, code string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(code)), seq), code...)
}

// linkIndex maps the code of every link committed, or being committed by
// the one writer that holds Store.linksMu, to its sequence number, which
// never changes.
type linkIndex struct {
	mu  sync.RWMutex
	seq map[string]uint64
}

// get returns the sequence number of code.
func (x *linkIndex) get(code string) (uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	seq, ok := x.seq[code]
	return seq, ok
}

func (x *linkIndex) set(code string, seq uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.seq[code] = seq
}

func (x *linkIndex) drop(codes []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, code := range codes {
		delete(x.seq, code)
	}
}

// getLink reads the link code in tx into l, or returns counter.ErrNotFound.
func (s *Store) getLink(tx *bolt.Tx, code string, l *counter.Link) error {
	seq, ok := s.links.get(code)
	if !ok {
		return counter.ErrNotFound
	}
	v := tx.Bucket(bucketLinkSeq).Get(linkKey(seq, code))
	if v == nil {
		return counter.ErrNotFound // its transaction is not committed
	}
	if s.recent.get(seq, v, l) {
		return nil
	}
	return json.Unmarshal(v, l)
}

// putLink stores l, created seq-th, as its JSON v, with its change, in
// tx, and keeps it among the recent links: a read checks the JSON it finds
// committed, so a transaction that fails leaves nothing wrong there.
func (s *Store) putLink(tx *bolt.Tx, seq uint64, l *counter.Link, v []byte) error {
	if err := tx.Bucket(bucketLinkSeq).Put(linkKey(seq, l.Code), v); err != nil {
		return err
	}
	s.recent.put(seq, v, l)
	return recordChange(tx, changeLink, []byte(l.Code))
}

// putLinks creates links in tx, or returns the codes of those that exist
// already (taken) and creates none. The caller holds s.linksMu: a link
// created is in the index at once (created lists them), and must be
// dropped from it if tx does not commit.
func (s *Store) putLinks(tx *bolt.Tx, links []byteLink) (created, taken []string, err error) {
	for _, l := range links {
		if _, ok := s.links.get(l.link.Code); ok {
			taken = append(taken, l.link.Code)
		}
	}
	if taken != nil {
		return nil, taken, nil
	}
	b := tx.Bucket(bucketLinkSeq)
	for _, l := range links {
		seq, err := b.NextSequence()
		if err != nil {
			return created, nil, err
		}
		s.links.set(l.link.Code, seq)
		created = append(created, l.link.Code)
		if err := s.putLink(tx, seq, l.link, l.json); err != nil {
			return created, nil, err
		}
	}
	return created, nil, nil
}

// byteLink is a link and its JSON.
type byteLink struct {
	link *counter.Link
	json []byte
}

// linksPerMove is how many links of an earlier version's bucket one
// transaction moves at open.
const linksPerMove = 10_000

// openLinks moves the links of an earlier version's bucket links, if
// any, to bucketLinkSeq, a transaction per linksPerMove (a crash between
// two leaves each link in one of them, and the next open goes on), and
// returns the index of the links.
func openLinks(db *bolt.DB) (*linkIndex, error) {
	for done := false; !done; {
		err := db.Update(func(tx *bolt.Tx) error {
			old := tx.Bucket(bucketLinks)
			if old == nil {
				done = true
				return nil
			}
			b := tx.Bucket(bucketLinkSeq)
			var moved [][2][]byte
			c := old.Cursor()
			for k, v := c.First(); k != nil && len(moved) < linksPerMove; k, v = c.Next() {
				moved = append(moved, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			}
			for _, kv := range moved {
				seq, err := b.NextSequence()
				if err != nil {
					return err
				}
				if err := b.Put(linkKey(seq, string(kv[0])), kv[1]); err != nil {
					return err
				}
				if err := old.Delete(kv[0]); err != nil {
					return err
				}
			}
			if len(moved) < linksPerMove {
				done = true
				return tx.DeleteBucket(bucketLinks)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cannot move the links of an earlier version: %w", err)
		}
	}
	x := &linkIndex{}
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLinkSeq)
		x.seq = make(map[string]uint64, b.Sequence()) // no link is deleted
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				return fmt.Errorf("malformed link key %q", k)
			}
			x.seq[string(k[8:])] = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read the links: %w", err)
	}
	return x, nil
}

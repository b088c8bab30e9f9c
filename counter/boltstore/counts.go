package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/clickgate/clickgate/counter"
)

// present is the value of a visitor key in a window bucket. Not empty, so
// that Get tells a present key from an absent one without doubt.
var present = []byte{1}

// Commit dedupes visits exactly and counts them, all in one write
// transaction that is fsynced before Commit returns. A visitor key repeated
// within visits is Qualified the first time and Duplicate after. On error
// nothing was committed and every out[i] is counter.Uncounted.
//
// At most once per expireInterval, the same transaction first drops the
// dedupe windows that have expired. ctx is checked before the transaction
// starts; a started transaction runs to its end.
func (s *Store) Commit(ctx context.Context, visits []counter.Visit, out []counter.Reason) error {
	if len(out) < len(visits) {
		panic(fmt.Sprintf("BUG: Commit of %d visits into %d reasons", len(visits), len(out)))
	}
	err := s.commit(ctx, visits, out)
	if err != nil {
		for i := range visits {
			out[i] = counter.Uncounted
		}
		return fmt.Errorf("cannot commit %d visits: %w", len(visits), err)
	}
	return nil
}

// window is a dedupe window bucket opened by one Commit.
type window struct {
	campaign string
	start    int64
	expires  int64
	name     []byte
	b        *bolt.Bucket
}

func (s *Store) commit(ctx context.Context, visits []counter.Visit, out []counter.Reason) error {
	for i := range visits {
		v := &visits[i]
		if err := checkID("campaign", v.Campaign); err != nil {
			return err
		}
		if err := checkID("creator", v.Creator); err != nil {
			return err
		}
	}
	if len(visits) == 0 {
		return nil
	}
	now := s.now().Unix()
	expire := now >= s.nextExpire.Load()
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if expire {
			if err := expireWindows(tx, now); err != nil {
				return err
			}
		}
		windows := tx.Bucket(bucketWindows)
		expires := tx.Bucket(bucketExpires)
		// A batch touches few windows: a slice beats a map.
		var open []window
		var counts counterBatch
		for i := range visits {
			v := &visits[i]
			var w *window
			for j := range open {
				if open[j].start == v.Window && open[j].campaign == v.Campaign {
					w = &open[j]
					break
				}
			}
			if w == nil {
				name := appendWindowName(nil, v.Campaign, v.Window)
				b, err := windows.CreateBucketIfNotExists(name)
				if err != nil {
					return fmt.Errorf("cannot open dedupe window %q: %w", name, err)
				}
				open = append(open, window{campaign: v.Campaign, start: v.Window, name: name, b: b})
				w = &open[len(open)-1]
				if expires.Get(name) == nil {
					// A new window: record its expiry, whatever it is.
					w.expires = math.MinInt64
				} else {
					exp, err := getUint64(expires, name)
					if err != nil {
						return fmt.Errorf("cannot read expiry of dedupe window %q: %w", name, err)
					}
					w.expires = int64(exp)
				}
			}
			if v.Expires > w.expires {
				if err := putUint64(expires, w.name, uint64(v.Expires)); err != nil {
					return fmt.Errorf("cannot set expiry of dedupe window %q: %w", w.name, err)
				}
				w.expires = v.Expires
			}

			r := counter.Duplicate
			if w.b.Get(v.Key[:]) == nil {
				if err := w.b.Put(v.Key[:], present); err != nil {
					return fmt.Errorf("cannot add visitor to dedupe window %q: %w", w.name, err)
				}
				r = counter.Qualified
			}
			out[i] = r
			if !v.MarkOnly {
				counts.add(v.Campaign, v.Creator, v.Day, r, 1)
			}
		}
		return counts.apply(tx.Bucket(bucketCounters))
	})
	if err != nil {
		return err
	}
	if expire {
		s.nextExpire.Store(now + int64(expireInterval.Seconds()))
	}
	return nil
}

// expireWindows drops the dedupe windows that expired at or before now.
func expireWindows(tx *bolt.Tx, now int64) error {
	expires := tx.Bucket(bucketExpires)
	var names [][]byte
	err := expires.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("expiry of dedupe window %q is %d bytes; want 8", k, len(v))
		}
		if int64(binary.BigEndian.Uint64(v)) <= now {
			names = append(names, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	windows := tx.Bucket(bucketWindows)
	for _, name := range names {
		err := windows.DeleteBucket(name)
		if err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return fmt.Errorf("cannot drop dedupe window %q: %w", name, err)
		}
		if err := expires.Delete(name); err != nil {
			return fmt.Errorf("cannot drop expiry of dedupe window %q: %w", name, err)
		}
	}
	return nil
}

// AddCounts adds counts in one transaction; zero counts are skipped.
func (s *Store) AddCounts(ctx context.Context, counts []counter.Count) error {
	var batch counterBatch
	for i := range counts {
		c := &counts[i]
		if err := checkID("campaign", c.Campaign); err != nil {
			return err
		}
		if err := checkID("creator", c.Creator); err != nil {
			return err
		}
		if c.Reason >= counter.NumReasons {
			return fmt.Errorf("cannot add counts of unknown %s", c.Reason)
		}
		if c.N != 0 {
			batch.add(c.Campaign, c.Creator, c.Day, c.Reason, c.N)
		}
	}
	if len(batch.keys) == 0 {
		return nil
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return batch.apply(tx.Bucket(bucketCounters))
	})
	if err != nil {
		return fmt.Errorf("cannot add %d counts: %w", len(counts), err)
	}
	return nil
}

// counterBatch sums the increments of one transaction by counter, so that a
// batch of many visits to one creator updates each counter once.
type counterBatch struct {
	index  map[string]int
	keys   [][]byte
	deltas []int64
	buf    []byte
}

func (c *counterBatch) add(campaign, creator string, d counter.Day, r counter.Reason, n int64) {
	c.buf = appendCounterKey(c.buf[:0], campaign, creator, d, r.String())
	if i, ok := c.index[string(c.buf)]; ok {
		c.deltas[i] += n
		return
	}
	if c.index == nil {
		c.index = make(map[string]int)
	}
	c.index[string(c.buf)] = len(c.keys)
	c.keys = append(c.keys, bytes.Clone(c.buf))
	c.deltas = append(c.deltas, n)
}

func (c *counterBatch) apply(b *bolt.Bucket) error {
	// bbolt keeps each value until the transaction ends: one buffer for all.
	vals := make([]byte, 8*len(c.keys))
	for i, k := range c.keys {
		n, err := getUint64(b, k)
		if err != nil {
			return fmt.Errorf("cannot read counter %q: %w", k, err)
		}
		v := vals[8*i : 8*i+8 : 8*i+8]
		binary.BigEndian.PutUint64(v, uint64(int64(n)+c.deltas[i]))
		if err := b.Put(k, v); err != nil {
			return fmt.Errorf("cannot update counter %q: %w", k, err)
		}
	}
	return nil
}

// Stats returns the counters of creator in campaign, one entry per UTC day
// with any count, oldest first. Counters of reasons this build does not
// know are ignored. An unknown creator has no entries.
func (s *Store) Stats(ctx context.Context, campaign, creator string) ([]counter.DayCounts, error) {
	if err := checkID("campaign", campaign); err != nil {
		return nil, err
	}
	if err := checkID("creator", creator); err != nil {
		return nil, err
	}
	prefix := appendCounterPrefix(nil, campaign, creator)
	var days []counter.DayCounts
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCounters).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rest := k[len(prefix):]
			if len(rest) < 4 || len(v) != 8 {
				return fmt.Errorf("malformed counter %q", k)
			}
			r, ok := counter.ParseReason(string(rest[4:]))
			n := int64(binary.BigEndian.Uint64(v))
			if !ok || n == 0 {
				continue
			}
			d := decodeDay(rest)
			if len(days) == 0 || days[len(days)-1].Day != d {
				days = append(days, counter.DayCounts{Day: d})
			}
			days[len(days)-1].Counts[r] += n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read stats of creator %q of campaign %q: %w", creator, campaign, err)
	}
	return days, nil
}

// AttributeSignup records the click and the user and counts the signup in
// one transaction: a click used by another user changes nothing.
func (s *Store) AttributeSignup(ctx context.Context, su counter.Conversion) (bool, string, error) {
	for _, id := range [][2]string{{"campaign", su.Campaign}, {"creator", su.Creator}, {"user", su.UserID}, {"click", su.Click}} {
		if err := checkID(id[0], id[1]); err != nil {
			return false, "", err
		}
	}
	key := append(append([]byte(su.Campaign), 0), su.UserID...)
	click := append(append([]byte(su.Campaign), 0), su.Click...)
	created, owner := false, ""
	err := s.update(ctx, func(tx *bolt.Tx) error {
		clicks := tx.Bucket(bucketClicks)
		if u := clicks.Get(click); u == nil {
			if err := clicks.Put(click, []byte(su.UserID)); err != nil {
				return err
			}
		} else if string(u) != su.UserID {
			return fmt.Errorf("click %q: %w", su.Click, counter.ErrClickUsed)
		}
		b := tx.Bucket(bucketSignups)
		if v := b.Get(key); v != nil {
			owner = string(v)
			return nil
		}
		if err := b.Put(key, []byte(su.Creator)); err != nil {
			return err
		}
		created, owner = true, su.Creator
		var batch counterBatch
		batch.add(su.Campaign, su.Creator, su.Day, counter.Signup, 1)
		return batch.apply(tx.Bucket(bucketCounters))
	})
	if err != nil {
		return false, "", fmt.Errorf("cannot attribute signup of user %q: %w", su.UserID, err)
	}
	return created, owner, nil
}

// Claim records value under name in the meta bucket unless one is there.
func (s *Store) Claim(ctx context.Context, name, value string) (string, error) {
	return s.claim(ctx, name, value, nil)
}

// Reclaim replaces the value under name in the meta bucket if it is old.
func (s *Store) Reclaim(ctx context.Context, name, old, value string) (string, error) {
	return s.claim(ctx, name, value, &old)
}

// claim records value under name when nothing is recorded there, or when
// old is given and recorded, and returns what is recorded then.
func (s *Store) claim(ctx context.Context, name, value string, old *string) (string, error) {
	key := []byte("claim:" + name)
	owner := value
	err := s.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(key); v != nil && (old == nil || string(v) != *old) {
			owner = string(v)
			return nil
		}
		return meta.Put(key, []byte(value))
	})
	if err != nil {
		return "", fmt.Errorf("cannot claim %q: %w", name, err)
	}
	return owner, nil
}

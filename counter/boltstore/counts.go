package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/clickgate/clickgate/counter"
)

// Commit appends visits to the visit log, fsynced before it returns, for
// the judge to decide behind it (see core.go): out[i] is counter.Pending,
// and Stats, from its return on, show the decision. On error nothing was
// committed and every out[i] is counter.Uncounted.
// ctx is checked before the append starts; a started append runs to its
// end.
func (s *Store) Commit(ctx context.Context, visits []counter.Visit, out []counter.Reason) error {
	if len(out) < len(visits) {
		panic(fmt.Sprintf("BUG: Commit of %d visits into %d reasons", len(visits), len(out)))
	}
	err := ctx.Err()
	for i := range visits {
		if err == nil {
			err = checkID("campaign", visits[i].Campaign)
		}
		if err == nil {
			err = checkID("creator", visits[i].Creator)
		}
	}
	if err == nil && len(visits) > 0 {
		err = s.core.commit(visits, out)
	}
	if err != nil {
		for i := range visits {
			out[i] = counter.Uncounted
		}
		return fmt.Errorf("cannot commit %d visits: %w", len(visits), err)
	}
	return nil
}

// AddCounts adds counts in one transaction; zero counts are skipped. A
// count with a link is added to the link's counters too.
func (s *Store) AddCounts(ctx context.Context, counts []counter.Count) error {
	var batch, links counterBatch
	for i := range counts {
		c := &counts[i]
		if err := checkID("campaign", c.Campaign); err != nil {
			return err
		}
		if err := checkID("creator", c.Creator); err != nil {
			return err
		}
		if c.Link != "" {
			if err := checkID("link", c.Link); err != nil {
				return err
			}
		}
		if c.Reason >= counter.NumReasons {
			return fmt.Errorf("cannot add counts of unknown %s", c.Reason)
		}
		if c.N != 0 {
			batch.add(c.Campaign, c.Creator, "", c.Day, c.Reason, c.N)
			if c.Link != "" {
				links.add(c.Campaign, c.Creator, c.Link, c.Day, c.Reason, c.N)
			}
		}
	}
	if len(batch.keys) == 0 {
		return nil
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if err := batch.apply(tx.Bucket(bucketCounters)); err != nil {
			return err
		}
		return links.apply(tx.Bucket(bucketLinkCounters))
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

// add adds n to a counter of creator, or of their link code if it is
// not "" (bucket link_counters).
func (c *counterBatch) add(campaign, creator, code string, d counter.Day, r counter.Reason, n int64) {
	if code == "" {
		c.buf = appendCounterKey(c.buf[:0], campaign, creator, d, r.String())
	} else {
		c.buf = appendDayReason(appendLinkCounterPrefix(c.buf[:0], campaign, creator, code), d, r.String())
	}
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
	days, err := s.counters(ctx, bucketCounters, appendCounterPrefix(nil, campaign, creator))
	if err != nil {
		return nil, fmt.Errorf("cannot read stats of creator %q of campaign %q: %w", creator, campaign, err)
	}
	return counter.MergeDays(days, s.core.stats(campaign, creator)), nil
}

// counters reads the counters under prefix in bucket, one entry per day,
// oldest first. Counters of reasons this build does not know are ignored.
func (s *Store) counters(ctx context.Context, bucket, prefix []byte) ([]counter.DayCounts, error) {
	var days []counter.DayCounts
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
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
	return days, err
}

// AttributeSignup records the click and the user and counts the signup in
// one transaction: a click used by another user changes nothing.
func (s *Store) AttributeSignup(ctx context.Context, su counter.Conversion) (bool, string, error) {
	for _, id := range [][2]string{{"campaign", su.Campaign}, {"creator", su.Creator}, {"user", su.UserID}, {"click", su.Click}} {
		if err := checkID(id[0], id[1]); err != nil {
			return false, "", err
		}
	}
	if su.Link != "" {
		if err := checkID("link", su.Link); err != nil {
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
		var batch, link counterBatch
		batch.add(su.Campaign, su.Creator, "", su.Day, counter.Signup, 1)
		if su.Link != "" {
			link.add(su.Campaign, su.Creator, su.Link, su.Day, counter.Signup, 1)
		}
		if err := batch.apply(tx.Bucket(bucketCounters)); err != nil {
			return err
		}
		return link.apply(tx.Bucket(bucketLinkCounters))
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

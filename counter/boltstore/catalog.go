package boltstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	segjson "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"

	"github.com/clickgate/clickgate/counter"
)

// The catalog's change feed: every change records, under its version (8
// bytes big-endian), its kind and key in the bucket changes, which keeps
// the last ChangesKept of them; and the first change of a catalog records
// its epoch in meta. Both are created on first use, so a data directory
// of an earlier version opens as it is.
var (
	bucketChanges = []byte("changes")
	keyEpoch      = []byte("epoch")
)

// ChangesKept is how many catalog changes the store keeps for the link
// table to catch up with; a table further behind reads the whole catalog.
// default: 100000
var ChangesKept uint64 = 100_000

// Kinds of a change, the first byte of its record.
const (
	changeCampaign = 'c'
	changeCreator  = 'r'
	changeLink     = 'l'
)

// recordChange bumps the catalog version and records the change of key
// of kind in the feed; it runs in the change's transaction.
func recordChange(tx *bolt.Tx, kind byte, key []byte) error {
	meta := tx.Bucket(bucketMeta)
	v, err := getUint64(meta, keyVersion)
	if err != nil {
		return fmt.Errorf("cannot read catalog version: %w", err)
	}
	v++
	if err := putUint64(meta, keyVersion, v); err != nil {
		return err
	}
	if meta.Get(keyEpoch) == nil {
		if err := meta.Put(keyEpoch, []byte(newEpoch())); err != nil {
			return err
		}
	}
	changes, err := tx.CreateBucketIfNotExists(bucketChanges)
	if err != nil {
		return err
	}
	if err := changes.Put(versionKey(v), append([]byte{kind}, key...)); err != nil {
		return err
	}
	if v > ChangesKept {
		return changes.Delete(versionKey(v - ChangesKept))
	}
	return nil
}

func versionKey(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// newEpoch names a new history of the catalog.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// putJSON stores v under key in bucket and records the change of kind.
func putJSON(tx *bolt.Tx, kind byte, bucket, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucket).Put(key, b); err != nil {
		return err
	}
	return recordChange(tx, kind, key)
}

// getJSON reads key from bucket into v, or returns counter.ErrNotFound.
func getJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	b := tx.Bucket(bucket).Get(key)
	if b == nil {
		return counter.ErrNotFound
	}
	return json.Unmarshal(b, v)
}

// PutCampaign creates or replaces c.
func (s *Store) PutCampaign(ctx context.Context, c counter.Campaign) error {
	if err := checkID("campaign", c.ID); err != nil {
		return err
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return putJSON(tx, changeCampaign, bucketCampaigns, []byte(c.ID), &c)
	})
	if err != nil {
		return fmt.Errorf("cannot put campaign %q: %w", c.ID, err)
	}
	return nil
}

// Campaign returns the campaign id, or counter.ErrNotFound.
func (s *Store) Campaign(ctx context.Context, id string) (counter.Campaign, error) {
	var c counter.Campaign
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(tx, bucketCampaigns, []byte(id), &c)
	})
	if err != nil {
		return counter.Campaign{}, fmt.Errorf("cannot read campaign %q: %w", id, err)
	}
	return c, nil
}

// PutCreator creates or replaces c in its campaign.
func (s *Store) PutCreator(ctx context.Context, c counter.Creator) error {
	if err := checkID("campaign", c.Campaign); err != nil {
		return err
	}
	if err := checkID("creator", c.ID); err != nil {
		return err
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return putJSON(tx, changeCreator, bucketCreators, appendPair(nil, c.Campaign, c.ID), &c)
	})
	if err != nil {
		return fmt.Errorf("cannot put creator %q of campaign %q: %w", c.ID, c.Campaign, err)
	}
	return nil
}

// Creator returns creator id of campaign, or counter.ErrNotFound.
func (s *Store) Creator(ctx context.Context, campaign, id string) (counter.Creator, error) {
	var c counter.Creator
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(tx, bucketCreators, appendPair(nil, campaign, id), &c)
	})
	if err != nil {
		return counter.Creator{}, fmt.Errorf("cannot read creator %q of campaign %q: %w", id, campaign, err)
	}
	return c, nil
}

// CreateLink stores l, or returns counter.ErrExists when its code is taken.
func (s *Store) CreateLink(ctx context.Context, l counter.Link) error {
	if l.Code == "" {
		return fmt.Errorf("link code must not be empty")
	}
	err := s.createLinks(ctx, []counter.Link{l})
	if _, ok := errors.AsType[*counter.CodesTakenError](err); ok {
		err = counter.ErrExists
	}
	if err != nil {
		return fmt.Errorf("cannot create link %q: %w", l.Code, err)
	}
	return nil
}

// CreateLinks stores links, all or none: when some of their codes are
// taken it creates none and returns a *counter.CodesTakenError.
func (s *Store) CreateLinks(ctx context.Context, links []counter.Link) error {
	seen := make(map[string]bool, len(links))
	for _, l := range links {
		if l.Code == "" {
			return fmt.Errorf("link code must not be empty")
		}
		if seen[l.Code] {
			return fmt.Errorf("cannot create links: code %q is given twice", l.Code)
		}
		seen[l.Code] = true
	}
	if err := s.createLinks(ctx, links); err != nil {
		return fmt.Errorf("cannot create %d links: %w", len(links), err)
	}
	return nil
}

// TakenCodes returns those of codes that name a link, in their order.
func (s *Store) TakenCodes(ctx context.Context, codes []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Not while links are being created: their codes are in the index
	// before their transaction commits.
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	var taken []string
	for _, code := range codes {
		if _, ok := s.links.get(code); ok {
			taken = append(taken, code)
		}
	}
	return taken, nil
}

// createLinks stores links in one transaction, or none of them with a
// *counter.CodesTakenError.
func (s *Store) createLinks(ctx context.Context, links []counter.Link) error {
	enc := make([]byteLink, len(links))
	for i := range links {
		b, err := json.Marshal(&links[i])
		if err != nil {
			return err
		}
		enc[i] = byteLink{&links[i], b}
	}
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	var created []string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var taken []string
		var err error
		created, taken, err = s.putLinks(tx, enc)
		if taken != nil {
			return &counter.CodesTakenError{Codes: taken}
		}
		return err
	})
	if err != nil {
		s.links.drop(created)
	}
	return err
}

// UpdateLink changes the link of code with update, in one transaction,
// and returns it as stored: counter.ErrNotFound for an unknown code, or
// update's error, and then nothing changes. update may not change the
// code, the campaign or the creator.
func (s *Store) UpdateLink(ctx context.Context, code string, update func(*counter.Link) error) (counter.Link, error) {
	var l counter.Link
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if err := s.getLink(tx, code, &l); err != nil {
			return err
		}
		old := l
		if err := update(&l); err != nil {
			return err
		}
		if l.Code != old.Code || l.Campaign != old.Campaign || l.Creator != old.Creator {
			return errors.New("a link's code, campaign and creator cannot change")
		}
		b, err := json.Marshal(&l)
		if err != nil {
			return err
		}
		seq, _ := s.links.get(code)
		return s.putLink(tx, seq, &l, b)
	})
	if err != nil {
		return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, err)
	}
	return l, nil
}

// Link returns the link of code, or counter.ErrNotFound.
func (s *Store) Link(ctx context.Context, code string) (counter.Link, error) {
	var l counter.Link
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return s.getLink(tx, code, &l)
	})
	if err != nil {
		return counter.Link{}, fmt.Errorf("cannot read link %q: %w", code, err)
	}
	return l, nil
}

// Version returns the catalog version; it changes with every catalog change.
func (s *Store) Version(ctx context.Context) (uint64, error) {
	var v uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		v, err = getUint64(tx.Bucket(bucketMeta), keyVersion)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cannot read catalog version: %w", err)
	}
	return v, nil
}

// Catalog reads the whole catalog in one transaction, so at one version.
// Entries are in key order: campaigns by id, creators by campaign and id,
// links by code.
func (s *Store) Catalog(ctx context.Context) (*counter.Catalog, error) {
	return s.catalog(ctx, true)
}

// Roster is Catalog without the links.
func (s *Store) Roster(ctx context.Context) (*counter.Catalog, error) {
	return s.catalog(ctx, false)
}

func (s *Store) catalog(ctx context.Context, links bool) (*counter.Catalog, error) {
	cat := &counter.Catalog{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		if cat.Version, err = getUint64(tx.Bucket(bucketMeta), keyVersion); err != nil {
			return err
		}
		cat.Epoch = string(tx.Bucket(bucketMeta).Get(keyEpoch))
		if cat.Campaigns, err = readAll[counter.Campaign](tx, bucketCampaigns); err != nil {
			return err
		}
		if cat.Creators, err = readAll[counter.Creator](tx, bucketCreators); err != nil {
			return err
		}
		if links {
			cat.Links, err = readAll[counter.Link](tx, bucketLinkSeq)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog: %w", err)
	}
	if links {
		cat.Links = counter.SortByKey(cat.Links, func(l *counter.Link) string { return l.Code })
	}
	return cat, nil
}

// readAll decodes a whole bucket. A start reads the catalog through it,
// a million links at a time: segmentio's decoder, a drop-in for
// encoding/json's, took 1.7-2.1 s of one core on 1M stored links, against
// 4.3-4.8 s (a throwaway measurement). The slice is sized first, from a
// walk of the bucket's pages: grown by append, a million links were copied
// over and over, under the collector's write barriers, and reading them
// took 5.9 s instead of 2.1-2.3 (a throwaway measurement on two cores).
func readAll[T any](tx *bolt.Tx, bucket []byte) ([]T, error) {
	b := tx.Bucket(bucket)
	all := make([]T, 0, b.Stats().KeyN)
	err := b.ForEach(func(k, v []byte) error {
		var x T
		if err := segjson.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("cannot decode %s entry %q: %w", bucket, k, err)
		}
		all = append(all, x)
		return nil
	})
	return all, err
}

// CatalogChanges returns the changes after version since, at most limit
// of them (counter.CatalogChanges); it says Trimmed when the feed no
// longer holds the change after since.
func (s *Store) CatalogChanges(ctx context.Context, since uint64, limit int) (*counter.CatalogChanges, error) {
	ch := &counter.CatalogChanges{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		v, err := getUint64(meta, keyVersion)
		if err != nil {
			return err
		}
		ch.Version, ch.Epoch = v, string(meta.Get(keyEpoch))
		if since >= v {
			return nil
		}
		changes := tx.Bucket(bucketChanges)
		if changes == nil {
			ch.Trimmed = true
			return nil
		}
		c := changes.Cursor()
		k, rec := c.Seek(versionKey(since))
		if k != nil && binary.BigEndian.Uint64(k) == since {
			ch.At = string(rec)
			k, rec = c.Next()
		}
		if k == nil || binary.BigEndian.Uint64(k) != since+1 {
			ch.Trimmed = true
			return nil
		}
		seen := make(map[string]bool)
		if limit > 0 {
			// Mostly links: a bulk import's, a call's worth at a time.
			ch.Links = make([]counter.Link, 0, min(uint64(limit), v-since))
		}
		last := since
		for ; k != nil && len(rec) > 0; k, rec = c.Next() {
			if limit > 0 && last-since >= uint64(limit) {
				ch.More = true
				break
			}
			last = binary.BigEndian.Uint64(k)
			ch.Last = string(rec)
			if seen[string(rec)] {
				continue
			}
			seen[string(rec)] = true
			if err := s.addChange(tx, ch, rec); err != nil {
				return err
			}
		}
		ch.Version = last
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog changes after version %d: %w", since, err)
	}
	return ch, nil
}

// addChange adds to ch the entry that the change record rec names, as it
// is now.
func (s *Store) addChange(tx *bolt.Tx, ch *counter.CatalogChanges, rec []byte) error {
	key := rec[1:]
	var err error
	switch rec[0] {
	case changeCampaign:
		var c counter.Campaign
		if err = getJSON(tx, bucketCampaigns, key, &c); err == nil {
			ch.Campaigns = append(ch.Campaigns, c)
		}
	case changeCreator:
		var c counter.Creator
		if err = getJSON(tx, bucketCreators, key, &c); err == nil {
			ch.Creators = append(ch.Creators, c)
		}
	case changeLink:
		ch.Links = append(ch.Links, counter.Link{})
		if err = s.getLink(tx, string(key), &ch.Links[len(ch.Links)-1]); err != nil {
			ch.Links = ch.Links[:len(ch.Links)-1]
		}
	default:
		return fmt.Errorf("unknown kind %q of catalog change %q", rec[0], key)
	}
	if err != nil {
		return fmt.Errorf("cannot read %q of catalog change: %w", key, err)
	}
	return nil
}

package boltstore

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/clickgate/clickgate/counter"
)

// bumpVersion marks a catalog change; it runs in the change's transaction.
func bumpVersion(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	v, err := getUint64(meta, keyVersion)
	if err != nil {
		return fmt.Errorf("cannot read catalog version: %w", err)
	}
	return putUint64(meta, keyVersion, v+1)
}

// putJSON stores v under key in bucket and bumps the catalog version.
func putJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucket).Put(key, b); err != nil {
		return err
	}
	return bumpVersion(tx)
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
		return putJSON(tx, bucketCampaigns, []byte(c.ID), &c)
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
		return putJSON(tx, bucketCreators, appendPair(nil, c.Campaign, c.ID), &c)
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
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketLinks).Get([]byte(l.Code)) != nil {
			return counter.ErrExists
		}
		return putJSON(tx, bucketLinks, []byte(l.Code), &l)
	})
	if err != nil {
		return fmt.Errorf("cannot create link %q: %w", l.Code, err)
	}
	return nil
}

// Link returns the link of code, or counter.ErrNotFound.
func (s *Store) Link(ctx context.Context, code string) (counter.Link, error) {
	var l counter.Link
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(tx, bucketLinks, []byte(code), &l)
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
	cat := &counter.Catalog{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		if cat.Version, err = getUint64(tx.Bucket(bucketMeta), keyVersion); err != nil {
			return err
		}
		if cat.Campaigns, err = readAll[counter.Campaign](tx, bucketCampaigns); err != nil {
			return err
		}
		if cat.Creators, err = readAll[counter.Creator](tx, bucketCreators); err != nil {
			return err
		}
		cat.Links, err = readAll[counter.Link](tx, bucketLinks)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog: %w", err)
	}
	return cat, nil
}

func readAll[T any](tx *bolt.Tx, bucket []byte) ([]T, error) {
	var all []T
	err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("cannot decode %s entry %q: %w", bucket, k, err)
		}
		all = append(all, x)
		return nil
	})
	return all, err
}

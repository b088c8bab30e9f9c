package boltstore

import (
	"context"
	"fmt"

	"github.com/clickgate/clickgate/counter"
)

// LinkStats returns the counters of link code of creator in campaign, one
// entry per UTC day, oldest first: what the judge decided of its visits
// (in the judge's checkpoint) plus the counts added with the link and its
// signups (bucket link_counters).
func (s *Store) LinkStats(ctx context.Context, campaign, creator, code string) ([]counter.DayCounts, error) {
	for _, id := range [][2]string{{"campaign", campaign}, {"creator", creator}, {"link", code}} {
		if err := checkID(id[0], id[1]); err != nil {
			return nil, err
		}
	}
	days, err := s.counters(ctx, bucketLinkCounters, appendLinkCounterPrefix(nil, campaign, creator, code))
	if err != nil {
		return nil, fmt.Errorf("cannot read stats of link %q of %q/%q: %w", code, campaign, creator, err)
	}
	return counter.MergeDays(days, s.core.linkStats(campaign, creator, code)), nil
}

// linkStats returns what the judge decided of one link.
func (c *core) linkStats(campaign, creator, code string) []counter.DayCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.caughtUp()
	return c.judge.Link(campaign, creator, code)
}

package boltstore

import (
	"context"

	"github.com/clickgate/clickgate/counter"
)

// LinkStats returns what the judge decided of the visits of link code of
// creator in campaign, one entry per UTC day, oldest first. They are in
// the judge's checkpoint, not in the counters bucket: AddCounts counts
// per creator only.
func (s *Store) LinkStats(ctx context.Context, campaign, creator, code string) ([]counter.DayCounts, error) {
	for _, id := range [][2]string{{"campaign", campaign}, {"creator", creator}, {"link", code}} {
		if err := checkID(id[0], id[1]); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.core.linkStats(campaign, creator, code), nil
}

// linkStats returns what the judge decided of one link.
func (c *core) linkStats(campaign, creator, code string) []counter.DayCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.judge.Link(campaign, creator, code)
}

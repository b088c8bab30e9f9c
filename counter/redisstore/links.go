package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/judge"
)

// LinkStats returns the counters of link code of creator in campaign, per
// day, oldest first: the judged ones (the partition's jl:<code>:<creator>
// hash, overwritten by each publish of the judge) plus those added with
// the link (slot 0's nl:<code>:<creator> hash, by AddCounts and signups),
// as Stats sums a creator's j: and n: hashes.
//
// Like Stats, it includes every visit this store committed before the
// call: it reads the creator's Stats first, which waits, up to
// settleWait, for the judge of the partition to publish past them, and
// the judge publishes a link's counters with its creator's.
func (s *Store) LinkStats(ctx context.Context, campaign, creator, code string) ([]counter.DayCounts, error) {
	if code == "" || strings.Contains(code, ":") {
		return nil, fmt.Errorf("cannot read stats of link %q of %q/%q: a code is not empty and has no ':'", code, campaign, creator)
	}
	if _, err := s.Stats(ctx, campaign, creator); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	judged := pipe.HGetAll(ctx, s.judgedLinkKey(campaign, judge.Partition(campaign, creator, s.partitions), creator, code))
	added := pipe.HGetAll(ctx, s.linkCounterKey(campaign, creator, code))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("cannot read stats of link %q: %w", code, storeErr(err))
	}
	days, err := dayCounts(judged, added)
	if err != nil {
		return nil, fmt.Errorf("cannot read stats of link %q: %w", code, err)
	}
	return days, nil
}

// dayCounts sums counter hashes, <YYYY-MM-DD>:<reason> → count, by day,
// oldest first. Fields of reasons this version does not know are skipped.
func dayCounts(hashes ...*redis.MapStringStringCmd) ([]counter.DayCounts, error) {
	byDay := make(map[counter.Day]*counter.Counts)
	for _, h := range hashes {
		if err := addDayCounts(byDay, h.Val()); err != nil {
			return nil, err
		}
	}
	days := make([]counter.DayCounts, 0, len(byDay))
	for d, c := range byDay {
		if *c != (counter.Counts{}) {
			days = append(days, counter.DayCounts{Day: d, Counts: *c})
		}
	}
	slices.SortFunc(days, func(a, b counter.DayCounts) int { return cmp.Compare(a.Day, b.Day) })
	return days, nil
}

// addDayCounts adds the fields of one counter hash to byDay.
func addDayCounts(byDay map[counter.Day]*counter.Counts, fields map[string]string) error {
	for field, val := range fields {
		dayStr, name, ok := strings.Cut(field, ":")
		if !ok {
			return fmt.Errorf("invalid field %q", field)
		}
		r, ok := counter.ParseReason(name)
		if !ok {
			continue
		}
		d, err := counter.ParseDay(dayStr)
		if err != nil {
			return fmt.Errorf("invalid day in field %q: %w", field, err)
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid count %q of field %q: %w", val, field, err)
		}
		c := byDay[d]
		if c == nil {
			c = new(counter.Counts)
			byDay[d] = c
		}
		c[r] += n
	}
	return nil
}

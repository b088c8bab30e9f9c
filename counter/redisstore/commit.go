package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// Commit appends visits to the logs of their partitions, one batch per
// partition (judge.Partition of campaign and creator), all in one pipeline,
// and answers counter.Pending for each: durable, decided later by the
// partition's judge. The visits of a batch whose append failed are
// Uncounted in out; such a batch may have been appended nevertheless (the
// connection broke after Redis took it). Committed again (the recorder's
// spool replays exactly the visits that failed, so each partition's batch
// again), it has the same batch id, which its judge skips if it has the
// batch already (see batchID).
func (s *Store) Commit(ctx context.Context, visits []counter.Visit, out []counter.Reason) error {
	if len(out) < len(visits) {
		panic(fmt.Sprintf("BUG: redisstore: Commit of %d visits into %d results", len(visits), len(out)))
	}
	for i := range visits {
		out[i] = counter.Uncounted
	}
	if len(visits) == 0 {
		return nil
	}
	// Partitions of a batch are few: a linear search beats a map.
	var keys []partKey
	var groups [][]int // indices into visits, in order
	for i := range visits {
		v := &visits[i]
		k := partKey{v.Campaign, judge.Partition(v.Campaign, v.Creator, s.partitions)}
		g := slices.Index(keys, k)
		if g < 0 {
			keys, groups, g = append(keys, k), append(groups, nil), len(keys)
		}
		groups[g] = append(groups[g], i)
	}
	appends := make([]LogAppend, len(keys))
	var batch []counter.Visit
	var payload []byte
	for g, k := range keys {
		batch = batch[:0]
		for _, i := range groups[g] {
			batch = append(batch, visits[i])
		}
		id := batchID(batch)
		start := len(payload)
		payload = visitlog.AppendBatch(payload, &visitlog.Batch{ID: id, Visits: batch})
		appends[g] = LogAppend{Campaign: k.campaign, Partition: k.partition, BatchID: id, Payload: payload[start:len(payload):len(payload)]}
	}
	err := s.AppendLog(ctx, appends)
	failed := map[int]bool{}
	if e, ok := errors.AsType[*AppendLogError](err); ok {
		for _, g := range e.Failed {
			failed[g] = true
		}
	} else if err != nil {
		return fmt.Errorf("cannot commit %d visits: %w", len(visits), err)
	}
	n := 0
	s.appendedMu.Lock()
	for g, k := range keys {
		if failed[g] {
			n += len(groups[g])
			continue
		}
		if id := appends[g].ID; streamIDBefore(s.appended[k], id) {
			s.appended[k] = id
		}
		for _, i := range groups[g] {
			out[i] = counter.Pending
		}
	}
	s.appendedMu.Unlock()
	if err != nil {
		return fmt.Errorf("cannot commit %d of %d visits: %w", n, len(visits), err)
	}
	return nil
}

// batchID identifies a batch by its content, so that a batch committed
// again after a failure that left its fate unknown has the id it had, and
// the judge skips it (judges.go): FNV-1a (64 bits) of what the visit log
// keeps of each visit, never 0. Two batches of different clicks differ in
// their nonces (and times and keys); a store that sent the very same
// visits twice without a nonce would have its second batch skipped, one
// duplicate click less, never a visitor paid twice.
func batchID(visits []counter.Visit) uint64 {
	h := fnv.New64a()
	var n [8]byte
	num := func(x uint64) {
		binary.LittleEndian.PutUint64(n[:], x)
		h.Write(n[:])
	}
	for i := range visits {
		v := &visits[i]
		num(uint64(len(v.Campaign)))
		io.WriteString(h, v.Campaign)
		num(uint64(len(v.Creator)))
		io.WriteString(h, v.Creator)
		h.Write(v.Key[:])
		flags := uint64(0)
		if v.MarkOnly {
			flags |= 1
		}
		if v.HasAlso {
			flags |= 2
			h.Write(v.Also[:])
		}
		num(flags)
		num(uint64(v.At))
		num(v.Network)
		num(v.Block)
		h.Write(v.Nonce[:])
		num(uint64(v.Window))
	}
	return max(h.Sum64(), 1)
}

// appendedCampaigns returns the campaigns this store appended visits to.
func (s *Store) appendedCampaigns() []string {
	s.appendedMu.Lock()
	defer s.appendedMu.Unlock()
	var out []string
	for k := range s.appended {
		out = append(out, k.campaign)
	}
	return out
}

// appendSlotKey appends "<prefix>:{<campaign>:<slot>}:", the start of every
// key of one campaign and slot.
func appendSlotKey(dst []byte, prefix, campaign string, slot uint32) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, ":{"...)
	dst = append(dst, campaign...)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(slot), 10)
	return append(dst, "}:"...)
}

func (s *Store) counterKey(campaign string, slot uint32, creator string) string {
	b := appendSlotKey(make([]byte, 0, 64), s.prefix, campaign, slot)
	b = append(b, "n:"...)
	return string(append(b, creator...))
}

// linkCounterKey returns the counter hash of link code of creator in slot
// 0 of campaign: "<prefix>:{<campaign>:0}:nl:<code>:<creator>", in the
// hash tag of the creator's counter hash, so that one transaction adds to
// both. A code has no ':' (redirect.ValidCode), so no two links and
// creators share a key.
func (s *Store) linkCounterKey(campaign, creator, code string) string {
	b := appendSlotKey(make([]byte, 0, 64), s.prefix, campaign, 0)
	b = append(b, "nl:"...)
	b = append(append(b, code...), ':')
	return string(append(b, creator...))
}

// AddCounts adds counts to slot 0's counter hashes of their campaign (any
// slot would do: stats sum over slots), and those with a link to the
// link's counter hash, one transaction per campaign, in the hash tag of
// its slot 0, so that a cluster takes it. A campaign's
// counts are added whole or not at all; when some campaigns' were added
// before a failure, the error is a *counter.PartialAddError with the
// counts left to add.
func (s *Store) AddCounts(ctx context.Context, counts []counter.Count) error {
	for i := range counts {
		if c := &counts[i]; c.Reason >= counter.NumReasons {
			return fmt.Errorf("cannot add counts of %q/%q: unknown reason %d", c.Campaign, c.Creator, c.Reason)
		} else if strings.Contains(c.Link, ":") {
			return fmt.Errorf("cannot add counts of link %q of %q/%q: a code has no ':'", c.Link, c.Campaign, c.Creator)
		}
	}
	var campaigns []string
	for i := range counts {
		if counts[i].N != 0 && !slices.Contains(campaigns, counts[i].Campaign) {
			campaigns = append(campaigns, counts[i].Campaign)
		}
	}
	for ci, campaign := range campaigns {
		tx := s.rdb.TxPipeline()
		queued := 0
		for i := range counts {
			if c := &counts[i]; c.N != 0 && c.Campaign == campaign {
				field := c.Day.String() + ":" + c.Reason.String()
				tx.HIncrBy(ctx, s.counterKey(c.Campaign, 0, c.Creator), field, c.N)
				if c.Link != "" {
					tx.HIncrBy(ctx, s.linkCounterKey(c.Campaign, c.Creator, c.Link), field, c.N)
				}
				queued++
			}
		}
		if _, err := tx.Exec(ctx); err != nil {
			err = fmt.Errorf("cannot add %d counts of campaign %q: %w", queued, campaign, storeErr(err))
			if ci == 0 {
				return err
			}
			left := slices.DeleteFunc(slices.Clone(counts), func(c counter.Count) bool {
				return slices.Index(campaigns, c.Campaign) < ci
			})
			return &counter.PartialAddError{Left: left, Err: err}
		}
	}
	return nil
}

// Stats sums the judged counters of creator in campaign and the counter
// hashes of every slot (AddCounts', and those of versions that counted in
// Redis), per day, oldest first. Fields of reasons this version does not
// know are skipped: a newer version may have written them.
//
// It includes every visit this store committed before the call: it waits,
// up to settleWait, until the judge of the creator's partition has
// published past the last batch this store appended there. Past that wait
// (no judge runs, or it is far behind) it returns what was published, and
// the calls of the next settleWait do not wait: a flush of many creators
// must not wait for each.
func (s *Store) Stats(ctx context.Context, campaign, creator string) ([]counter.DayCounts, error) {
	k := partKey{campaign, judge.Partition(campaign, creator, s.partitions)}
	s.appendedMu.Lock()
	want, lagging := s.appended[k], time.Since(s.lagging) < settleWait
	s.appendedMu.Unlock()
	deadline := time.Now().Add(settleWait)
	if d, ok := ctx.Deadline(); ok && d.Add(-settleMargin).Before(deadline) {
		deadline = d.Add(-settleMargin) // time left to read what was published
	}
	for {
		days, judged, err := s.stats(ctx, campaign, creator, k.partition)
		if err != nil || !streamIDBefore(judged, want) || lagging {
			return days, err
		}
		if time.Now().After(deadline) {
			s.appendedMu.Lock()
			s.lagging = time.Now()
			s.appendedMu.Unlock()
			return days, nil
		}
		select {
		case <-ctx.Done():
			return days, nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// settleWait bounds how long Stats waits for a judge, and settleMargin is
// the time it leaves before its context's deadline to read the counters.
const (
	settleWait   = 10 * time.Second
	settleMargin = time.Second
)

// Settle waits until the judges of campaign have published every visit
// appended to its logs before the call, by any node: until the offset
// each partition's judge published reaches the last entry its log held at
// the call. It returns an error saying which partition is behind after
// settleWait (no node judges it, or its judge is far behind), or when ctx
// ends. A flush seals a campaign's final statement only once it settled.
func (s *Store) Settle(ctx context.Context, campaign string) error {
	logs := make([]*redis.XMessageSliceCmd, s.partitions)
	judged := make([]string, s.partitions)
	pipe := s.rdb.Pipeline()
	for p := range s.partitions {
		key, err := s.partitionKey(campaign, p, "log")
		if err != nil {
			return err
		}
		if judged[p], err = s.partitionKey(campaign, p, "judged"); err != nil {
			return err
		}
		logs[p] = pipe.XRevRangeN(ctx, key, "+", "-", 1)
	}
	// A read that the context's deadline cuts fails with an i/o timeout,
	// at times before the context says it is done: the error then says
	// that the wait ran out, as it would between two reads.
	readErr := func(err error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded
		}
		return storeErr(err)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cannot read the logs of campaign %q: %w", campaign, readErr(err))
	}
	deadline := time.Now().Add(settleWait)
	for p := range s.partitions {
		last := logs[p].Val()
		if len(last) == 0 {
			continue // empty: everything was judged, checkpointed and trimmed
		}
		for {
			at, err := s.rdb.Get(ctx, judged[p]).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("cannot read how far partition %d of campaign %q is judged: %w", p, campaign, readErr(err))
			}
			if !streamIDBefore(at, last[0].ID) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("partition %d of campaign %q is judged to %q, its log reaches %q: is a node judging it?", p, campaign, at, last[0].ID)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("partition %d of campaign %q is judged to %q, its log reaches %q: %w", p, campaign, at, last[0].ID, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// stats reads the counters of creator and the offset the judged ones reach.
func (s *Store) stats(ctx context.Context, campaign, creator string, partition uint32) ([]counter.DayCounts, string, error) {
	judgedKey, err := s.partitionKey(campaign, partition, "judged")
	if err != nil {
		return nil, "", fmt.Errorf("cannot read stats of %q/%q: %w", campaign, creator, err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, s.params.Slots, s.params.Slots+1)
	for slot := range s.params.Slots {
		cmds[slot] = pipe.HGetAll(ctx, s.counterKey(campaign, slot, creator))
	}
	cmds = append(cmds, pipe.HGetAll(ctx, s.judgedKey(campaign, partition, creator)))
	judged := pipe.Get(ctx, judgedKey)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("cannot read stats of %q/%q: %w", campaign, creator, storeErr(err))
	}
	days, err := dayCounts(cmds...)
	if err != nil {
		return nil, "", fmt.Errorf("cannot read stats of %q/%q: %w", campaign, creator, err)
	}
	return days, judged.Val(), nil
}

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// publishScript sets the judged counters of one partition and the offset
// they reach, if the lease is still ARGV[1] and the offset is not below
// the one published.
//
//	KEYS[1]   the lease
//	KEYS[2]   the judged offset
//	KEYS[3..] the judged-counter hashes of the creators and links published
//	ARGV[1]   the lease's value
//	ARGV[2]   the offset, a stream id
//	ARGV[3..] for each hash of KEYS[3..]: n, then n field-value pairs
//
// It returns 1 when it published, 0 when the lease is lost, 2 when the
// offset is below the one published. The arguments are checked before the
// first write.
var publishScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
local function parse(id)
	local ms, seq = string.match(id, '^(%d+)-(%d+)$')
	return tonumber(ms), tonumber(seq)
end
local nm, ns = parse(ARGV[2])
if nm == nil then
	return redis.error_reply('ERR clickgate publish: malformed offset')
end
local cur = redis.call('GET', KEYS[2])
if cur then
	local cm, cs = parse(cur)
	if cm and (nm < cm or (nm == cm and ns < cs)) then
		return 2
	end
end
local a = 3
for i = 3, #KEYS do
	local n = tonumber(ARGV[a])
	if n == nil or n < 1 or a + 2 * n > #ARGV then
		return redis.error_reply('ERR clickgate publish: malformed arguments')
	end
	a = a + 1 + 2 * n
end
if a ~= #ARGV + 1 then
	return redis.error_reply('ERR clickgate publish: malformed arguments')
end
a = 3
for i = 3, #KEYS do
	local n = tonumber(ARGV[a])
	redis.call('HSET', KEYS[i], unpack(ARGV, a + 1, a + 2 * n))
	a = a + 1 + 2 * n
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)

// partJudge judges one partition while its lease lasts.
type partJudge struct {
	js    *judges
	lease Lease
	quit  chan struct{} // closed: hand the partition over
	once  sync.Once
	j     *judge.Judge
	dec   visitlog.Decoder
	batch visitlog.Batch
	out   []counter.Reason

	adoptAt   string // set: adopt the store's policy once the log is judged up to this stream id
	offset    string // the stream id of the last entry judged; "" before any
	pubOffset string // the offset last published
	cpOffset  string // the offset of the checkpoint last written or loaded
	published map[creatorDay]counter.Counts
	layers    map[int64]int  // the layers reported of each window, by start
	full      map[int64]bool // windows reported with all their layers
	added     uint64         // the judge's LayersAdded reported
}

// creatorDay is a row of the judge's counters: of a creator (link "")
// or of one of their links.
type creatorDay struct {
	creator, link string
	day           counter.Day
}

// handOver makes the judge save its work and release its lease.
func (pj *partJudge) handOver() { pj.once.Do(func() { close(pj.quit) }) }

func (pj *partJudge) run() {
	if err := pj.load(); err != nil {
		pj.js.logError("cannot start the judge of a partition; it is left to another node", "campaign", pj.lease.Campaign,
			"partition", pj.lease.Partition, "err", err)
		pj.release(pj.js.ctx)
		return
	}
	// The follower reads the partition again from where this judge stops,
	// and the node reports the fill of its other judges only.
	defer func() {
		k := partKey{pj.lease.Campaign, pj.lease.Partition}
		pj.js.s.judgedTo(k, pj.offset, false)
		pj.js.reportFill(k, nil)
	}()
	now := time.Now()
	renewed, published, saved := now, now, now
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		ctx, cancel := context.WithTimeout(pj.js.ctx, leaseTTL/3)
		n, err := pj.read(ctx)
		if err != nil {
			pj.js.logError("cannot judge the log of a partition; will retry", "campaign", pj.lease.Campaign,
				"partition", pj.lease.Partition, "err", err)
		}
		now = time.Now()
		err = nil
		if now.Sub(published) >= publishInterval {
			published = now
			err = pj.publish(ctx)
		}
		if err == nil && now.Sub(saved) >= checkpointInterval {
			saved = now
			if pj.offset != pj.cpOffset {
				err = pj.checkpoint(ctx)
			}
		}
		if err == nil && now.Sub(renewed) >= leaseTTL/3 {
			if err = pj.js.s.RenewLease(ctx, pj.lease); err == nil {
				renewed = now
			}
		}
		cancel()
		if errors.Is(err, ErrLeaseLost) {
			pj.js.logger.Warn("a judge's lease was lost; another node judges its partition", "campaign", pj.lease.Campaign,
				"partition", pj.lease.Partition, "token", pj.lease.Token)
			return
		}
		if err != nil {
			pj.js.logError("cannot publish, checkpoint or renew a judge's work; will retry", "campaign", pj.lease.Campaign,
				"partition", pj.lease.Partition, "err", err)
		}
		wait := time.Duration(0)
		if n < readBatches {
			wait = pollInterval
		}
		poll.Reset(wait)
		select {
		case <-pj.js.stop:
			pj.finish()
			return
		case <-pj.quit:
			pj.finish()
			return
		case <-poll.C:
		}
	}
}

// load restores the judge from the partition's checkpoint.
func (pj *partJudge) load() error {
	j, err := judge.New(pj.js.params)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(pj.js.ctx, leaseTTL/2)
	defer cancel()
	cp, err := pj.js.s.ReadCheckpoint(ctx, pj.lease.Campaign, pj.lease.Partition)
	if err != nil {
		return err
	}
	if cp != nil {
		// A checkpoint of another policy: the previous holder may have
		// judged, and published, the log after it under that policy, so
		// this judge does the same up to the log's end as it is now, then
		// adopts its own (read).
		if cpp, err := judge.CheckpointParams(cp); err == nil && cpp.SameSizing(pj.js.params) && cpp != pj.js.params {
			if j, err = judge.New(cpp); err != nil {
				return fmt.Errorf("cannot load the checkpoint: %w", err)
			}
			key, _ := pj.js.s.partitionKey(pj.lease.Campaign, pj.lease.Partition, "log")
			last, err := pj.js.s.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
			if err != nil {
				return fmt.Errorf("cannot read the end of the log: %w", storeErr(err))
			}
			pj.adoptAt = "0-0" // an empty log: at once
			if len(last) > 0 {
				pj.adoptAt = last[0].ID
			}
		}
		if err := j.UnmarshalBinary(cp); err != nil {
			return fmt.Errorf("cannot load the checkpoint: %w", err)
		}
		if o := string(j.Offset()); o != "" && !validStreamID(o) {
			return fmt.Errorf("cannot load the checkpoint: invalid log offset %q", o)
		}
	}
	pj.j, pj.offset = j, string(j.Offset())
	pj.cpOffset = pj.offset
	pj.published = make(map[creatorDay]counter.Counts)
	pj.layers, pj.full = make(map[int64]int), make(map[int64]bool)
	pj.added = j.LayersAdded()
	if pj.adoptAt != "" && !streamIDBefore(pj.offset, pj.adoptAt) || pj.adoptAt == "0-0" {
		return pj.adopt(ctx)
	}
	return nil
}

// read judges up to readBatches entries of the log after the offset and
// returns how many it read.
func (pj *partJudge) read(ctx context.Context) (int, error) {
	entries, err := pj.js.s.ReadLog(ctx, pj.lease.Campaign, pj.lease.Partition, pj.offset, readBatches)
	if err != nil {
		return 0, err
	}
	k := partKey{pj.lease.Campaign, pj.lease.Partition}
	learn := pj.js.s.judgedTo(k, pj.offset, true)
	defer func() { pj.js.s.judgedTo(k, pj.offset, true) }()
	for _, e := range entries {
		if pj.adoptAt != "" && streamIDBefore(pj.adoptAt, e.ID) {
			break // the policy first
		}
		if err := pj.dec.Decode(e.Payload, &pj.batch); err != nil {
			// A batch that does not decode was not written by an edge:
			// judging past it would skip visits without a word, stopping
			// here holds every later visit. Neither is right, and a person
			// must look.
			return 0, fmt.Errorf("cannot decode entry %s of the log: %w", e.ID, err)
		}
		if !pj.j.NewBatch(e.BatchID) {
			// Appended again after a failure that left its first append's
			// fate unknown: judged once already, by this judge or by the
			// one whose checkpoint it started from.
			pj.offset = e.ID
			pj.j.SetOffset([]byte(e.ID))
			batchesAgain.Inc()
			continue
		}
		vs := pj.batch.Visits
		pj.out = slices.Grow(pj.out[:0], len(vs))[:len(vs)]
		pj.j.Apply(vs, pj.out)
		if learn != nil {
			for i := range vs {
				learn(&vs[i]) // for the follower, which skips this partition
			}
			learntJudging.Add(len(vs))
		}
		pj.offset = e.ID
		pj.j.SetOffset([]byte(e.ID))
		judgedBatches.Inc()
		judgedVisits.Add(len(vs))
		// The judges share the edge's cores with its redirects, and a
		// read of readBatches entries is milliseconds of CPU: yielding
		// after each entry, a redirect waits for one batch, not for the
		// read. (A runtime trace of a node on one core showed the
		// redirects queued behind the judges' bursts of 3-10 ms.)
		runtime.Gosched()
	}
	if pj.j.LayersAdded() != pj.added {
		pj.checkFill()
	}
	if pj.adoptAt != "" && !streamIDBefore(pj.offset, pj.adoptAt) {
		if err := pj.adopt(ctx); err != nil {
			return 0, err
		}
	}
	return len(entries), nil
}

// adopt makes the judge's policy this store's, from the visits after the
// checkpoint it writes at once on.
func (pj *partJudge) adopt(ctx context.Context) error {
	old := pj.j.Params().Policy()
	if err := pj.j.SetPolicy(pj.js.params.Policy()); err != nil {
		return err
	}
	if pj.offset != "" {
		if err := pj.checkpoint(ctx); err != nil {
			// Judged on under the new policy, a visit after this point
			// would be judged under the old one by a next holder.
			pj.j.SetPolicy(old)
			return fmt.Errorf("cannot adopt the judge's policy: %w", err)
		}
	}
	pj.adoptAt = ""
	pj.js.logger.Info("the judge's policy changed; it applies to the visits judged from now on",
		"campaign", pj.lease.Campaign, "partition", pj.lease.Partition, "old", old.String(), "new", pj.js.params.Policy().String())
	return nil
}

// publish sets the counters that changed since the last publish, the
// creators' and the links', with the offset they reach.
func (pj *partJudge) publish(ctx context.Context) error {
	if pj.offset == "" || pj.offset == pj.pubOffset {
		return nil // nothing judged since
	}
	// Each is sorted by creator (and link): a row of the one hash of its
	// creator or link follows the one before.
	rows := append(pj.j.Counts(), pj.j.LinkCounts()...)
	keys := []string{"", ""}
	args := []any{pj.lease.value, pj.offset}
	var changed []judge.CreatorDay
	for i := 0; i < len(rows); {
		creator, link := rows[i].Creator, rows[i].Link
		n, at := 0, len(args)
		args = append(args, 0)
		for ; i < len(rows) && rows[i].Creator == creator && rows[i].Link == link; i++ {
			r := &rows[i]
			old := pj.published[creatorDay{r.Creator, r.Link, r.Day}]
			if r.Counts == old {
				continue
			}
			for reason, c := range r.Counts {
				if c != old[reason] {
					args = append(args, r.Day.String()+":"+counter.Reason(reason).String(), c)
					n++
				}
			}
			changed = append(changed, *r)
		}
		if n == 0 {
			args = args[:at]
			continue
		}
		args[at] = n
		if link == "" {
			keys = append(keys, pj.js.s.judgedKey(pj.lease.Campaign, pj.lease.Partition, creator))
		} else {
			keys = append(keys, pj.js.s.judgedLinkKey(pj.lease.Campaign, pj.lease.Partition, creator, link))
		}
	}
	keys[0], _ = pj.js.s.leaseKey(pj.lease)
	keys[1], _ = pj.js.s.partitionKey(pj.lease.Campaign, pj.lease.Partition, "judged")
	res, err := publishScript.Run(ctx, pj.js.s.rdb, keys, args...).Int64()
	switch {
	case err != nil:
		return fmt.Errorf("cannot publish the judged counters: %w", storeErr(err))
	case res == 0:
		return ErrLeaseLost
	case res == 2:
		return nil // still replaying what the previous judge published
	}
	for _, r := range changed {
		pj.published[creatorDay{r.Creator, r.Link, r.Day}] = r.Counts
	}
	pj.pubOffset = pj.offset
	return nil
}

// checkpoint writes the judge's checkpoint and trims the log below it.
func (pj *partJudge) checkpoint(ctx context.Context) error {
	if pj.offset == "" {
		return nil
	}
	pj.checkFill()
	start := time.Now()
	cp, err := pj.j.MarshalBinary()
	if err != nil {
		return fmt.Errorf("cannot take the checkpoint: %w", err)
	}
	if err := pj.js.s.WriteCheckpoint(ctx, pj.lease, cp, pj.offset); err != nil {
		return err
	}
	pj.cpOffset = pj.offset
	checkpoints.Inc()
	counter.CheckpointTaken(time.Since(start), len(cp))
	return nil
}

// Got, not made: the embedded store (counter/boltstore) reports them too.
var (
	layersAdded = metrics.GetOrCreateCounter(`clickgate_dedupe_layers_added_total`)
	layersMost  = metrics.GetOrCreateGauge(`clickgate_dedupe_window_layers`, nil)
	falseRate   = metrics.GetOrCreateGauge(`clickgate_dedupe_false_positive_rate`, nil)
)

// checkFill logs, once each, a window of the partition that grew a layer
// (more visitors than --dedupe-expected: a flood, or a campaign larger
// than it was sized for; false duplicates stay within twice --dedupe-fp) and one
// that has all its layers (they rise above it), counts the layers added,
// and reports the most layers of a window and the highest rate of false
// duplicates (judges.reportFill). Called after each read that added a
// layer, and at checkpoints.
func (pj *partJudge) checkFill() {
	n := pj.j.LayersAdded()
	layersAdded.AddInt64(int64(n - pj.added))
	pj.added = n
	var most fill
	for _, f := range pj.j.Fill() {
		most.layers, most.rate = max(most.layers, f.Layers), max(most.rate, f.Rate)
		if f.Layers > max(1, pj.layers[f.Start]) {
			pj.layers[f.Start] = f.Layers
			pj.js.logger.Warn("a dedupe window grew a layer: more visitors than --dedupe-expected; false duplicates stay within twice --dedupe-fp",
				"campaign", f.Campaign, "partition", pj.lease.Partition, "window", time.Unix(f.Start, 0).UTC(),
				"layers", f.Layers, "max_layers", judge.MaxLayers, "bytes", f.Bytes, "rate", f.Rate)
		}
		if f.Full && !pj.full[f.Start] {
			pj.full[f.Start] = true
			pj.js.logger.Error("a dedupe window has all its layers: false duplicates rise above --dedupe-fp; raise --dedupe-expected",
				"campaign", f.Campaign, "partition", pj.lease.Partition, "window", time.Unix(f.Start, 0).UTC(),
				"layers", f.Layers, "bytes", f.Bytes, "rate", f.Rate)
		}
	}
	pj.js.reportFill(partKey{pj.lease.Campaign, pj.lease.Partition}, &most)
}

// finish judges what is left, publishes, checkpoints and releases the
// lease, within stopTimeout: the next holder replays nothing.
func (pj *partJudge) finish() {
	ctx, cancel := context.WithTimeout(pj.js.ctx, stopTimeout)
	defer cancel()
	for ctx.Err() == nil {
		if n, err := pj.read(ctx); err != nil || n < readBatches {
			break
		}
	}
	err := pj.publish(ctx)
	if err == nil {
		err = pj.checkpoint(ctx)
	}
	if err != nil {
		pj.js.logger.Error("cannot save a judge's work at stop; the next holder judges more of the log again",
			"campaign", pj.lease.Campaign, "partition", pj.lease.Partition, "err", err)
	}
	pj.release(ctx)
}

func (pj *partJudge) release(ctx context.Context) {
	if err := pj.js.s.ReleaseLease(ctx, pj.lease); err != nil {
		pj.js.logger.Warn("cannot release a judge's lease; another node takes it when it expires", "err", err)
	}
}

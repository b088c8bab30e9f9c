package redisstore

// # Judges
//
// A store opened with Options.Judge runs the judges of the partitions whose
// lease it holds (DESIGN.md, "Counting: one deterministic judge per
// partition"). Every scanInterval it lists the campaigns (the catalog's, and
// those it appended to) and tries to take the lease of each partition that
// no judge of its own runs and whose lease it did not see held moments ago.
// A judge:
//
//  1. loads the partition's checkpoint (none: an empty judge), then reads
//     the log after the checkpoint's offset, in order, and decides every
//     batch (counter/judge);
//  2. every publishInterval, publishes the counters that changed to the
//     partition's judged-counter hashes, with the offset they reach, fenced
//     by its lease; Redis refuses an offset below the one published, so
//     a judge that took over and is still replaying never shows counts
//     going back;
//  3. every checkpointInterval, writes its checkpoint (counters, filters,
//     offset) and trims the log below it, fenced;
//  4. renews its lease every leaseTTL/3, and stops, dropping its state,
//     once the lease is lost. At Close it publishes, checkpoints and
//     releases the lease, so that another node takes over at once.
//
// Keys, in the partition's hash tag:
//
//	<prefix>:{<campaign>:<p>}:j:<creator>  hash  <YYYY-MM-DD>:<reason> → count decided up to the judged offset
//	<prefix>:{<campaign>:<p>}:jl:<code>:<creator>  the same of one link of the creator (visits logged with their link)
//	<prefix>:{<campaign>:<p>}:judged       the log offset (stream id) the published counters reach
//
// Checkpoint cadence: a checkpoint holds the filters of every live window,
// 2 × --dedupe-expected keys each at 14.4 bits a key for 0.1% (3.6 MB at
// the default million visitors), so it is written every 30 s, not per
// batch: Redis then spends well under a microsecond per visit on it at
// thousands of visits a second, and a judge that takes over replays at
// most 30 s of log, which it judges at hundreds of thousands of visits a
// second. Counters are small and published ten times a second, so a
// visit is in Stats within a fraction of a second.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/visitlog"
)

const (
	scanInterval       = 250 * time.Millisecond
	pollInterval       = 25 * time.Millisecond
	publishInterval    = 100 * time.Millisecond
	checkpointInterval = 30 * time.Second
	leaseTTL           = 10 * time.Second
	readBatches        = 256 // log entries per read
	stopTimeout        = 2 * time.Second
)

var (
	judgedVisits  = metrics.NewCounter(`clickgate_judge_visits_total`)
	judgedBatches = metrics.NewCounter(`clickgate_judge_batches_total`)
	judgeErrors   = metrics.NewCounter(`clickgate_judge_errors_total`)
	checkpoints   = metrics.NewCounter(`clickgate_judge_checkpoints_total`)
	takeovers     = metrics.NewCounter(`clickgate_judge_leases_acquired_total`)
	batchesAgain  = metrics.NewCounter(`clickgate_judge_batches_skipped_total`)
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

type partKey struct {
	campaign  string
	partition uint32
}

// judges runs the judges of this store.
type judges struct {
	s      *Store
	params judge.Params
	holder string
	logger *slog.Logger
	stop   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
	// ctx is every Redis call's; cancelled when close runs out of time.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	running map[partKey]*partJudge
	held    map[partKey]time.Time // seen held by another holder, until
	lastLog map[string]time.Time  // by message
}

func newJudges(s *Store, p judge.Params, holder string, logger *slog.Logger) *judges {
	if holder == "" {
		host, _ := os.Hostname()
		holder = fmt.Sprintf("%s-%d-%x", host, os.Getpid(), rand.Uint32())
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &judges{
		ctx:     ctx,
		cancel:  cancel,
		s:       s,
		params:  p,
		holder:  holder,
		logger:  logger,
		stop:    make(chan struct{}),
		running: make(map[partKey]*partJudge),
		held:    make(map[partKey]time.Time),
		lastLog: make(map[string]time.Time),
	}
}

func (js *judges) start() {
	js.wg.Go(func() {
		t := time.NewTicker(scanInterval)
		defer t.Stop()
		for {
			js.scan()
			select {
			case <-js.stop:
				return
			case <-t.C:
			}
		}
	})
}

// close stops every judge, each publishing, checkpointing and releasing
// its lease first, unless ctx ends: then it cancels the calls to Redis
// under way and returns without waiting for them (closing the client ends
// them), and the next holder replays more of the log. Only the first call
// does anything.
func (js *judges) close(ctx context.Context) {
	js.closed.Do(func() {
		close(js.stop)
		done := make(chan struct{})
		go func() {
			js.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
			js.unregister(ctx)
		case <-ctx.Done():
		}
		js.cancel()
	})
}

// logError logs at most one error per message every 10 s: a Redis that is
// down must not flood the log.
func (js *judges) logError(msg string, args ...any) {
	judgeErrors.Inc()
	js.mu.Lock()
	now := time.Now()
	due := now.Sub(js.lastLog[msg]) >= 10*time.Second
	if due {
		js.lastLog[msg] = now
	}
	js.mu.Unlock()
	if due {
		js.logger.Error(msg, args...)
	}
}

// scan starts a judge for every partition whose lease it can take, up to
// this node's share of the partitions: the partitions of every campaign
// over the judging nodes alive (register). A node above its share (one
// joined) hands one partition over per scan; another node takes it.
func (js *judges) scan() {
	ctx, cancel := context.WithTimeout(js.ctx, leaseTTL/2)
	defer cancel()
	campaigns, err := js.s.liveCampaigns(ctx)
	if err != nil {
		js.logError("cannot list the campaigns to judge", "err", err)
	}
	nodes, err := js.register(ctx)
	if err != nil {
		js.logError("cannot register as a judge", "err", err)
		nodes = 1
	}
	total := len(campaigns) * int(js.params.Partitions)
	share := (total + nodes - 1) / nodes
	js.mu.Lock()
	held := len(js.running)
	if held > share {
		for _, pj := range js.running {
			pj.handOver()
			break
		}
	}
	js.mu.Unlock()
	for _, c := range campaigns {
		for p := range js.params.Partitions {
			select {
			case <-js.stop:
				return
			default:
			}
			if held >= share {
				return
			}
			k := partKey{c, p}
			now := time.Now()
			js.mu.Lock()
			skip := js.running[k] != nil || now.Before(js.held[k])
			js.mu.Unlock()
			if skip {
				continue
			}
			l, err := js.s.AcquireLease(ctx, c, p, js.holder, leaseTTL)
			if held, ok := errors.AsType[*LeaseHeldError](err); ok {
				js.mu.Lock()
				// Tried again within a second: its holder may hand it over.
				js.held[k] = now.Add(min(held.TTL, time.Second))
				js.mu.Unlock()
				continue
			}
			if err != nil {
				js.logError("cannot take a judge's lease", "err", err)
				return
			}
			takeovers.Inc()
			held++
			pj := &partJudge{js: js, lease: l, quit: make(chan struct{})}
			js.mu.Lock()
			js.running[k] = pj
			delete(js.held, k)
			js.mu.Unlock()
			js.wg.Go(func() {
				pj.run()
				js.mu.Lock()
				delete(js.running, k)
				js.mu.Unlock()
			})
		}
	}
}

// register records this node as a judge alive for leaseTTL more, and
// returns how many are: a sorted set of holders by when their entry
// expires, in the catalog's hash tag.
func (js *judges) register(ctx context.Context) (int, error) {
	key := js.s.prefix + ":{catalog}:judges"
	now := time.Now()
	tx := js.s.rdb.TxPipeline()
	tx.ZAdd(ctx, key, redis.Z{Score: float64(now.Add(leaseTTL).UnixMilli()), Member: js.holder})
	tx.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
	n := tx.ZCard(ctx, key)
	if _, err := tx.Exec(ctx); err != nil {
		return 0, storeErr(err)
	}
	return max(int(n.Val()), 1), nil
}

// unregister removes this node from the judges alive, at stop.
func (js *judges) unregister(ctx context.Context) {
	js.s.rdb.ZRem(ctx, js.s.prefix+":{catalog}:judges", js.holder)
}

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

	seen      recentIDs // the batch ids judged lately
	adoptAt   string    // set: adopt the store's policy once the log is judged up to this stream id
	offset    string    // the stream id of the last entry judged; "" before any
	pubOffset string    // the offset last published
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
	// The follower reads the partition again from where this judge stops.
	defer func() { pj.js.s.judgedTo(partKey{pj.lease.Campaign, pj.lease.Partition}, pj.offset, false) }()
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
			err = pj.checkpoint(ctx)
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
		if !pj.seen.add(e.BatchID) {
			// Appended again after a failure that left its first append's
			// fate unknown: judged once already.
			pj.offset = e.ID
			pj.j.SetOffset([]byte(e.ID))
			batchesAgain.Inc()
			continue
		}
		if err := pj.dec.Decode(e.Payload, &pj.batch); err != nil {
			// A batch that does not decode was not written by an edge:
			// judging past it would skip visits without a word, stopping
			// here holds every later visit. Neither is right, and a person
			// must look.
			return 0, fmt.Errorf("cannot decode entry %s of the log: %w", e.ID, err)
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
	if pj.offset == "" {
		return nil
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
	if len(changed) == 0 && pj.offset == pj.pubOffset {
		return nil
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
	cp, err := pj.j.MarshalBinary()
	if err != nil {
		return fmt.Errorf("cannot take the checkpoint: %w", err)
	}
	if err := pj.js.s.WriteCheckpoint(ctx, pj.lease, cp, pj.offset); err != nil {
		return err
	}
	checkpoints.Inc()
	return nil
}

// layersAdded is the embedded store's counter too (counter/boltstore).
var layersAdded = metrics.GetOrCreateCounter(`clickgate_dedupe_layers_added_total`)

// checkFill logs, once each, a window of the partition that grew a layer
// (more visitors than --dedupe-expected: a flood, or a campaign larger
// than it was sized for; false duplicates stay within twice --dedupe-fp) and one
// that has all its layers (they rise above it), and counts the layers
// added. Called after each read that added one, and at checkpoints.
func (pj *partJudge) checkFill() {
	n := pj.j.LayersAdded()
	layersAdded.AddInt64(int64(n - pj.added))
	pj.added = n
	for _, f := range pj.j.Fill() {
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

// recentIDs remembers the last recentIDsLen batch ids added. A batch sent
// again comes seconds after the first (the spool replays it once the store
// answers), well within them at any rate this store takes; a judge that
// takes over starts with none, so a batch sent again across a takeover is
// judged twice: its visitors are duplicates the second time, never paid
// twice.
type recentIDs struct {
	set  map[uint64]struct{}
	ring []uint64
	next int
}

const recentIDsLen = 1 << 14

// add adds id and reports whether it was new.
func (r *recentIDs) add(id uint64) bool {
	if _, ok := r.set[id]; ok {
		return false
	}
	if r.set == nil {
		r.set, r.ring = make(map[uint64]struct{}, recentIDsLen), make([]uint64, 0, recentIDsLen)
	}
	if len(r.ring) < recentIDsLen {
		r.ring = append(r.ring, id)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % recentIDsLen
	}
	r.set[id] = struct{}{}
	return true
}

// judgedKey returns the judged-counter hash of creator in partition of
// campaign: "<prefix>:{<campaign>:<partition>}:j:<creator>".
func (s *Store) judgedKey(campaign string, partition uint32, creator string) string {
	b := appendSlotKey(make([]byte, 0, len(s.prefix)+len(campaign)+len(creator)+24), s.prefix, campaign, partition)
	b = append(b, "j:"...)
	return string(append(b, creator...))
}

// judgedLinkKey returns the judged-counter hash of link code of creator
// in partition of campaign:
// "<prefix>:{<campaign>:<partition>}:jl:<code>:<creator>". A code has no
// ':' (redirect.ValidCode), so no two links and creators share a key.
func (s *Store) judgedLinkKey(campaign string, partition uint32, creator, code string) string {
	b := appendSlotKey(make([]byte, 0, len(s.prefix)+len(campaign)+len(code)+len(creator)+24), s.prefix, campaign, partition)
	b = append(b, "jl:"...)
	b = append(append(b, code...), ':')
	return string(append(b, creator...))
}

// streamIDBefore reports whether stream id a is below b; "" is below any.
func streamIDBefore(a, b string) bool {
	if a == "" || b == "" {
		return a == "" && b != ""
	}
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	return am < bm || am == bm && as < bs
}

func splitStreamID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}

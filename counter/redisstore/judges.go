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
//  2. every publishInterval when it judged anything since, publishes the
//     counters that changed to the partition's judged-counter hashes, with
//     the offset they reach, fenced by its lease; Redis refuses an offset
//     below the one published, so a judge that took over and is still
//     replaying never shows counts going back;
//  3. every checkpointInterval when it judged anything since, writes its
//     checkpoint (counters, filters, offset) and trims the log below it,
//     fenced (an idle judge of megabytes costs Redis nothing);
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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter/judge"
)

const (
	scanInterval = 250 * time.Millisecond
	// pollInterval: a judge that caught up reads its log again after it.
	// Each read is a round trip, which costs Redis about what an append
	// does (mostly syscalls). Measured once with a throwaway script, every
	// request a new visitor on one node, two partitions, two runs each:
	// Redis took 1.03-1.18 µs of CPU per new visitor polled every 25 ms,
	// 0.89-0.91 µs every 100 ms. A slower poll delays the stats by as much.
	pollInterval    = 100 * time.Millisecond
	publishInterval = 100 * time.Millisecond
	leaseTTL        = 10 * time.Second
	readBatches     = 256 // log entries per read
	stopTimeout     = 2 * time.Second
)

// checkpointInterval is how often a judge that judged anything since its
// last checkpoint writes one; an idle judge writes none. A variable for
// the tests.
var checkpointInterval = 30 * time.Second

var (
	judgedVisits  = metrics.NewCounter(`clickgate_judge_visits_total`)
	judgedBatches = metrics.NewCounter(`clickgate_judge_batches_total`)
	judgeErrors   = metrics.NewCounter(`clickgate_judge_errors_total`)
	checkpoints   = metrics.NewCounter(`clickgate_judge_checkpoints_total`)
	takeovers     = metrics.NewCounter(`clickgate_judge_leases_acquired_total`)
	batchesAgain  = metrics.NewCounter(`clickgate_judge_batches_skipped_total`)
)

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

	fillMu sync.Mutex
	fills  map[partKey]fill // what each running judge reported last
}

// fill is the most layers of a dedupe window of a judge, and the highest
// rate of false duplicates of one.
type fill struct {
	layers int
	rate   float64
}

// reportFill records f, the fill of the judge of partition k (nil: the
// judge stopped), and sets the node's gauges to the most of its judges'.
func (js *judges) reportFill(k partKey, f *fill) {
	js.fillMu.Lock()
	defer js.fillMu.Unlock()
	if f == nil {
		delete(js.fills, k)
	} else {
		js.fills[k] = *f
	}
	var most fill
	for _, f := range js.fills {
		most.layers, most.rate = max(most.layers, f.layers), max(most.rate, f.rate)
	}
	layersMost.Set(float64(most.layers))
	falseRate.Set(most.rate)
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
		fills:   make(map[partKey]fill),
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

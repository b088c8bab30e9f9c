package redisstore

// # Following the logs
//
// Every edge keeps a local filter of the visitors it knows, so that their
// next clicks are duplicates without a round trip. An edge learns its own
// visitors when their batch is appended; Follow makes it learn every other
// node's too, from the partition logs themselves: each followInterval it
// reads what was appended to each partition since it last looked (every
// node's batches, its own included) and hands each visit to learn. The log
// is read, not the judges' decisions, so a visitor is known from the
// moment its visit is durable, whatever its judge decides: a visit refused
// by velocity or a budget makes its visitor's later clicks of the window
// duplicates too, as on the node that appended it. The log keeps only
// what its judge has not checkpointed (about 30 s), which bounds what a
// node reads when it starts; a node that falls further behind skips what
// was trimmed, and those visitors' next clicks go to the log and are
// judged duplicates.
//
// A partition that a judge of this node holds is not read again: the
// judge hands learn every visit it judges, and the follower picks up from
// the judge's offset when the judge stops. On one node that is every
// partition, and the follower reads nothing; on N nodes, it reads the
// partitions of the other N-1. Visits between the follower's place and a
// judge's checkpoint when the judge starts may go unlearnt, which costs
// those visitors one trip to the log, never a wrong count.

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/visitlog"
)

const followInterval = 200 * time.Millisecond

// The visits learnt, by where from: read by the follower, or handed over by
// a judge of this node.
var (
	followed      = metrics.NewCounter(`clickgate_follow_visits_total{source="log"}`)
	learntJudging = metrics.NewCounter(`clickgate_follow_visits_total{source="judge"}`)
)

// Follow calls learn, on a goroutine of its own, with every visit appended
// to the logs of the store's campaigns from now on (and what the logs hold
// still), by any node, within about followInterval. It runs until Close.
func (s *Store) Follow(learn func(*counter.Visit)) {
	s.followOnce.Do(func() {
		s.judgedMu.Lock()
		s.learn = learn
		s.judgedMu.Unlock()
		s.following.Go(func() { s.follow(learn) })
	})
}

func (s *Store) follow(learn func(*counter.Visit)) {
	after := make(map[partKey]string) // the last entry read, by partition
	var dec visitlog.Decoder
	var batch visitlog.Batch
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		select {
		case <-s.followCtx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.followCtx, leaseTTL/2)
		campaigns, err := s.liveCampaigns(ctx)
		if err != nil {
			cancel()
			continue // the next tick tries again; the judges log Redis's errors
		}
		for _, c := range campaigns {
			for p := range s.partitions {
				k := partKey{c, p}
				var here bool
				if after[k], here = s.followFrom(k, after[k]); here {
					continue
				}
				for {
					entries, err := s.ReadLog(ctx, c, p, after[k], readBatches)
					if err != nil {
						break
					}
					for _, e := range entries {
						after[k] = e.ID
						if dec.Decode(e.Payload, &batch) != nil {
							continue // the judge reports it
						}
						for i := range batch.Visits {
							learn(&batch.Visits[i])
						}
						followed.Add(len(batch.Visits))
						runtime.Gosched() // as partJudge.read does: redirects wait for one batch, not the read
					}
					if len(entries) < readBatches {
						break
					}
				}
			}
		}
		cancel()
	}
}

// liveCampaigns returns the campaigns whose logs are judged and followed:
// the catalog's, and those this store appended to, whose visits wait for
// a judge even when the catalog was lost (a FLUSHALL). It returns the
// latter and the catalog's error when the catalog cannot be read.
func (s *Store) liveCampaigns(ctx context.Context) ([]string, error) {
	campaigns, err := s.rdb.HKeys(ctx, s.campaignsKey).Result()
	campaigns = append(campaigns, s.appendedCampaigns()...)
	slices.Sort(campaigns)
	campaigns = slices.DeleteFunc(slices.Compact(campaigns), func(c string) bool { return checkCampaign(c) != nil })
	return campaigns, storeErr(err)
}

// followState is the Store's part in following.
type followState struct {
	followOnce sync.Once
	following  sync.WaitGroup
	followCtx  context.Context    // cancelled at Close
	stop       context.CancelFunc // cancels followCtx

	judgedMu sync.Mutex
	learn    func(*counter.Visit) // Follow's, once called
	judged   map[partKey]judgedHere
}

// judgedHere is a partition judged by a judge of this node.
type judgedHere struct {
	offset string // the last entry it judged, or ""
	live   bool   // the judge still runs
}

// judgedTo says that a judge of this node judged partition k up to
// offset, and whether it goes on; it returns the function that learns its
// visits, or nil before Follow.
func (f *followState) judgedTo(k partKey, offset string, live bool) func(*counter.Visit) {
	f.judgedMu.Lock()
	defer f.judgedMu.Unlock()
	if f.judged == nil {
		f.judged = make(map[partKey]judgedHere)
	}
	f.judged[k] = judgedHere{offset, live}
	return f.learn
}

// followFrom returns the entry after which the follower reads partition k,
// having read it up to after, and whether a judge of this node learns it
// instead.
func (f *followState) followFrom(k partKey, after string) (string, bool) {
	f.judgedMu.Lock()
	defer f.judgedMu.Unlock()
	h, ok := f.judged[k]
	if !ok {
		return after, false
	}
	if !h.live {
		delete(f.judged, k)
	}
	if streamIDBefore(after, h.offset) {
		after = h.offset
	}
	return after, h.live
}

func newFollowState() followState {
	ctx, cancel := context.WithCancel(context.Background())
	return followState{followCtx: ctx, stop: cancel}
}

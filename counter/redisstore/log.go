package redisstore

// # Partition logs
//
// A campaign's visits are appended to the log of their partition, and the
// partition's judge reads it in order. Every key of partition p of a campaign
// shares the hash tag {<campaign>:<p>} (the tag of appendSlotKey, so a
// partition and the dedupe slot of the same number share a cluster slot), and
// every multi-key operation stays within one partition:
//
//	<prefix>:{<campaign>:<p>}:log                 stream: one entry per appended batch, fields b (batch id) and p (payload)
//	<prefix>:{<campaign>:<p>}:lease               the judge's lease, "<token>:<nonce>:<holder>", expires (PX)
//	<prefix>:{<campaign>:<p>}:lease:token         INCR per acquisition of the lease; never expires
//	<prefix>:{<campaign>:<p>}:checkpoint          the judge's checkpoint, an opaque blob
//	<prefix>:{<campaign>:<p>}:checkpoint:staged:  a checkpoint on its way in (lease.go), expires
//
// An entry's stream id is its offset in the log.
//
// # Retried appends
//
// A batch is appended with a plain XADD, and a retried batch (its append
// timed out, then it was shipped again) is appended again: the log may hold
// a batch id twice, and its reader skips a batch id it has seen (the judge
// keeps the most recent batch ids of its partition in its checkpoint).
// Deduplicating in Redis instead, with a script that records each batch id
// (SET NX EX, or HSETNX) before its XADD, costs Redis 1.6 to 2.1 times the
// CPU per append, and 4 to 9 times the command time that blocks its one
// thread, for batches of 128 to 1,024 visits (BenchmarkAppendLog,
// BenchmarkAppendLogScript); it holds one more key per batch for the whole
// retention, and is just as bounded: a retry after the retention is
// appended again either way. (Redis 8.6 does it in XADD itself, IDMP with a
// bounded history per producer; clickgate requires only Redis 7.0.) A
// duplicate batch that the reader no longer remembers is not paid twice as
// long as the judge still has the filter of its visits' window: its
// visitors are in it, so its visits are judged duplicates.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	"github.com/clickgate/clickgate/counter"
	"github.com/redis/go-redis/v9"
)

// Field names of a log entry. Redis stores the field names of an entry once
// per stream node when they are those of the node's first entry, so short
// or long they cost nothing per entry.
const (
	fieldBatchID = "b"
	fieldPayload = "p"
)

// LogAppend is one batch for the log of one partition of a campaign.
type LogAppend struct {
	Campaign  string
	Partition uint32
	// BatchID identifies the batch: a retry of the same batch carries the
	// same id, so that a reader can skip it.
	BatchID uint64
	// Payload is the encoded batch (counter/visitlog), opaque here.
	Payload []byte
	// ID is set by AppendLog when the batch is appended: its stream id,
	// its offset in the log.
	ID string
}

// LogEntry is one batch read from a partition's log.
type LogEntry struct {
	// ID is the entry's stream id, "<ms>-<seq>": its offset in the log.
	ID      string
	BatchID uint64
	Payload []byte
}

// AppendLogError reports the appends of an AppendLog call that failed.
type AppendLogError struct {
	// Failed are the indices into the call's appends that failed, in
	// order. A failed append may have been applied nevertheless (the
	// connection broke after Redis received it); appending it again with
	// the same BatchID is safe.
	Failed []int
	// Err is the first failure.
	Err error
}

func (e *AppendLogError) Error() string {
	return fmt.Sprintf("cannot append %d batches to the log: %s", len(e.Failed), e.Err)
}

func (e *AppendLogError) Unwrap() error { return e.Err }

// AppendLog appends each batch to the log of its partition: one XADD per
// append, all in one pipeline, one round trip to a single Redis (one per
// node of a cluster, sent in parallel). Appends to one partition within a
// call are appended in their order; the caller groups a partition's visits
// into one append, as each XADD costs Redis about the same whatever its size.
//
// A batch is durable when AppendLog returns nil as far as the server's
// persistence makes it (appendfsync always: on disk; everysec: a crash can
// lose up to about the last two seconds, see the package doc). On failure the error is an *AppendLogError listing the appends
// that failed, wrapping counter.ErrUnavailable when Redis cannot be reached.
// A campaign id that would break its partition's hash tag fails the call
// before anything is sent.
func (s *Store) AppendLog(ctx context.Context, appends []LogAppend) error {
	if len(appends) == 0 {
		return nil
	}
	keys := make([]string, len(appends))
	var key []byte
	for i := range appends {
		a := &appends[i]
		if err := checkCampaign(a.Campaign); err != nil {
			return fmt.Errorf("cannot append batch %d to partition %d: %w", a.BatchID, a.Partition, err)
		}
		key = appendSlotKey(key[:0], s.prefix, a.Campaign, a.Partition)
		keys[i] = string(append(key, "log"...))
	}
	errs := make([]error, len(appends))
	if s.replicaAcks == 0 {
		s.appendOn(ctx, s.rdb, appends, keys, allOf(len(appends)), errs)
	} else {
		s.appendAcked(ctx, appends, keys, errs)
	}
	var failed *AppendLogError
	for i, err := range errs {
		if err != nil {
			if failed == nil {
				failed = &AppendLogError{Err: storeErr(err)}
			}
			failed.Failed = append(failed.Failed, i)
		}
	}
	if failed != nil {
		return failed
	}
	return nil
}

func allOf(n int) []int {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return all
}

// appendOn appends appends[i] for each i of which in one pipeline of c,
// and then, with ReplicaAcks, waits for the replicas: c must then be one
// server's client, as WAIT counts the writes of its own connection. It
// sets errs[i] of each append that failed, or all of them when the
// replicas did not acknowledge.
func (s *Store) appendOn(ctx context.Context, c redis.Cmdable, appends []LogAppend, keys []string, which []int, errs []error) {
	pipe := c.Pipeline()
	cmds := make([]*redis.StringCmd, len(which))
	for j, i := range which {
		cmds[j] = pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: keys[i],
			Values: []any{fieldBatchID, appends[i].BatchID, fieldPayload, appends[i].Payload},
		})
	}
	var wait *redis.Cmd
	if s.replicaAcks > 0 {
		wait = pipe.Do(ctx, "WAIT", s.replicaAcks, max(s.replicaTimeout.Milliseconds(), 1)) // 0 would wait forever
	}
	pipe.Exec(ctx) // errors are read per command below
	var unacked error
	if wait != nil {
		if n, err := wait.Int64(); err != nil {
			unacked = err
		} else if n < int64(s.replicaAcks) {
			unacked = fmt.Errorf("%w: %d of the %d replicas asked for acknowledged the append within %s", counter.ErrUnavailable, n, s.replicaAcks, s.replicaTimeout)
			replicaTimeouts.Inc()
		}
	}
	for j, i := range which {
		appends[i].ID = cmds[j].Val()
		errs[i] = cmp.Or(cmds[j].Err(), unacked)
	}
}

// appendAcked appends with ReplicaAcks: on a single Redis one pipeline;
// on a cluster one per master, in parallel, each with its WAIT.
func (s *Store) appendAcked(ctx context.Context, appends []LogAppend, keys []string, errs []error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		s.appendOn(ctx, s.rdb, appends, keys, allOf(len(appends)), errs)
		return
	}
	var nodes []*redis.Client
	var which [][]int
	for i := range appends {
		node, err := cc.MasterForKey(ctx, keys[i])
		if err != nil {
			errs[i] = err
			continue
		}
		n := slices.Index(nodes, node)
		if n < 0 {
			nodes, which, n = append(nodes, node), append(which, nil), len(nodes)
		}
		which[n] = append(which[n], i)
	}
	var wg sync.WaitGroup
	for n, node := range nodes {
		wg.Go(func() { s.appendOn(ctx, node, appends, keys, which[n], errs) })
	}
	wg.Wait()
}

// ReadLog returns up to count entries of the log of partition of campaign,
// oldest first, strictly after the stream id after ("" or "0-0": from the
// start). It returns no entries, and no error, when there are none yet.
func (s *Store) ReadLog(ctx context.Context, campaign string, partition uint32, after string, count int) ([]LogEntry, error) {
	if count <= 0 {
		return nil, fmt.Errorf("cannot read the log of partition %d of campaign %q: count %d must be positive", partition, campaign, count)
	}
	key, err := s.partitionKey(campaign, partition, "log")
	if err != nil {
		return nil, fmt.Errorf("cannot read the log of partition %d: %w", partition, err)
	}
	start := "-"
	if after != "" && after != "0-0" {
		start = "(" + after // exclusive, Redis 6.2 or later
	}
	msgs, err := s.rdb.XRangeN(ctx, key, start, "+", int64(count)).Result()
	if err != nil {
		return nil, fmt.Errorf("cannot read the log %q after %q: %w", key, after, storeErr(err))
	}
	out := make([]LogEntry, len(msgs))
	for i, m := range msgs {
		e, err := logEntry(m)
		if err != nil {
			return nil, fmt.Errorf("cannot read entry %q of the log %q: %w", m.ID, key, err)
		}
		out[i] = e
	}
	return out, nil
}

func logEntry(m redis.XMessage) (LogEntry, error) {
	b, ok1 := m.Values[fieldBatchID].(string)
	p, ok2 := m.Values[fieldPayload].(string)
	if !ok1 || !ok2 || len(m.Values) != 2 {
		return LogEntry{}, fmt.Errorf("malformed entry with fields %q", fieldNames(m.Values))
	}
	id, err := strconv.ParseUint(b, 10, 64)
	if err != nil {
		return LogEntry{}, fmt.Errorf("invalid batch id %q", b)
	}
	return LogEntry{ID: m.ID, BatchID: id, Payload: []byte(p)}, nil
}

func fieldNames(m map[string]any) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	return names
}

// TrimLog removes the entries of the log of partition of campaign whose ids
// are below the stream id below (XTRIM MINID =): the entry below itself
// stays. A judge trims with its checkpoint (WriteCheckpoint), which is
// fenced; TrimLog is not, and is for tools and tests.
//
// The trim is exact, not "~": after it the log holds exactly the entries
// not yet trimmed, so its length is the backlog, and one call trims any
// backlog ("~" trims only whole stream nodes, and at most 100 nodes' worth
// of entries per call by default). The cost is the same for batches larger
// than stream-node-max-bytes (4 KB, about 70 visits), each of which is a
// stream node of its own.
func (s *Store) TrimLog(ctx context.Context, campaign string, partition uint32, below string) error {
	key, err := s.partitionKey(campaign, partition, "log")
	if err != nil {
		return fmt.Errorf("cannot trim the log of partition %d: %w", partition, err)
	}
	if below == "" {
		return fmt.Errorf("cannot trim the log %q: no stream id to trim below", key)
	}
	if err := s.rdb.XTrimMinID(ctx, key, below).Err(); err != nil {
		return fmt.Errorf("cannot trim the log %q below %q: %w", key, below, storeErr(err))
	}
	return nil
}

// partitionKey returns "<prefix>:{<campaign>:<partition>}:<name>".
func (s *Store) partitionKey(campaign string, partition uint32, name string) (string, error) {
	if err := checkCampaign(campaign); err != nil {
		return "", err
	}
	b := appendSlotKey(make([]byte, 0, len(s.prefix)+len(campaign)+len(name)+16), s.prefix, campaign, partition)
	return string(append(b, name...)), nil
}

// replicaTimeouts counts appends that fewer replicas than ReplicaAcks
// acknowledged in time.
var replicaTimeouts = metrics.NewCounter(`clickgate_redis_replica_timeouts_total`)

var errBadCampaign = errors.New("a campaign id must not be empty nor contain '{' or '}'")

// checkCampaign refuses a campaign id that would break the partition's hash
// tag and put its keys in different cluster slots. (The admin API accepts
// fewer characters still.)
func checkCampaign(campaign string) error {
	if campaign == "" || strings.ContainsAny(campaign, "{}") {
		return fmt.Errorf("invalid campaign %q: %w", campaign, errBadCampaign)
	}
	return nil
}

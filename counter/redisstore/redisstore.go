// Package redisstore is the Redis implementation of counter.Store, for
// production and for several nodes sharing one store.
//
// # Keys
//
// Every key starts with Options.Prefix (default "cg"). The catalog shares the
// hash tag {catalog}, so a change and its version bump are one transaction:
//
//	<prefix>:{catalog}:campaigns  hash  id → JSON
//	<prefix>:{catalog}:creators   hash  campaign:id → JSON
//	<prefix>:{catalog}:links      hash  code → JSON
//	<prefix>:{catalog}:version    INCR on every change
//	<prefix>:{catalog}:changes    stream of the changes, entry <version>-1: c → kind ('c', 'r' or
//	                              'l') and field of each change of a write, in order, the last one
//	                              that of <version>; the entries of the last Options.CatalogChanges
//	<prefix>:{catalog}:epoch      names the catalog's history: set by the first change after the
//	                              catalog was lost (counter.Catalog.Epoch)
//	<prefix>:{catalog}:dedupe     the dedupe parameters the store was set up with
//	<prefix>:{catalog}:judge      the judges' sizing (expected visitors, rate, partitions, keying)
//
// The webhook endpoints and the claims of their events share the hash tag
// {webhooks} (webhooks.go).
//
// Visits are counted through a log per partition (DESIGN.md, "Counting:
// one deterministic judge per partition"): Commit appends each batch to the
// log of its partition of the campaign (judge.Partition of campaign and
// creator, Options.Partitions of them), and the judge of each partition,
// run by whichever store holds its lease, decides the visits and publishes
// its counters (log.go, lease.go, judges.go). Every key of partition p
// shares the hash tag {<campaign>:<p>}, so a partition is one slot of a
// Redis Cluster:
//
//	<prefix>:{<campaign>:<p>}:log         stream of batches (counter/visitlog)
//	<prefix>:{<campaign>:<p>}:lease       the judge's lease; :lease:token its fencing tokens
//	<prefix>:{<campaign>:<p>}:checkpoint  the judge's checkpoint (counters, filters, log offset)
//	<prefix>:{<campaign>:<p>}:j:<creator> hash  <YYYY-MM-DD>:<reason> → count decided by the judge
//	<prefix>:{<campaign>:<p>}:jl:<code>:<creator>  the same of one link of the creator
//	<prefix>:{<campaign>:<p>}:judged      the log offset those counts reach
//
// Counts that need no judge (bots, previews, duplicates found by an edge's
// local filter, ...) are added to the counter hashes of slot 0:
//
//	<prefix>:{<campaign>:0}:n:<creator>   hash  <YYYY-MM-DD>:<reason> → count
//	<prefix>:{<campaign>:0}:nl:<code>:<creator>  the same of one link of the creator
//	                                      (counts added with their link, and its signups)
//
// A creator's stats are its judged counts plus the n: hashes of every one
// of DedupeParams.Slots slots (earlier versions counted visits there, with
// a Bloom bitmap per slot, <prefix>:{<campaign>:<slot>}:bf:<window>; those
// bitmaps are not read any more, so a campaign that runs across the
// upgrade counts its returning visitors of the current window once more).
//
// A link's stats are its jl: hash plus its nl: hash, as a creator's are
// its j: and n: hashes: the judge overwrites what it publishes, and
// adds only ever go to the n: and nl: hashes.
//
// The signup state of a campaign is in slot 0 (signupSlot), so that one
// script checks both that a user is new and that a click id was not used by
// another user, and counts the signup, on one node of a cluster:
//
//	<prefix>:{<campaign>:0}:users   hash  user id → creator
//	<prefix>:{<campaign>:0}:clicks  hash  click key (clickid.Claims.Key) → user id
//
// Neither expires. A used click may be forgotten only once no conversion
// can be accepted with it any more: the admin API refuses a click older than
// the campaign's attribution window, but that bound holds only if the window
// is never lengthened after the click, and it needs a margin for the clocks
// of the nodes and of Redis; the store does not know the window either, and
// a hash field cannot expire on its own before Redis 7.4. So used clicks are
// kept like users: both hashes grow by one field per conversion reported,
// not per click. (Before click ids had nonces, users were spread over the
// slots as <prefix>:{<campaign>:<slot>}:u; those hashes are not read any
// more.)
//
// # Durability
//
// A committed visit is as durable as Redis's persistence makes it; the store
// cannot do better than the server's settings:
//
//   - appendonly yes, appendfsync always: every write is fsynced before Redis
//     answers, so an acknowledged visit survives a crash of the machine.
//     Slowest.
//   - appendonly yes, appendfsync everysec (the usual setting): a crash of
//     the machine or of its power loses up to about the last two seconds of
//     writes, and so can a crash of the Redis process when the disk is slow
//     (while a background fsync runs, Redis postpones writing the file for
//     up to 2 s, and answers meanwhile).
//   - appendonly no (RDB snapshots only): a crash loses everything since the
//     last snapshot, minutes of visits. Do not run clickgate on it.
//
// Replication is asynchronous in every case: a failover to a replica may lose
// the writes it had not received yet. Losing a checkpoint makes the judge
// replay more of the log (or, with the log lost too, start empty: a
// visitor may then be counted twice within a window); the ledger never
// pays a total twice, and reports one that went down. The ledger, not
// Redis, is what payouts are made from.
//
// The store requires Redis 7.0 or later (scripts with a shebang line, so a
// server out of memory refuses a whole script instead of running half of it).
package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/judge"
)

// Options configure a Store.
type Options struct {
	// URL is the server: redis://[user:pass@]host:port/db, or rediss:// for
	// TLS, with optional go-redis query parameters (dial_timeout=3s, ...);
	// with Cluster, a cluster's seed nodes:
	// redis://[user:pass@]host:port?addr=host2:port2&addr=host3:port3.
	// Required.
	URL string
	// Cluster makes URL a Redis Cluster's. Every key the store writes in
	// one operation shares a hash tag: the catalog's, a campaign's
	// signups', or one partition's.
	Cluster bool
	// Params are the dedupe parameters. The first store to open a Redis
	// database records them; opening it with other parameters fails with
	// counter.ErrParamsMismatch.
	Params counter.DedupeParams
	// Prefix starts every key, so several stores can share one database.
	// It must not contain '{' or '}'. default: "cg"
	Prefix string
	// DialTimeout bounds connecting to Redis. default: the URL's
	// dial_timeout, else 5s
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for the replies of one command or
	// pipeline; a context deadline that ends sooner wins. default: the
	// URL's read_timeout, else 5s
	ReadTimeout time.Duration
	// WriteTimeout bounds sending one command or pipeline; a context
	// deadline that ends sooner wins. default: the URL's write_timeout,
	// else ReadTimeout
	WriteTimeout time.Duration

	// Partitions is how many partitions each campaign's visits are split
	// into, by creator (judge.Partition): each has its own log, judge and
	// lease, in a hash tag of its own. One Redis wants few (each append
	// costs it about the same whatever its size); a cluster enough to
	// spread over its masters. Every node must use the same. default: 1
	Partitions uint32
	// Judge makes the store run the judges of the partitions whose lease
	// it can take (judges.go); a store that only reads (the flush
	// command) runs none. Stores that judge record their judges' sizing
	// in Redis on first use and refuse another, like Params; their policy
	// (velocity, budgets) may differ from the checkpoints', and each judge
	// adopts its own once it has judged what a previous holder may have.
	// The judges' velocity rule and budgets are Params'.
	Judge bool
	// Holder names this store's judges in their leases: it must be unique
	// among running stores, and the same across a restart, so that a
	// store that restarts takes its own leases back at once instead of
	// when they expire. default: hostname, pid and a random number
	Holder string
	// Logger receives the judges' errors. default: slog.Default()
	Logger *slog.Logger
	// CatalogChanges is how many catalog changes are kept for the nodes'
	// link tables to catch up with; a table further behind reads the
	// whole catalog. default: 100000
	CatalogChanges int
	// ReplicaAcks makes every append of visits wait until this many
	// replicas of its master have it (WAIT), so that a failover loses no
	// visit that was redirected as counted. An append that fewer replicas
	// acknowledge within ReplicaTimeout fails: its visits are spooled and
	// appended again, which the batch id makes harmless where the first
	// append stayed. default: 0, no wait (replication is asynchronous)
	ReplicaAcks int
	// ReplicaTimeout bounds the wait of ReplicaAcks. default: 100ms
	ReplicaTimeout time.Duration
}

// Store is a counter.Store on Redis. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	addr   string // of the server, or the cluster's seeds
	params counter.DedupeParams
	prefix string

	campaignsKey string
	creatorsKey  string
	linksKey     string
	versionKey   string
	dedupeKey    string
	changesKey   string
	epochKey     string
	changesKept  int

	partitions uint32
	judges     *judges // nil unless Options.Judge

	replicaAcks    int
	replicaTimeout time.Duration

	followState

	appendedMu sync.Mutex
	appended   map[partKey]string // the last stream id appended, by partition
	lagging    time.Time          // when Stats last gave up waiting for a judge
}

var _ counter.Store = (*Store)(nil)

// Open connects to Redis, loads the scripts and records or checks the dedupe
// parameters.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Prefix == "" {
		o.Prefix = "cg"
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("key prefix %q must not contain '{' or '}'", o.Prefix)
	}
	p := o.Params
	if p.Slots == 0 || p.M == 0 || p.K == 0 || p.M > 1<<32 {
		return nil, fmt.Errorf("invalid dedupe parameters %q: slots, m and k must be positive and m at most 2^32", p)
	}
	if o.URL == "" {
		return nil, errors.New("redis URL is required")
	}
	if o.Partitions == 0 {
		o.Partitions = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	jp := judge.FromDedupe(p, o.Partitions)
	if err := jp.Validate(); err != nil {
		return nil, fmt.Errorf("invalid judge parameters: %w", err)
	}
	rdb, addr, err := newClient(o)
	if err != nil {
		return nil, err
	}
	s := &Store{
		rdb:            rdb,
		addr:           addr,
		params:         p,
		prefix:         o.Prefix,
		campaignsKey:   o.Prefix + ":{catalog}:campaigns",
		creatorsKey:    o.Prefix + ":{catalog}:creators",
		linksKey:       o.Prefix + ":{catalog}:links",
		versionKey:     o.Prefix + ":{catalog}:version",
		dedupeKey:      o.Prefix + ":{catalog}:dedupe",
		changesKey:     o.Prefix + ":{catalog}:changes",
		epochKey:       o.Prefix + ":{catalog}:epoch",
		changesKept:    cmp.Or(o.CatalogChanges, 100_000),
		partitions:     o.Partitions,
		replicaAcks:    o.ReplicaAcks,
		replicaTimeout: cmp.Or(o.ReplicaTimeout, 100*time.Millisecond),
		appended:       make(map[partKey]string),
		followState:    newFollowState(),
	}
	s.rdb.AddHook(roundTripHook{})
	if err := s.init(ctx, o.Judge, jp, o.Logger); err != nil {
		s.rdb.Close()
		return nil, err
	}
	if o.Judge {
		s.judges = newJudges(s, jp, o.Holder, o.Logger)
		s.judges.start()
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, judging bool, jp judge.Params, log *slog.Logger) error {
	addr := s.addr
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cannot reach redis at %q: %w", addr, storeErr(err))
	}
	// The policy only: a node starts on a full Redis, and Ping fails.
	if err := s.eachMaster(ctx, func(addr, info string) error {
		if aof, _ := infoField(info, "aof_enabled"); aof == "0" {
			log.Warn("redis keeps no append-only file: a restart of it loses the visits it acknowledged since its last snapshot; run it with appendonly yes",
				"redis", addr)
		}
		return checkPolicy(addr, info)
	}); err != nil {
		return err
	}
	scripts := []*redis.Script{catalogWriteScript, catalogChangesScript, publishScript, acquireLeaseScript, renewLeaseScript,
		releaseLeaseScript, checkpointScript, trimScript}
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			// Redis before 7.0 cannot compile the shebang line.
			return fmt.Errorf("cannot load script into redis at %q (7.0 or later is required): %w", addr, storeErr(err))
		}
	}
	// Read before written: a node starts on a Redis that refuses writes
	// (full, under noeviction), and spools.
	want := s.params.String()
	got, err := s.rdb.Get(ctx, s.dedupeKey).Result()
	if errors.Is(err, redis.Nil) {
		if err := s.rdb.SetNX(ctx, s.dedupeKey, want, 0).Err(); err != nil {
			return fmt.Errorf("cannot record dedupe parameters in %q: %w", s.dedupeKey, storeErr(err))
		}
		got, err = s.rdb.Get(ctx, s.dedupeKey).Result()
	}
	if err != nil {
		return fmt.Errorf("cannot read dedupe parameters from %q: %w", s.dedupeKey, storeErr(err))
	}
	if got != want {
		return fmt.Errorf("%w: the store at %q has %q; given %q", counter.ErrParamsMismatch, s.dedupeKey, got, want)
	}
	if judging {
		// Judges of another sizing would refuse each other's checkpoints,
		// and edges with other partitions would append where no judge
		// reads. The policy (velocity, budgets) may change: each judge
		// adopts it at a checkpoint (judges.go).
		key, want := s.prefix+":{catalog}:judge", jp.SizingString()
		got, err := s.rdb.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			got, err = s.rdb.SetArgs(ctx, key, want, redis.SetArgs{Mode: "NX", Get: true}).Result()
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("cannot record the judge's parameters in %q: %w", key, storeErr(err))
		}
		if err == nil && got != want {
			return fmt.Errorf("%w: the store at %q has judges with %q; given %q", counter.ErrParamsMismatch, key, got, want)
		}
	}
	return nil
}

// StopJudges stops the store's judges, each saving its work and releasing
// its lease first unless ctx ends. Commits and reads go on.
func (s *Store) StopJudges(ctx context.Context) {
	if s.judges != nil {
		s.judges.close(ctx)
	}
}

// Close stops the judges (StopJudges, within a few seconds) and closes the
// connections.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	s.StopJudges(ctx)
	// The follower's call under way ends when the client closes: it must
	// not hold a shutdown for Redis's timeouts.
	s.followState.stop()
	err := s.rdb.Close()
	s.following.Wait()
	return err
}

// storeErr turns redis.Nil into counter.ErrNotFound and marks errors that
// say the store cannot be reached, or cannot take writes for now, with
// counter.ErrUnavailable. Other errors pass unchanged.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return counter.ErrNotFound
	case unavailable(err):
		return fmt.Errorf("%w: %w", counter.ErrUnavailable, err)
	}
	return err
}

// transientPrefixes start the Redis error replies that mean the server
// cannot serve for now, and that a command so refused did not run.
var transientPrefixes = []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "NOREPLICAS", "OOM"}

func unavailable(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrPoolExhausted):
		return true
	}
	for _, p := range transientPrefixes {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

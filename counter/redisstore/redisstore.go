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
//	                              'l') and field of the change; the last Options.CatalogChanges
//	<prefix>:{catalog}:epoch      names the catalog's history: set by the first change after the
//	                              catalog was lost (counter.Catalog.Epoch)
//	<prefix>:{catalog}:dedupe     the dedupe parameters the store was set up with
//	<prefix>:{catalog}:judge      the judges' sizing (expected visitors, rate, partitions, keying)
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
//	<prefix>:{<campaign>:<p>}:judged      the log offset those counts reach
//
// Counts that need no judge (bots, previews, duplicates found by an edge's
// local filter, ...) are added to the counter hashes of slot 0:
//
//	<prefix>:{<campaign>:0}:n:<creator>   hash  <YYYY-MM-DD>:<reason> → count
//
// A creator's stats are its judged counts plus the n: hashes of every one
// of DedupeParams.Slots slots (earlier versions counted visits there, with
// a Bloom bitmap per slot, <prefix>:{<campaign>:<slot>}:bf:<window>; those
// bitmaps are not read any more, so a campaign that runs across the
// upgrade counts its returning visitors of the current window once more).
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
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
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
	Judge bool
	// VelocityMax and VelocityWindow are the judges' velocity rule
	// (judge.Params): it sees every node's visits, so it holds across
	// nodes and restarts. VelocityMax 0: none. Only with Judge.
	VelocityMax    int
	VelocityWindow time.Duration
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
	if o.VelocityWindow == 0 {
		o.VelocityWindow = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	jp := judge.FromDedupe(p, o.Partitions, o.VelocityMax, o.VelocityWindow)
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
	if err := s.init(ctx, o.Judge, jp); err != nil {
		s.rdb.Close()
		return nil, err
	}
	if o.Judge {
		s.judges = newJudges(s, jp, o.Holder, o.Logger)
		s.judges.start()
	}
	return s, nil
}

// newClient returns the client of o.URL, a single server or, with
// o.Cluster, a cluster's seed list, and the address to name in errors.
func newClient(o Options) (redis.UniversalClient, string, error) {
	// A retried write may have run already: a retried append would be
	// judged again and a retried HINCRBY would add twice. Only what
	// certainly did not run is retried (MOVED and ASK redirections, which
	// the cluster client follows).
	if o.Cluster {
		co, err := redis.ParseClusterURL(o.URL)
		if err != nil {
			// The URL may hold a password: quote it redacted.
			return nil, "", fmt.Errorf("cannot parse redis cluster URL %q: %w", redactURL(o.URL), unwrapURLError(err))
		}
		co.MaxRetries = -1
		co.ContextTimeoutEnabled = true
		// A master that dies answers no MOVED: without a reload, its
		// slots' commands would go to it until the next periodic one
		// (60 s by default) although a replica took over seconds after.
		// One CLUSTER SLOTS a second per node.
		co.ClusterStateReloadInterval = time.Second
		co.DialTimeout = cmp.Or(o.DialTimeout, co.DialTimeout)
		co.ReadTimeout = cmp.Or(o.ReadTimeout, co.ReadTimeout)
		co.WriteTimeout = cmp.Or(o.WriteTimeout, co.WriteTimeout)
		return redis.NewClusterClient(co), strings.Join(co.Addrs, ","), nil
	}
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, "", fmt.Errorf("cannot parse redis URL %q: %w", redactURL(o.URL), unwrapURLError(err))
	}
	ro.MaxRetries = -1
	ro.ContextTimeoutEnabled = true
	ro.DialTimeout = cmp.Or(o.DialTimeout, ro.DialTimeout)
	ro.ReadTimeout = cmp.Or(o.ReadTimeout, ro.ReadTimeout)
	ro.WriteTimeout = cmp.Or(o.WriteTimeout, ro.WriteTimeout)
	return redis.NewClient(ro), ro.Addr, nil
}

// roundTrips counts the exchanges with Redis (a command, or a pipeline of
// them): what the edge pays per click in latency is round trips, not
// commands.
var roundTrips = metrics.NewCounter("clickgate_redis_round_trips_total")

type roundTripHook struct{}

func (roundTripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (roundTripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		roundTrips.Inc()
		return next(ctx, cmd)
	}
}

func (roundTripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		roundTrips.Inc()
		return next(ctx, cmds)
	}
}

func (s *Store) init(ctx context.Context, judging bool, jp judge.Params) error {
	addr := s.addr
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cannot reach redis at %q: %w", addr, storeErr(err))
	}
	scripts := []*redis.Script{catalogWriteScript, catalogChangesScript, publishScript, acquireLeaseScript, renewLeaseScript,
		releaseLeaseScript, checkpointScript}
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			// Redis before 7.0 cannot compile the shebang line.
			return fmt.Errorf("cannot load script into redis at %q (7.0 or later is required): %w", addr, storeErr(err))
		}
	}
	want := s.params.String()
	if err := s.rdb.SetNX(ctx, s.dedupeKey, want, 0).Err(); err != nil {
		return fmt.Errorf("cannot record dedupe parameters in %q: %w", s.dedupeKey, storeErr(err))
	}
	got, err := s.rdb.Get(ctx, s.dedupeKey).Result()
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
		got, err := s.rdb.SetArgs(ctx, key, want, redis.SetArgs{Mode: "NX", Get: true}).Result()
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

// PutCampaign creates or replaces c.
func (s *Store) PutCampaign(ctx context.Context, c counter.Campaign) error {
	if err := s.putCatalog(ctx, changeCampaign, s.campaignsKey, c.ID, c); err != nil {
		return fmt.Errorf("cannot put campaign %q: %w", c.ID, err)
	}
	return nil
}

// Campaign returns the campaign id, or counter.ErrNotFound.
func (s *Store) Campaign(ctx context.Context, id string) (counter.Campaign, error) {
	var c counter.Campaign
	if err := s.getCatalog(ctx, s.campaignsKey, id, &c); err != nil {
		return c, fmt.Errorf("cannot read campaign %q: %w", id, err)
	}
	return c, nil
}

// PutCreator creates or replaces c.
func (s *Store) PutCreator(ctx context.Context, c counter.Creator) error {
	if err := s.putCatalog(ctx, changeCreator, s.creatorsKey, c.Campaign+":"+c.ID, c); err != nil {
		return fmt.Errorf("cannot put creator %q of campaign %q: %w", c.ID, c.Campaign, err)
	}
	return nil
}

// Creator returns creator id of campaign, or counter.ErrNotFound.
func (s *Store) Creator(ctx context.Context, campaign, id string) (counter.Creator, error) {
	var c counter.Creator
	if err := s.getCatalog(ctx, s.creatorsKey, campaign+":"+id, &c); err != nil {
		return c, fmt.Errorf("cannot read creator %q of campaign %q: %w", id, campaign, err)
	}
	return c, nil
}

// CreateLink adds l, or returns counter.ErrExists when its code is taken.
func (s *Store) CreateLink(ctx context.Context, l counter.Link) error {
	err := s.CreateLinks(ctx, []counter.Link{l})
	if errors.Is(err, counter.ErrExists) {
		return fmt.Errorf("cannot create link %q: %w", l.Code, counter.ErrExists)
	}
	return err
}

// CreateLinks adds links, all or none, in one script: when some of their
// codes are taken it adds none and returns a *counter.CodesTakenError.
// Redis runs nothing else meanwhile: a caller with thousands of links
// sends them a thousand or so at a time.
func (s *Store) CreateLinks(ctx context.Context, links []counter.Link) error {
	args := make([]any, 0, 4+2*len(links))
	args = append(args, "1", s.changesKept, newEpoch(), string(changeLink))
	seen := make(map[string]bool, len(links))
	for i := range links {
		l := &links[i]
		if seen[l.Code] {
			return fmt.Errorf("cannot create links: code %q is given twice", l.Code)
		}
		seen[l.Code] = true
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("cannot encode link %q: %w", l.Code, err)
		}
		args = append(args, l.Code, b)
	}
	taken, err := catalogWriteScript.Run(ctx, s.rdb, s.writeKeys(s.linksKey), args...).StringSlice()
	if err != nil {
		return fmt.Errorf("cannot create %d links: %w", len(links), storeErr(err))
	}
	if len(taken) > 0 {
		return fmt.Errorf("cannot create %d links: %w", len(links), &counter.CodesTakenError{Codes: taken})
	}
	return nil
}

// UpdateLink changes the link of code with update and returns it as
// stored: counter.ErrNotFound for an unknown code, or update's error, and
// then nothing changes. The write is a compare-and-set on the link as
// read, retried when another write came between. update may not change
// the code, the campaign or the creator.
func (s *Store) UpdateLink(ctx context.Context, code string, update func(*counter.Link) error) (counter.Link, error) {
	for range 10 {
		old, err := s.rdb.HGet(ctx, s.linksKey, code).Bytes()
		if err != nil {
			return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, storeErr(err))
		}
		var l counter.Link
		if err := json.Unmarshal(old, &l); err != nil {
			return counter.Link{}, fmt.Errorf("cannot decode link %q: %w", code, err)
		}
		was := l
		if err := update(&l); err != nil {
			return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, err)
		}
		if l.Code != was.Code || l.Campaign != was.Campaign || l.Creator != was.Creator {
			return counter.Link{}, fmt.Errorf("cannot update link %q: a link's code, campaign and creator cannot change", code)
		}
		b, err := json.Marshal(&l)
		if err != nil {
			return counter.Link{}, fmt.Errorf("cannot encode link %q: %w", code, err)
		}
		res, err := linkUpdateScript.Run(ctx, s.rdb, s.writeKeys(s.linksKey), s.changesKept, newEpoch(), string(changeLink), code, old, b).Int()
		if err != nil {
			return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, storeErr(err))
		}
		switch res {
		case 1:
			return l, nil
		case 0:
			return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, counter.ErrNotFound)
		}
		// Changed meanwhile: again, on what it is now.
	}
	return counter.Link{}, fmt.Errorf("cannot update link %q: it keeps changing; try again", code)
}

// linkUpdateScript sets field ARGV[4] of the catalog hash to ARGV[6] if
// it is ARGV[5], as a change of kind ARGV[3] (as catalogWriteScript). It
// returns 1 when set, 0 when the field does not exist, 2 when it holds
// another value.
//
// KEYS: hash, version, changes, epoch. ARGV: kept, epoch, kind, field,
// old value, new value.
var linkUpdateScript = redis.NewScript(`#!lua
local cur = redis.call('HGET', KEYS[1], ARGV[4])
if not cur then
	return 0
end
if cur ~= ARGV[5] then
	return 2
end
redis.call('SET', KEYS[4], ARGV[2], 'NX')
redis.call('HSET', KEYS[1], ARGV[4], ARGV[6])
local v = redis.call('INCR', KEYS[2])
redis.pcall('XADD', KEYS[3], 'MAXLEN', ARGV[1], v .. '-1', 'c', ARGV[3] .. ARGV[4])
return 1
`)

// Link returns the link of code, or counter.ErrNotFound.
func (s *Store) Link(ctx context.Context, code string) (counter.Link, error) {
	var l counter.Link
	if err := s.getCatalog(ctx, s.linksKey, code, &l); err != nil {
		return l, fmt.Errorf("cannot read link %q: %w", code, err)
	}
	return l, nil
}

// Version returns the catalog version: 0 before the first change, then one
// more after each.
func (s *Store) Version(ctx context.Context) (uint64, error) {
	v, err := parseVersion(s.rdb.Get(ctx, s.versionKey))
	if err != nil {
		return 0, fmt.Errorf("cannot read catalog version from %q: %w", s.versionKey, err)
	}
	return v, nil
}

// Catalog reads the whole catalog, one version of it. Each of its hashes
// is read in chunks (HSCAN), so that no one command holds Redis, or waits
// past the client's read timeout, for the whole of a large catalog (a
// single HGETALL of a million links did); what changed meanwhile is then
// read from the change feed and applied on top, which gives the catalog
// at the version the feed reached. The catalog has no deletions: a change
// is a whole entry that replaces the one with its id. Entries are sorted
// by id (creators by campaign, then id; links by code).
func (s *Store) Catalog(ctx context.Context) (*counter.Catalog, error) {
	for try := 1; ; try++ {
		cat, err := s.catalog(ctx)
		if !errors.Is(err, errCatalogMoved) || try == 3 {
			return cat, err
		}
	}
}

// errCatalogMoved is catalog's error when the feed no longer holds the
// changes made during the scan (it was trimmed, or the catalog reset).
var errCatalogMoved = errors.New("the catalog changed too much while it was read; try again")

func (s *Store) catalog(ctx context.Context) (*counter.Catalog, error) {
	tx := s.rdb.TxPipeline()
	version := tx.Get(ctx, s.versionKey)
	epoch := tx.Get(ctx, s.epochKey)
	if _, err := tx.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("cannot read catalog: %w", storeErr(err))
	}
	since, err := parseVersion(version)
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog version from %q: %w", s.versionKey, err)
	}
	campaigns, err := scanCatalog[counter.Campaign](ctx, s, s.campaignsKey)
	if err != nil {
		return nil, fmt.Errorf("cannot read campaigns of the catalog: %w", err)
	}
	creators, err := scanCatalog[counter.Creator](ctx, s, s.creatorsKey)
	if err != nil {
		return nil, fmt.Errorf("cannot read creators of the catalog: %w", err)
	}
	links, err := scanCatalog[counter.Link](ctx, s, s.linksKey)
	if err != nil {
		return nil, fmt.Errorf("cannot read links of the catalog: %w", err)
	}
	ch, err := s.CatalogChanges(ctx, since, 0)
	if err != nil {
		return nil, err
	}
	if ch.Trimmed || ch.More || ch.Epoch != epoch.Val() {
		return nil, errCatalogMoved
	}
	return &counter.Catalog{
		Version: ch.Version,
		Epoch:   ch.Epoch,
		Campaigns: merge(campaigns, ch.Campaigns, func(a, b *counter.Campaign) int {
			return strings.Compare(a.ID, b.ID)
		}),
		Creators: merge(creators, ch.Creators, func(a, b *counter.Creator) int {
			return cmp.Or(strings.Compare(a.Campaign, b.Campaign), strings.Compare(a.ID, b.ID))
		}),
		Links: merge(links, ch.Links, func(a, b *counter.Link) int { return strings.Compare(a.Code, b.Code) }),
	}, nil
}

// merge returns the entries scanned, each once, with those changed since
// in place of theirs, sorted by id (cmp).
func merge[T any](scanned, changed []T, cmp func(a, b *T) int) []T {
	all := append(scanned, changed...) // a change after the entry it replaces
	// Sort pointers, not the entries (a link is about 200 bytes), keeping
	// the order of equal ids: of an id scanned twice (HSCAN may) or
	// changed, the last is the one.
	ptrs := make([]*T, len(all))
	for i := range all {
		ptrs[i] = &all[i]
	}
	slices.SortStableFunc(ptrs, cmp)
	out := make([]T, 0, len(ptrs))
	for i, p := range ptrs {
		if i+1 == len(ptrs) || cmp(p, ptrs[i+1]) != 0 {
			out = append(out, *p)
		}
	}
	return out
}

// catalogScanCount is the entries one HSCAN of a catalog hash asks for.
const catalogScanCount = 10_000

// scanCatalog reads the catalog hash key in chunks. An entry may come
// twice (HSCAN's guarantee is at least once for what is there
// throughout); one added during the scan may not come, and is in the
// change feed.
func scanCatalog[T any](ctx context.Context, s *Store, key string) ([]T, error) {
	n, err := s.rdb.HLen(ctx, key).Result()
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]T, 0, n+n/64)
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, key, cursor, "", catalogScanCount).Result()
		if err != nil {
			return nil, storeErr(err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			var v T
			if err := json.Unmarshal([]byte(kv[i+1]), &v); err != nil {
				return nil, fmt.Errorf("cannot decode %q: %w", kv[i], err)
			}
			out = append(out, v)
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// putCatalog sets field of the catalog hash key to v as JSON, bumps the
// version and records the change of kind, in one script.
func (s *Store) putCatalog(ctx context.Context, kind byte, key, field string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = catalogWriteScript.Run(ctx, s.rdb, s.writeKeys(key), "0", s.changesKept, newEpoch(), string(kind), field, b).Err()
	return storeErr(err)
}

// Kinds of a catalog change, the first byte of its record in the feed.
const (
	changeCampaign = 'c'
	changeCreator  = 'r'
	changeLink     = 'l'
)

func (s *Store) writeKeys(hash string) []string {
	return []string{hash, s.versionKey, s.changesKey, s.epochKey}
}

// catalogWriteScript sets fields of a catalog hash, each a change of its
// own: the version is bumped and the change appended to the feed under
// it, which keeps the last ARGV[2]. With ARGV[1] = "1" it sets
// none if some of them exist, and returns those. The first change of a
// catalog names its epoch (ARGV[3], new at every call, so that a catalog
// lost and written again is another epoch). An append the stream refuses
// (its last id above the version: the version key was restored alone)
// leaves a gap, which readers take for a trimmed feed.
//
// KEYS: hash, version, changes, epoch. ARGV: nx, kept, epoch, kind, then
// field and value pairs.
var catalogWriteScript = redis.NewScript(`#!lua
local fields = {}
for i = 5, #ARGV, 2 do
	fields[#fields + 1] = ARGV[i]
end
-- unpack takes a few thousand values at a time.
local step = 1000
if ARGV[1] == '1' then
	local taken = {}
	for i = 1, #fields, step do
		local got = redis.call('HMGET', KEYS[1], unpack(fields, i, math.min(i + step - 1, #fields)))
		for j = 1, #got do
			if got[j] then
				taken[#taken + 1] = fields[i + j - 1]
			end
		end
	end
	if #taken > 0 then
		return taken
	end
end
redis.call('SET', KEYS[4], ARGV[3], 'NX')
for i = 5, #ARGV, 2 * step do
	redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 2 * step - 1, #ARGV)))
end
local v = redis.call('INCRBY', KEYS[2], #fields) - #fields
for _, field in ipairs(fields) do
	v = v + 1
	redis.pcall('XADD', KEYS[3], 'MAXLEN', ARGV[2], v .. '-1', 'c', ARGV[4] .. field)
end
return {}
`)

// catalogChangesScript reads the changes after version ARGV[1], at most
// ARGV[2] of them, each entry once and as it is now. It returns the
// version reached, whether there are more, the epoch, whether the feed
// lacks a change after ARGV[1], the change at ARGV[1] and the last one
// read, then kind and value pairs.
//
// KEYS: version, changes, epoch, campaigns, creators, links.
var catalogChangesScript = redis.NewScript(`#!lua flags=no-writes
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[1])
local out = {v, 0, redis.call('GET', KEYS[3]) or '', 0, '', ''}
if since >= v then
	return out
end
local last = v
if v - since > tonumber(ARGV[2]) then
	last = since + tonumber(ARGV[2])
	out[2] = 1
end
local from = since
if from == 0 then
	from = 1
end
local entries = redis.call('XRANGE', KEYS[2], from .. '-1', last .. '-1')
local hashes = {c = KEYS[4], r = KEYS[5], l = KEYS[6]}
local seen = {}
local want = since + 1
for _, e in ipairs(entries) do
	local id = tonumber(string.match(e[1], '^(%d+)-'))
	local rec = e[2][2]
	if id == since then
		out[5] = rec
	else
		if id ~= want then
			break
		end
		want = want + 1
		out[6] = rec
		if not seen[rec] then
			seen[rec] = true
			local kind = string.sub(rec, 1, 1)
			local val = redis.call('HGET', hashes[kind], string.sub(rec, 2))
			if val then
				out[#out + 1] = kind
				out[#out + 1] = val
			end
		end
	end
end
if want ~= last + 1 then
	return {v, 0, out[3], 1, '', ''}
end
out[1] = last
return out
`)

// CatalogChanges returns the changes after version since, at most limit
// of them (counter.CatalogChanges), in one script.
func (s *Store) CatalogChanges(ctx context.Context, since uint64, limit int) (*counter.CatalogChanges, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	keys := []string{s.versionKey, s.changesKey, s.epochKey, s.campaignsKey, s.creatorsKey, s.linksKey}
	res, err := catalogChangesScript.Run(ctx, s.rdb, keys, since, limit).Slice()
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog changes after version %d: %w", since, storeErr(err))
	}
	ch, err := decodeChanges(res)
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog changes after version %d: %w", since, err)
	}
	return ch, nil
}

func decodeChanges(res []any) (*counter.CatalogChanges, error) {
	if len(res) < 6 || len(res)%2 != 0 {
		return nil, fmt.Errorf("unexpected reply of %d values", len(res))
	}
	v, _ := res[0].(int64)
	more, _ := res[1].(int64)
	epoch, _ := res[2].(string)
	trimmed, _ := res[3].(int64)
	at, _ := res[4].(string)
	last, _ := res[5].(string)
	ch := &counter.CatalogChanges{Version: uint64(v), More: more == 1, Epoch: epoch, Trimmed: trimmed == 1, At: at, Last: last}
	for i := 6; i < len(res); i += 2 {
		kind, _ := res[i].(string)
		val, _ := res[i+1].(string)
		var err error
		switch kind {
		case string(changeCampaign):
			ch.Campaigns, err = appendJSON(ch.Campaigns, val)
		case string(changeCreator):
			ch.Creators, err = appendJSON(ch.Creators, val)
		case string(changeLink):
			ch.Links, err = appendJSON(ch.Links, val)
		default:
			err = fmt.Errorf("unknown kind %q of a change", kind)
		}
		if err != nil {
			return nil, err
		}
	}
	return ch, nil
}

func appendJSON[T any](dst []T, js string) ([]T, error) {
	var v T
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		return dst, fmt.Errorf("cannot decode %q: %w", js, err)
	}
	return append(dst, v), nil
}

// newEpoch names a new history of the catalog.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// getCatalog decodes field of the catalog hash key into v.
func (s *Store) getCatalog(ctx context.Context, key, field string, v any) error {
	b, err := s.rdb.HGet(ctx, key, field).Bytes()
	if err != nil {
		return storeErr(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("cannot decode %q of %q: %w", field, key, err)
	}
	return nil
}

func parseVersion(cmd *redis.StringCmd) (uint64, error) {
	s, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, storeErr(err)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid version %q: %w", s, err)
	}
	return v, nil
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

// redactURL returns raw with any password replaced, or a placeholder when
// raw does not parse.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// unwrapURLError drops the URL that url.Parse quotes in its errors: it may
// hold a password.
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/redis/go-redis/v9"
)

var (
	// ErrLeaseHeld is returned by AcquireLease when another holder has the
	// lease; the error is a *LeaseHeldError that names it.
	ErrLeaseHeld = errors.New("redisstore: lease held by another holder")
	// ErrLeaseLost is returned when a lease expired or was taken over: its
	// holder must stop judging, since another may have started.
	ErrLeaseLost = errors.New("redisstore: lease lost")
)

// LeaseHeldError is ErrLeaseHeld with the lease's current holder.
type LeaseHeldError struct {
	Holder string
	Token  uint64
	// TTL is how long the lease has left, as Redis counted when it
	// refused.
	TTL time.Duration
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("%s: held by %q with token %d for %s more", ErrLeaseHeld, e.Holder, e.Token, e.TTL)
}

func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// Lease is one acquisition of the judge's lease of a partition. Only the
// store makes leases.
type Lease struct {
	Campaign  string
	Partition uint32
	Holder    string
	// Token is the fencing token: every acquisition of this partition's
	// lease gets a larger one. A holder that acquires again and gets its
	// previous token plus one knows that nobody held the lease in between.
	Token uint64
	// TTL is how long the lease lasts after an acquisition or a renewal.
	TTL time.Duration
	// Expires is when AcquireLease was called plus TTL: by the holder's
	// clock, the lease lasts at least until then (less the drift of the
	// clocks over TTL). After a renewal it lasts until RenewLease was
	// called plus TTL.
	Expires time.Time

	// value is what the lease key holds while this lease is current:
	// "<token>:<nonce>:<holder>". The nonce tells apart two acquisitions
	// with the same token and holder, which a token counter reset (a
	// FLUSHALL, or a failover to a replica that missed its INCR) can make.
	value string
}

// acquireLeaseScript takes the lease when it is free, expired or held by the
// same holder, with a new token.
//
//	KEYS[1]  the lease
//	KEYS[2]  the token counter
//	ARGV[1]  the holder
//	ARGV[2]  the nonce, hex
//	ARGV[3]  the TTL, milliseconds
//
// It returns {1, value} when it took the lease, else {0, value of the
// current lease, its PTTL}.
var acquireLeaseScript = redis.NewScript(`#!lua
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^%d+:%x+:(.*)$') ~= ARGV[1] then
	return {0, cur, redis.call('PTTL', KEYS[1])}
end
local v = string.format('%d', redis.call('INCR', KEYS[2])) .. ':' .. ARGV[2] .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
return {1, v}
`)

// renewLeaseScript extends the lease if it is still ARGV[1].
//
//	KEYS[1]  the lease
//	ARGV[1]  the lease's value
//	ARGV[2]  the TTL, milliseconds
var renewLeaseScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseLeaseScript ends the lease if it is still ARGV[1]: it expires in a
// millisecond (the edge's ACL has no DEL).
//
//	KEYS[1]  the lease
//	ARGV[1]  the lease's value
var releaseLeaseScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
redis.call('PEXPIRE', KEYS[1], 1)
return 1
`)

// checkpointScript puts a staged checkpoint in place, if the lease is still
// ARGV[1] and the staged key holds the whole checkpoint. It does not copy
// the checkpoint: passed as an argument, a checkpoint of 1 MB would cost
// Redis about 1.4 ms of its one thread to copy into Lua and out again,
// against microseconds for a RENAME (BenchmarkWriteCheckpoint). RENAME is
// its first write: when the staged key is gone, Redis refuses it and
// nothing changed. A staged key of another length (it expired between two
// pieces, and an APPEND began it again) is expired, and -1 returned.
//
//	KEYS[1]  the lease
//	KEYS[2]  the checkpoint
//	KEYS[3]  the staged checkpoint
//	ARGV[1]  the lease's value
//	ARGV[2]  the checkpoint's length
var checkpointScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
if redis.call('STRLEN', KEYS[3]) ~= tonumber(ARGV[2]) then
	redis.call('PEXPIRE', KEYS[3], 1)
	return -1
end
redis.call('RENAME', KEYS[3], KEYS[2])
redis.call('PERSIST', KEYS[2])
return 1
`)

// trimScript trims the log below a stream id, if the lease is still
// ARGV[1]: with a limit, whole stream nodes of at most that many entries
// in all ("~"), else exactly. It returns the entries removed, or -1 when
// the lease is lost.
//
//	KEYS[1]  the lease
//	KEYS[2]  the log
//	ARGV[1]  the lease's value
//	ARGV[2]  the stream id to trim below
//	ARGV[3]  the most entries to remove, or 0 for an exact trim
var trimScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return -1
end
if ARGV[3] == '0' then
	return redis.call('XTRIM', KEYS[2], 'MINID', '=', ARGV[2])
end
return redis.call('XTRIM', KEYS[2], 'MINID', '~', ARGV[2], 'LIMIT', ARGV[3])
`)

// A checkpoint is staged, and the log trimmed below it, in pieces, a pause
// apart. Redis serves no one while it runs a command, and a command that
// carries a checkpoint of megabytes, or trims 30 s of log, held it for
// 10-20 ms. Measured once with a script (a node and its Redis on one
// core, an open loop at 26,000 req/s after 20 s of closed loops): the
// redirects' p99 was 144-193 ms with the checkpoints, 9 ms without them,
// and 60-95 ms with them written in pieces.
const (
	stageChunk = 256 << 10
	trimPiece  = 1000 // entries: at least stream-node-max-entries (100), or "~" removes nothing
	piecePause = time.Millisecond
)

// stagedTTL is how long a staged checkpoint outlives a WriteCheckpoint that
// did not put it in place (its lease was lost, or its connection broke
// between the two commands).
const stagedTTL = time.Minute

// AcquireLease takes the judge's lease of partition of campaign for holder,
// for ttl, when it is free, expired, or already held by holder (a holder
// that restarted, or whose previous acquisition timed out after it ran,
// need not wait for its own lease to expire). Each acquisition gets a new,
// larger fencing token and makes the previous Lease lost. When another
// holder has the lease the error is a *LeaseHeldError (ErrLeaseHeld).
//
// Holders must have distinct names: two judges under one name take the lease
// from each other.
func (s *Store) AcquireLease(ctx context.Context, campaign string, partition uint32, holder string, ttl time.Duration) (Lease, error) {
	start := time.Now()
	if holder == "" {
		return Lease{}, fmt.Errorf("cannot acquire the lease of partition %d of campaign %q: no holder", partition, campaign)
	}
	if ttl < time.Millisecond {
		return Lease{}, fmt.Errorf("cannot acquire the lease of partition %d of campaign %q: TTL %s is below 1ms", partition, campaign, ttl)
	}
	key, err := s.partitionKey(campaign, partition, "lease")
	if err != nil {
		return Lease{}, fmt.Errorf("cannot acquire the lease of partition %d: %w", partition, err)
	}
	nonce := strconv.FormatUint(rand.Uint64(), 16)
	res, err := acquireLeaseScript.Run(ctx, s.rdb, []string{key, key + ":token"}, holder, nonce, ttl.Milliseconds()).Slice()
	if err != nil {
		return Lease{}, fmt.Errorf("cannot acquire the lease %q for %q: %w", key, holder, storeErr(err))
	}
	if len(res) < 2 {
		return Lease{}, fmt.Errorf("cannot acquire the lease %q for %q: unexpected reply %v", key, holder, res)
	}
	ok, _ := res[0].(int64)
	value, _ := res[1].(string)
	token, curHolder, parsed := parseLease(value)
	if !parsed {
		return Lease{}, fmt.Errorf("cannot acquire the lease %q for %q: malformed lease %q", key, holder, value)
	}
	if ok != 1 {
		held := &LeaseHeldError{Holder: curHolder, Token: token}
		if len(res) == 3 {
			if ms, ok := res[2].(int64); ok && ms > 0 {
				held.TTL = time.Duration(ms) * time.Millisecond
			}
		}
		return Lease{}, fmt.Errorf("cannot acquire the lease %q for %q: %w", key, holder, held)
	}
	return Lease{
		Campaign:  campaign,
		Partition: partition,
		Holder:    holder,
		Token:     token,
		TTL:       ttl,
		Expires:   start.Add(ttl),
		value:     value,
	}, nil
}

// parseLease splits "<token>:<nonce>:<holder>".
func parseLease(v string) (token uint64, holder string, ok bool) {
	t, rest, ok1 := strings.Cut(v, ":")
	_, holder, ok2 := strings.Cut(rest, ":")
	token, err := strconv.ParseUint(t, 10, 64)
	return token, holder, ok1 && ok2 && err == nil
}

// RenewLease extends l by l.TTL from now, if it is still the partition's
// current lease; else it returns ErrLeaseLost (the lease expired, or was
// acquired again, by another holder or by the same). By the holder's clock
// a renewed lease lasts at least until RenewLease was called plus l.TTL.
func (s *Store) RenewLease(ctx context.Context, l Lease) error {
	key, err := s.leaseKey(l)
	if err != nil {
		return fmt.Errorf("cannot renew the lease of partition %d: %w", l.Partition, err)
	}
	ok, err := renewLeaseScript.Run(ctx, s.rdb, []string{key}, l.value, l.TTL.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("cannot renew the lease %q with token %d: %w", key, l.Token, storeErr(err))
	}
	if ok != 1 {
		return fmt.Errorf("cannot renew the lease %q with token %d: %w", key, l.Token, ErrLeaseLost)
	}
	return nil
}

// ReleaseLease gives l up, if it is still the partition's current lease,
// so that another holder may take it at once instead of when it expires.
// A lease lost already is no error.
func (s *Store) ReleaseLease(ctx context.Context, l Lease) error {
	key, err := s.leaseKey(l)
	if err != nil {
		return fmt.Errorf("cannot release the lease of partition %d: %w", l.Partition, err)
	}
	if err := releaseLeaseScript.Run(ctx, s.rdb, []string{key}, l.value).Err(); err != nil {
		return fmt.Errorf("cannot release the lease %q with token %d: %w", key, l.Token, storeErr(err))
	}
	return nil
}

// WriteCheckpoint stores checkpoint as the checkpoint of l's partition,
// in one atomic step that Redis refuses unless l is still the partition's
// current lease: then it returns ErrLeaseLost and changes nothing. Then it
// trims the log below the stream id trimBelow ("": no trim), each piece of
// the trim refused as well once l is lost; the trim is exact in the end,
// as TrimLog's: entries below trimBelow are removed, the entry trimBelow
// stays. A trim cut short leaves entries below the checkpoint, which no
// reader of it reads, for the next checkpoint to trim.
//
// The checkpoint goes to a staging key of its own (same hash tag,
// expiring), stageChunk bytes a command, and a script checks the lease and
// renames it into place, so the checkpoint is never copied through Lua.
// Calls with the same lease may run concurrently; the last to run wins.
func (s *Store) WriteCheckpoint(ctx context.Context, l Lease, checkpoint []byte, trimBelow string) error {
	key, err := s.leaseKey(l)
	if err != nil {
		return fmt.Errorf("cannot write the checkpoint of partition %d: %w", l.Partition, err)
	}
	if trimBelow != "" && !validStreamID(trimBelow) {
		return fmt.Errorf("cannot write the checkpoint of %q: invalid stream id %q to trim below", key, trimBelow)
	}
	tag := key[:len(key)-len("lease")]
	staged := tag + "checkpoint:staged:" + strconv.FormatUint(l.Token, 10) + ":" + strconv.FormatUint(rand.Uint64(), 16)
	keys := []string{key, tag + "checkpoint", staged}
	fail := func(err error) error {
		return fmt.Errorf("cannot write the checkpoint of %q with token %d: %w", key, l.Token, err)
	}
	// Every piece but the last alone, a pause apart; the last with the
	// script.
	stage := func(c interface {
		Do(context.Context, ...any) *redis.Cmd
	}, i int) *redis.Cmd {
		piece := checkpoint[i*stageChunk : min((i+1)*stageChunk, len(checkpoint))]
		if i == 0 {
			return c.Do(ctx, "set", staged, piece, "px", stagedTTL.Milliseconds())
		}
		return c.Do(ctx, "append", staged, piece)
	}
	last := max(len(checkpoint)-1, 0) / stageChunk
	for i := range last {
		if i > 0 {
			time.Sleep(piecePause)
		}
		if err := stage(s.rdb, i).Err(); err != nil {
			return fail(storeErr(err))
		}
	}
	pipe := s.rdb.Pipeline()
	set := stage(pipe, last)
	run := checkpointScript.EvalSha(ctx, pipe, keys, l.value, len(checkpoint))
	pipe.Exec(ctx) // errors are read per command below
	if err := set.Err(); err != nil {
		return fail(storeErr(err))
	}
	if redis.HasErrorPrefix(run.Err(), "NOSCRIPT") {
		// A script does not fall back to EVAL in a pipeline. The staged
		// checkpoint is there still.
		run = checkpointScript.Run(ctx, s.rdb, keys, l.value, len(checkpoint))
	}
	switch ok, err := run.Int64(); {
	case err != nil:
		return fail(storeErr(err))
	case ok == 0:
		return fail(ErrLeaseLost)
	case ok != 1:
		return fail(fmt.Errorf("%w: the staged checkpoint expired before it was whole", counter.ErrUnavailable))
	}
	if trimBelow == "" {
		return nil
	}
	keys = []string{key, tag + "log"}
	for limit := trimPiece; ; {
		n, err := trimScript.Run(ctx, s.rdb, keys, l.value, trimBelow, limit).Int64()
		switch {
		case err != nil:
			return fmt.Errorf("cannot trim the log below the checkpoint of %q with token %d: %w", key, l.Token, storeErr(err))
		case n < 0:
			return fmt.Errorf("cannot trim the log below the checkpoint of %q with token %d: %w", key, l.Token, ErrLeaseLost)
		case limit == 0:
			return nil
		case n == 0:
			limit = 0 // what is left is within one node
		}
		time.Sleep(piecePause)
	}
}

// ReadCheckpoint returns the checkpoint of partition of campaign, or nil
// when none was written.
func (s *Store) ReadCheckpoint(ctx context.Context, campaign string, partition uint32) ([]byte, error) {
	key, err := s.partitionKey(campaign, partition, "checkpoint")
	if err != nil {
		return nil, fmt.Errorf("cannot read the checkpoint of partition %d: %w", partition, err)
	}
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the checkpoint %q: %w", key, storeErr(err))
	}
	return b, nil
}

func (s *Store) leaseKey(l Lease) (string, error) {
	if l.value == "" {
		return "", fmt.Errorf("the lease of campaign %q was not acquired", l.Campaign)
	}
	return s.partitionKey(l.Campaign, l.Partition, "lease")
}

// validStreamID reports whether id is "<ms>" or "<ms>-<seq>", both
// unsigned 64-bit decimals, as XTRIM MINID takes: checked before a
// checkpoint's script, which could not undo its write of the checkpoint
// when Redis then refused the id.
func validStreamID(id string) bool {
	ms, seq, hasSeq := strings.Cut(id, "-")
	if _, err := strconv.ParseUint(ms, 10, 64); err != nil {
		return false
	}
	if hasSeq {
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			return false
		}
	}
	return true
}

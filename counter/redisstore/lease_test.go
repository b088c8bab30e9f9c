package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/counter/storetest"
)

func (e *env) acquire(t *testing.T, campaign string, partition uint32, holder string, ttl time.Duration) Lease {
	t.Helper()
	l, err := e.s.AcquireLease(context.Background(), campaign, partition, holder, ttl)
	if err != nil {
		t.Fatalf("cannot acquire the lease of %q/%d for %q: %s", campaign, partition, holder, err)
	}
	if l.Holder != holder || l.Campaign != campaign || l.Partition != partition || l.TTL != ttl {
		t.Fatalf("unexpected lease; got %+v; want %q/%d held by %q for %s", l, campaign, partition, holder, ttl)
	}
	return l
}

// appendN appends n batches to partition 0 of c1, one call each, and
// returns their stream ids.
func (e *env) appendN(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		if err := e.s.AppendLog(context.Background(), []LogAppend{{Campaign: "c1", BatchID: uint64(i), Payload: payload(uint64(i), 3)}}); err != nil {
			t.Fatalf("cannot append: %s", err)
		}
	}
	all := e.readLog(t, "c1", 0, "", 1000)
	for i, en := range all[len(all)-n:] {
		ids[i] = en.ID
	}
	return ids
}

// expire ends the lease of partition 0 of c1 now, as time passing would:
// an expiry time in the past makes Redis delete the key at once.
func (e *env) expire(t *testing.T) {
	t.Helper()
	key := "cg:{c1:0}:lease"
	if n, err := e.rdb.PExpireAt(context.Background(), key, time.UnixMilli(1)).Result(); err != nil || !n {
		t.Fatalf("cannot expire %q: %v, %v", key, n, err)
	}
}

func checkHeld(t *testing.T, err error, holder string, token uint64, maxTTL time.Duration) {
	t.Helper()
	var held *LeaseHeldError
	if !errors.Is(err, ErrLeaseHeld) || !errors.As(err, &held) {
		t.Fatalf("unexpected error; got %v; want ErrLeaseHeld", err)
	}
	if held.Holder != holder || held.Token != token || held.TTL <= 0 || held.TTL > maxTTL {
		t.Fatalf("unexpected lease held; got %+v; want held by %q with token %d for at most %s", held, holder, token, maxTTL)
	}
}

func checkLost(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("unexpected error of %s; got %v; want ErrLeaseLost", what, err)
	}
}

func (e *env) checkCheckpoint(t *testing.T, want []byte) {
	t.Helper()
	got, err := e.s.ReadCheckpoint(context.Background(), "c1", 0)
	if err != nil {
		t.Fatalf("cannot read checkpoint: %s", err)
	}
	if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		t.Fatalf("unexpected checkpoint; got %q; want %q", got, want)
	}
}

func TestLeaseAcquireHeldExpireTakeover(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	start := time.Now()
	a := e.acquire(t, "c1", 0, "node-a", time.Minute)
	if a.Token != 1 || a.Expires.Before(start.Add(time.Minute)) || a.Expires.After(time.Now().Add(time.Minute)) {
		t.Fatalf("unexpected first lease; got token %d expiring %s; want token 1 expiring a minute from the call", a.Token, a.Expires)
	}
	_, err := e.s.AcquireLease(ctx, "c1", 0, "node-b", time.Minute)
	checkHeld(t, err, "node-a", 1, time.Minute)
	// Other partitions are leases of their own.
	if b := e.acquire(t, "c1", 1, "node-b", time.Minute); b.Token != 1 {
		t.Fatalf("unexpected token of another partition; got %d; want 1", b.Token)
	}

	// Renewal extends the lease.
	if err := e.rdb.PExpire(ctx, "cg:{c1:0}:lease", time.Second).Err(); err != nil {
		t.Fatalf("cannot shorten the lease: %s", err)
	}
	if err := e.s.RenewLease(ctx, a); err != nil {
		t.Fatalf("cannot renew: %s", err)
	}
	if ttl, err := e.rdb.PTTL(ctx, "cg:{c1:0}:lease").Result(); err != nil || ttl < 59*time.Second {
		t.Fatalf("unexpected TTL of the renewed lease; got %s, %v; want about a minute", ttl, err)
	}

	// The holder acquires again: a new token, and the old lease is lost.
	a2 := e.acquire(t, "c1", 0, "node-a", time.Minute)
	if a2.Token != 2 {
		t.Fatalf("unexpected token of the second acquisition; got %d; want 2", a2.Token)
	}
	checkLost(t, "RenewLease of the previous acquisition", e.s.RenewLease(ctx, a))
	checkLost(t, "WriteCheckpoint of the previous acquisition", e.s.WriteCheckpoint(ctx, a, []byte("old"), ""))
	e.checkCheckpoint(t, nil)

	// Expired: lost, though nobody took it, and free for another.
	e.expire(t)
	checkLost(t, "RenewLease of an expired lease", e.s.RenewLease(ctx, a2))
	b := e.acquire(t, "c1", 0, "node-b", 30*time.Second)
	if b.Token != 3 {
		t.Fatalf("unexpected token of the takeover; got %d; want 3", b.Token)
	}
	_, err = e.s.AcquireLease(ctx, "c1", 0, "node-a", time.Minute)
	checkHeld(t, err, "node-b", 3, 30*time.Second)
	checkLost(t, "RenewLease of the lease taken over", e.s.RenewLease(ctx, a2))
	if err := e.s.RenewLease(ctx, b); err != nil {
		t.Fatalf("cannot renew the new lease: %s", err)
	}
	if err := e.s.WriteCheckpoint(ctx, b, []byte("b1"), ""); err != nil {
		t.Fatalf("cannot write checkpoint: %s", err)
	}
	e.checkCheckpoint(t, []byte("b1"))
}

// TestCheckpointStaleHolder has a judge write a checkpoint after its lease
// was taken over: Redis refuses it, keeps the new holder's checkpoint, and
// trims nothing.
func TestCheckpointStaleHolder(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	ids := e.appendN(t, 6)
	e.checkCheckpoint(t, nil)

	a := e.acquire(t, "c1", 0, "node-a", time.Minute)
	if err := e.s.WriteCheckpoint(ctx, a, []byte("a@1"), ids[1]); err != nil {
		t.Fatalf("cannot write checkpoint: %s", err)
	}
	e.checkCheckpoint(t, []byte("a@1"))
	checkLog(t, "the log after a's checkpoint", e.readLog(t, "c1", 0, "", 10), 1, 2, 3, 4, 5)

	// node-a stalls (a GC pause, a partition) past its lease; node-b takes
	// over from a's checkpoint, judges on and checkpoints.
	e.expire(t)
	b := e.acquire(t, "c1", 0, "node-b", time.Minute)
	if b.Token <= a.Token {
		t.Fatalf("unexpected token of the takeover; got %d; want more than %d", b.Token, a.Token)
	}
	if err := e.s.WriteCheckpoint(ctx, b, []byte("b@2"), ids[2]); err != nil {
		t.Fatalf("cannot write checkpoint: %s", err)
	}
	// node-a wakes up and writes what it judged meanwhile.
	checkLost(t, "WriteCheckpoint of the stale holder", e.s.WriteCheckpoint(ctx, a, []byte("a@4"), ids[4]))
	checkLost(t, "WriteCheckpoint of the stale holder without trim", e.s.WriteCheckpoint(ctx, a, []byte("a@4"), ""))
	checkLost(t, "RenewLease of the stale holder", e.s.RenewLease(ctx, a))
	e.checkCheckpoint(t, []byte("b@2"))
	checkLog(t, "the log after the refused checkpoint", e.readLog(t, "c1", 0, "", 10), 2, 3, 4, 5)

	// What the refused writes staged expires; nothing else was left.
	keys, err := e.rdb.Keys(ctx, "cg:{c1:0}:checkpoint:*").Result()
	if err != nil {
		t.Fatalf("cannot list keys: %s", err)
	}
	if len(keys) != 2 {
		t.Fatalf("unexpected staged checkpoints; got %q; want the 2 refused", keys)
	}
	for _, k := range keys {
		if ttl, err := e.rdb.TTL(ctx, k).Result(); err != nil || ttl <= 0 || ttl > stagedTTL {
			t.Fatalf("unexpected TTL of staged checkpoint %q; got %s, %v; want at most %s", k, ttl, err, stagedTTL)
		}
	}
	if ttl, err := e.rdb.TTL(ctx, "cg:{c1:0}:checkpoint").Result(); err != nil || ttl != -1 {
		t.Fatalf("unexpected TTL of the checkpoint; got %s, %v; want none (-1)", ttl, err)
	}
	if err := e.s.WriteCheckpoint(ctx, b, []byte("b@5"), ids[5]); err != nil {
		t.Fatalf("cannot write checkpoint: %s", err)
	}
	e.checkCheckpoint(t, []byte("b@5"))
	checkLog(t, "the log after b's second checkpoint", e.readLog(t, "c1", 0, "", 10), 5)
	// An empty checkpoint is a checkpoint, not none.
	if err := e.s.WriteCheckpoint(ctx, b, []byte{}, ""); err != nil {
		t.Fatalf("cannot write checkpoint: %s", err)
	}
	e.checkCheckpoint(t, []byte{})
}

// TestCheckpointInPieces writes a checkpoint of several stageChunk pieces
// and trims a log of several trimPiece pieces below it: the checkpoint reads
// back whole and the log starts exactly at the entry trimmed below. A
// holder whose lease was taken over meanwhile gets its pieces refused.
func TestCheckpointInPieces(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	const entries, below = 3*trimPiece + 50, 3*trimPiece - 70
	appends := make([]LogAppend, entries)
	for i := range appends {
		appends[i] = LogAppend{Campaign: "c1", BatchID: uint64(i), Payload: payload(uint64(i), 3)}
	}
	if err := e.s.AppendLog(ctx, appends); err != nil {
		t.Fatalf("cannot append: %s", err)
	}
	cp := make([]byte, 3*stageChunk+17)
	for i := range cp {
		cp[i] = byte(i * 7)
	}
	a := e.acquire(t, "c1", 0, "node-a", time.Minute)
	if err := e.s.WriteCheckpoint(ctx, a, cp, appends[below].ID); err != nil {
		t.Fatalf("cannot write checkpoint: %s", err)
	}
	e.checkCheckpoint(t, cp)
	log := e.rdb.XRange(ctx, "cg:{c1:0}:log", "-", "+").Val()
	if len(log) != entries-below || log[0].ID != appends[below].ID {
		t.Fatalf("unexpected log after the checkpoint; got %d entries; want %d from %s", len(log), entries-below, appends[below].ID)
	}

	e.expire(t)
	e.acquire(t, "c1", 0, "node-b", time.Minute)
	checkLost(t, "WriteCheckpoint of the stale holder", e.s.WriteCheckpoint(ctx, a, cp[1:], appends[entries-1].ID))
	e.checkCheckpoint(t, cp)
	if n := e.rdb.XLen(ctx, "cg:{c1:0}:log").Val(); n != entries-below {
		t.Fatalf("unexpected log after the refused checkpoint; got %d entries; want %d", n, entries-below)
	}
}

// TestCheckpointWithoutStaged runs the checkpoint's script when its staged
// checkpoint is missing (its SET failed, or it expired) or partial (it
// expired, and an APPEND of a later piece began it again): the script
// refuses it, expires what was staged, and neither the checkpoint nor the
// log changed.
func TestCheckpointWithoutStaged(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	ids := e.appendN(t, 3)
	l := e.acquire(t, "c1", 0, "node-a", time.Minute)
	if err := e.s.WriteCheckpoint(ctx, l, []byte("cp"), ids[1]); err != nil {
		t.Fatalf("cannot write checkpoint: %s", err)
	}
	tag := "cg:{c1:0}:"
	staged := tag + "checkpoint:staged:partial"
	keys := []string{tag + "lease", tag + "checkpoint", staged}
	if n, err := checkpointScript.Run(ctx, e.s.rdb, keys, l.value, 2).Int64(); err != nil || n != -1 {
		t.Fatalf("unexpected result of the checkpoint's script without a staged checkpoint; got %d, %v; want -1", n, err)
	}
	if err := e.rdb.Append(ctx, staged, "second half").Err(); err != nil {
		t.Fatalf("cannot stage: %s", err)
	}
	if n, err := checkpointScript.Run(ctx, e.s.rdb, keys, l.value, 20).Int64(); err != nil || n != -1 {
		t.Fatalf("unexpected result of the checkpoint's script with a partial staged checkpoint; got %d, %v; want -1", n, err)
	}
	time.Sleep(10 * time.Millisecond) // it expires in 1 ms
	if n := e.rdb.Exists(ctx, staged).Val(); n != 0 {
		t.Fatalf("the partial staged checkpoint is left")
	}
	e.checkCheckpoint(t, []byte("cp"))
	checkLog(t, "the log", e.readLog(t, "c1", 0, "", 10), 1, 2)
}

// TestLeaseFencingAfterFlush has the token counter reset under a holder,
// as a FLUSHALL or a failover to a replica that missed its INCR would: the
// next holder gets the same token, and the old one is fenced off still.
func TestLeaseFencingAfterFlush(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	a := e.acquire(t, "c1", 0, "node-a", time.Minute)
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatalf("cannot flush: %s", err)
	}
	for _, holder := range []string{"node-b", "node-a"} {
		b := e.acquire(t, "c1", 0, holder, time.Minute)
		if b.Token != a.Token {
			t.Fatalf("unexpected token after FLUSHALL; got %d; want %d, as the old lease's", b.Token, a.Token)
		}
		checkLost(t, "RenewLease of the lease before FLUSHALL", e.s.RenewLease(ctx, a))
		checkLost(t, "WriteCheckpoint of the lease before FLUSHALL", e.s.WriteCheckpoint(ctx, a, []byte("a"), ""))
		if err := e.rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatalf("cannot flush: %s", err)
		}
	}
}

func TestLeaseConcurrentAcquire(t *testing.T) {
	e := newEnv(t, Options{})
	const n = 8
	leases := make([]Lease, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			leases[i], errs[i] = e.s.AcquireLease(context.Background(), "c1", 0, fmt.Sprintf("node-%d", i), time.Minute)
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("unexpected second holder %d of one lease; %d has it", i, winner)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("nobody acquired the lease: %v", errs)
	}
	for i, err := range errs {
		if i != winner {
			checkHeld(t, err, leases[winner].Holder, 1, time.Minute)
		}
	}
}

func TestLeaseScriptsAfterScriptFlush(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	ids := e.appendN(t, 3)
	flush := func() {
		t.Helper()
		if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("cannot flush scripts: %s", err)
		}
	}
	flush()
	l := e.acquire(t, "c1", 0, "node-a", time.Minute)
	flush()
	if err := e.s.RenewLease(ctx, l); err != nil {
		t.Fatalf("cannot renew after SCRIPT FLUSH: %s", err)
	}
	flush()
	if err := e.s.WriteCheckpoint(ctx, l, []byte("cp"), ids[2]); err != nil {
		t.Fatalf("cannot write checkpoint after SCRIPT FLUSH: %s", err)
	}
	e.checkCheckpoint(t, []byte("cp"))
	checkLog(t, "the log", e.readLog(t, "c1", 0, "", 10), 2)
}

func TestLeaseInvalidArguments(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	if _, err := e.s.AcquireLease(ctx, "c1", 0, "", time.Minute); err == nil {
		t.Fatalf("unexpected success of AcquireLease with no holder")
	}
	if _, err := e.s.AcquireLease(ctx, "c1", 0, "a", time.Microsecond); err == nil {
		t.Fatalf("unexpected success of AcquireLease for 1us")
	}
	if err := e.s.RenewLease(ctx, Lease{Campaign: "c1", Holder: "a", Token: 1, TTL: time.Minute}); err == nil {
		t.Fatalf("unexpected success of RenewLease of a lease not acquired")
	}
	if err := e.s.WriteCheckpoint(ctx, Lease{Campaign: "c1", Holder: "a", Token: 1}, []byte("x"), ""); err == nil {
		t.Fatalf("unexpected success of WriteCheckpoint with a lease not acquired")
	}
	l := e.acquire(t, "c1", 0, "a", time.Minute)
	for _, below := range []string{"x", "1-", "-1", "1-2-3", "+", "0x10", " 1"} {
		if err := e.s.WriteCheckpoint(ctx, l, []byte("x"), below); err == nil {
			t.Fatalf("unexpected success of WriteCheckpoint trimming below %q", below)
		}
	}
	e.checkCheckpoint(t, nil)
	// A holder name may hold the separator.
	m := e.acquire(t, "c1", 1, "host:1234:pid", time.Minute)
	_, err := e.s.AcquireLease(ctx, "c1", 1, "host", time.Minute)
	checkHeld(t, err, "host:1234:pid", 1, time.Minute)
	if err := e.s.RenewLease(ctx, m); err != nil {
		t.Fatalf("cannot renew: %s", err)
	}
}

func TestLeaseUnavailable(t *testing.T) {
	ms := 300 * time.Millisecond
	e := newEnv(t, Options{DialTimeout: ms, ReadTimeout: ms, WriteTimeout: ms})
	ctx := context.Background()
	l := e.acquire(t, "c1", 0, "a", time.Minute)
	e.srv.Stop()
	f := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, counter.ErrUnavailable) {
			t.Fatalf("unexpected error of %s on a stopped server; got %v; want ErrUnavailable", what, err)
		}
	}
	// A deadline that ends first is unavailability too (and keeps this test
	// short: a refused connection is dialed again a few times).
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := e.s.AcquireLease(short, "c1", 0, "a", time.Minute)
	f("AcquireLease", err)
	f("RenewLease", e.s.RenewLease(short, l))
	f("WriteCheckpoint", e.s.WriteCheckpoint(short, l, []byte("x"), ""))
	_, err = e.s.ReadCheckpoint(short, "c1", 0)
	f("ReadCheckpoint", err)
	// Back (the append-only file kept the lease): the lease goes on.
	e.srv.Restart(t)
	if err := e.s.RenewLease(ctx, l); err != nil {
		t.Fatalf("cannot renew after restart: %s", err)
	}
}

// logACL are the commands of the ACL line of the README ("Running on
// Redis") as it was before the partition logs, and logACLAdditions what
// the logs, leases and checkpoints add to it.
const (
	logACLBase      = "+hello +ping +info +select +get +set +exists +incr +hget +hset +hsetnx +hgetall +hincrby +multi +exec +script|load +evalsha +eval +bitfield +setrange +expireat"
	logACLAdditions = "+xadd +xrange +xtrim +pttl +pexpire +rename +persist +append +strlen"
)

// TestLogLeaseACL runs every operation of the partition logs, leases and
// checkpoints, including the scripts' fallback to EVAL, as a user allowed
// only the README's commands plus logACLAdditions, and checks that Redis
// refused nothing.
func TestLogLeaseACL(t *testing.T) {
	args := []string{"--user", "edge", "on", ">secret", "~cg:*", "resetchannels", "-@all"}
	args = append(args, strings.Fields(logACLBase+" "+logACLAdditions)...)
	srv := redistest.StartWith(t, redistest.Options{Args: args})
	ctx := context.Background()
	s, err := Open(ctx, Options{URL: srv.UserURL("edge", "secret", 0), Params: storetest.Params(t)})
	if err != nil {
		t.Fatalf("cannot open store as the ACL user: %s", err)
	}
	defer s.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	e := &env{srv: srv, s: s, rdb: admin}

	for range 2 { // the second time after SCRIPT FLUSH: EVAL
		ids := e.appendN(t, 3)
		if err := s.TrimLog(ctx, "c1", 0, ids[0]); err != nil {
			t.Fatalf("cannot trim: %s", err)
		}
		l := e.acquire(t, "c1", 0, "a", time.Minute)
		_, err := s.AcquireLease(ctx, "c1", 0, "b", time.Minute)
		checkHeld(t, err, "a", l.Token, time.Minute)
		if err := s.RenewLease(ctx, l); err != nil {
			t.Fatalf("cannot renew: %s", err)
		}
		cp := bytes.Repeat([]byte("cp"), stageChunk) // staged with SET, APPEND, STRLEN
		if err := s.WriteCheckpoint(ctx, l, cp, ids[2]); err != nil {
			t.Fatalf("cannot write checkpoint: %s", err)
		}
		e.checkCheckpoint(t, cp)
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("cannot flush scripts: %s", err)
		}
	}
	log, err := admin.Do(ctx, "ACL", "LOG").Slice()
	if err != nil {
		t.Fatalf("cannot read ACL LOG: %s", err)
	}
	if len(log) != 0 {
		t.Fatalf("unexpected ACL LOG entries: %v", log)
	}
}

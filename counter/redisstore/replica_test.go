package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/counter/storetest"
)

// TestReplicaAcks: with ReplicaAcks, an append counts only once a replica
// has it. While the replica is stopped, appends fail after ReplicaTimeout
// (the master has them, the replica not: what a failover would lose) and
// Ping fails, and appended again once it is back (as the spool does), each
// visitor is counted once.
func TestReplicaAcks(t *testing.T) {
	master := redistest.Start(t)
	replica, rr := startReplica(t, master)

	ctx := context.Background()
	const timeout = 300 * time.Millisecond
	s, err := Open(ctx, Options{URL: master.URL(0), Params: storetest.Params(t), Judge: true, ReplicaAcks: 1, ReplicaTimeout: timeout})
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.PutCampaign(ctx, counter.Campaign{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	visits := func(from, to int) []counter.Visit { return aliceVisits(from, to, now) }
	log := s.prefix + ":{c1:0}:log"
	commit := func(vs []counter.Visit) ([]counter.Reason, error) {
		out := make([]counter.Reason, len(vs))
		return out, s.Commit(ctx, vs, out)
	}

	if out, err := commit(visits(0, 10)); err != nil || out[0] != counter.Pending {
		t.Fatalf("unexpected commit with the replica up: %v, %v", out, err)
	}
	if n := rr.XLen(ctx, log).Val(); n != 1 {
		t.Fatalf("the replica has %d appends once the commit returned; want 1", n)
	}

	if err := s.Ping(ctx); err != nil {
		t.Fatalf("unexpected Ping with the replica in sync: %v", err)
	}
	replica.Pause(t)
	// Not ready once the replica stops acknowledging.
	waitPing(t, s, "has 0 replicas in sync, and --redis-replica-acks asks for 1")
	before := replicaTimeouts.Get()
	start := time.Now()
	out, err := commit(visits(10, 20))
	took := time.Since(start)
	if err == nil || !errors.Is(err, counter.ErrUnavailable) || out[0] != counter.Uncounted {
		t.Fatalf("unexpected commit with the replica stopped: %v, %v; want Uncounted and ErrUnavailable", out, err)
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Fatalf("a commit the replica did not acknowledge returned after %s; want about %s", took, timeout)
	}
	if got := replicaTimeouts.Get() - before; got != 1 {
		t.Fatalf("clickgate_redis_replica_timeouts_total rose by %d; want 1", got)
	}
	replica.Resume(t)
	waitPing(t, s, "")
	if out, err := commit(visits(10, 20)); err != nil || out[0] != counter.Pending {
		t.Fatalf("unexpected commit again with the replica back: %v, %v", out, err)
	}
	mr := redis.NewClient(&redis.Options{Addr: master.Addr()})
	t.Cleanup(func() { mr.Close() })
	if n := mr.XLen(ctx, log).Val(); n != 3 {
		t.Fatalf("the master has %d appends; want 3 (the unacknowledged one stays)", n)
	}
	days, err := s.Stats(ctx, "c1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := counter.Total(days); got[counter.Qualified] != 20 || got.Clicks() != 20 {
		t.Fatalf("unexpected counts; got %+v; want 20 qualified: the batch appended twice judged once", got)
	}
}

// waitPing waits up to 10s until s's Ping fails with want, or passes
// when want is empty.
func waitPing(t *testing.T, s *Store, want string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		err = s.Ping(context.Background())
		if want == "" && err == nil || want != "" && err != nil && strings.Contains(err.Error(), want) {
			return
		}
	}
	t.Fatalf("unexpected Ping after 10s; got %v; want %q", err, want)
}

// TestReplicaFailover: a replica falls behind (killed), its master
// acknowledges an append, dies, and the replica, restarted, is promoted. Without
// ReplicaAcks the acknowledged visits are gone: what asynchronous
// replication loses. With it the append was refused, so the visits were
// still the edge's to append again (its spool), and on the promoted
// replica every visitor is counted once.
func TestReplicaFailover(t *testing.T) {
	for _, acks := range []int{0, 1} {
		t.Run(fmt.Sprintf("acks=%d", acks), func(t *testing.T) {
			master := redistest.Start(t)
			// appendfsync always: what the replica has when it is killed
			// is what it took from the stream.
			replica, rr := startReplica(t, master, "--appendfsync", "always")
			waitAOF(t, rr)
			ctx := context.Background()
			open := func(url string) *Store {
				// One holder: the node's judges take their leases back at
				// once on the promoted replica.
				s, err := Open(ctx, Options{URL: url, Params: storetest.Params(t), Judge: true, Holder: "edge",
					ReplicaAcks: acks, ReplicaTimeout: 200 * time.Millisecond})
				if err != nil {
					t.Fatalf("cannot open store: %s", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			s := open(master.URL(0))
			if err := s.PutCampaign(ctx, counter.Campaign{ID: "c1"}); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			first, second := aliceVisits(0, 10, now), aliceVisits(10, 20, now)
			if err := s.Commit(ctx, first, make([]counter.Reason, len(first))); err != nil {
				t.Fatalf("cannot commit the first batch: %s", err)
			}
			for deadline := time.Now().Add(5 * time.Second); rr.XLen(ctx, s.prefix+":{c1:0}:log").Val() != 1; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the replica did not take the first batch within 5s")
				}
			}
			replica.Stop() // SIGKILL: what it has is in its append-only file
			secondErr := s.Commit(ctx, second, make([]counter.Reason, len(second)))
			master.Stop()
			replica.Restart(t)
			if err := rr.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
				t.Fatalf("cannot promote the replica: %s", err)
			}
			s.Close()
			promoted := open(replica.URL(0))
			var pending []counter.Visit // what the edge's spool would append again
			switch {
			case acks == 0 && secondErr != nil:
				t.Fatalf("without replica acks the master refused the append: %s", secondErr)
			case acks > 0 && secondErr == nil:
				t.Fatalf("with replica acks the master acknowledged an append its replica did not have")
			case acks > 0:
				pending = second
			}
			if len(pending) > 0 {
				// The promoted replica takes appends once it has a
				// replica of its own.
				startReplica(t, replica)
				// As the spool's replayer does: again until it takes them.
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					err := promoted.Commit(ctx, pending, make([]counter.Reason, len(pending)))
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("cannot append the spooled visits to the promoted replica: %s", err)
					}
				}
			}
			want := int64(20) // every visitor of both batches
			if acks == 0 {
				want = 10 // the second batch, acknowledged, was lost
			}
			var got counter.Counts
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				days, err := promoted.Stats(ctx, "c1", "alice")
				if err != nil {
					t.Fatal(err)
				}
				if got = counter.Total(days); got[counter.Qualified] >= want {
					break
				}
			}
			time.Sleep(300 * time.Millisecond) // nothing more comes
			days, err := promoted.Stats(ctx, "c1", "alice")
			if err != nil {
				t.Fatal(err)
			}
			if got = counter.Total(days); got[counter.Qualified] != want || got.Clicks() != want {
				t.Fatalf("after the failover: %+v; want %d qualified and nothing else", got, want)
			}
		})
	}
}

// TestReplicaAcksCluster: on a cluster, each master that took appends
// waits for its own replica, and a commit over several masters succeeds.
func TestReplicaAcksCluster(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Replicas: 1})
	for _, n := range c.Replicas() {
		rr := redis.NewClient(&redis.Options{Addr: n.Addr()})
		waitReplicaUp(t, rr)
		rr.Close()
	}
	ctx := context.Background()
	s, err := Open(ctx, Options{URL: c.URL(), Cluster: true, Params: storetest.Params(t), Partitions: 6, ReplicaAcks: 1, ReplicaTimeout: time.Second})
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	t.Cleanup(func() { s.Close() })
	waitPing(t, s, "") // every master has its replica in sync
	now := time.Now()
	var vs []counter.Visit
	for i := range 60 {
		v := personVisit("c1", "creator"+string(rune('a'+i%26)), i, now)
		v.Nonce[0] = byte(i)
		vs = append(vs, v)
	}
	out := make([]counter.Reason, len(vs))
	if err := s.Commit(ctx, vs, out); err != nil {
		t.Fatalf("cannot commit over the cluster's masters with a replica ack each: %s", err)
	}
	masters := map[string]bool{}
	for p := range uint32(6) {
		key := s.prefix + ":{c1:" + string(rune('0'+p)) + "}:log"
		node, err := s.rdb.(*redis.ClusterClient).MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if s.rdb.Exists(ctx, key).Val() == 1 {
			masters[node.Options().Addr] = true
		}
	}
	if len(masters) < 2 {
		t.Fatalf("the visits went to %d masters; the test wants several", len(masters))
	}

	// One master's replica stopped: that master's appends fail, the
	// others' count.
	r := c.Replicas()[0]
	r.Pause(t)
	defer r.Resume(t)
	for i := range vs {
		vs[i].Nonce[1] = 1
	}
	err = s.Commit(ctx, vs, out)
	pending, uncounted := 0, 0
	for _, r := range out {
		switch r {
		case counter.Pending:
			pending++
		case counter.Uncounted:
			uncounted++
		}
	}
	if !errors.Is(err, counter.ErrUnavailable) || pending == 0 || uncounted == 0 {
		t.Fatalf("with one replica stopped: %d visits pending, %d uncounted, %v; want some of each and ErrUnavailable", pending, uncounted, err)
	}
}

// aliceVisits returns the visits of people from to to-1 to alice of
// campaign c1 at now, each a click of its own (its nonce).
func aliceVisits(from, to int, now time.Time) []counter.Visit {
	var vs []counter.Visit
	for i := from; i < to; i++ {
		v := personVisit("c1", "alice", i, now)
		v.Nonce[0] = byte(i)
		vs = append(vs, v)
	}
	return vs
}

// startReplica starts a replica of master, with more redis-server args,
// and returns it once it is in sync, with a client of it.
func startReplica(t *testing.T, master *redistest.Server, args ...string) (*redistest.Server, *redis.Client) {
	t.Helper()
	_, port, _ := net.SplitHostPort(master.Addr())
	replica := redistest.StartWith(t, redistest.Options{Args: append([]string{"--replicaof", "127.0.0.1", port}, args...)})
	rr := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { rr.Close() })
	waitReplicaUp(t, rr)
	return replica, rr
}

// waitReplicaUp waits until the replica rr is in sync with its master.
func waitReplicaUp(t *testing.T, rr *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if info, _ := rr.Info(context.Background(), "replication").Result(); strings.Contains(info, "master_link_status:up") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the replica did not connect to its master within 10s")
}

// waitAOF waits until rr writes its append-only file: a replica holds back
// what it replicates until the rewrite that follows its first sync is done,
// and a kill before then loses it.
func waitAOF(t *testing.T, rr *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, _ := rr.Info(context.Background(), "persistence").Result()
		if strings.Contains(info, "aof_enabled:1") && strings.Contains(info, "aof_rewrite_in_progress:0") &&
			strings.Contains(info, "aof_rewrite_scheduled:0") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the replica did not write its append-only file within 10s")
}

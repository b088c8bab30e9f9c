package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrEvicting is matched by the errors of Open and Ping for a Redis whose
// maxmemory-policy evicts any key when its memory is full (allkeys-lru,
// allkeys-lfu, allkeys-random): the visit logs, the judges' checkpoints
// and the catalog would go with the rest, visits lost without a word and
// counts reset. noeviction refuses writes instead, which clickgate spools
// and retries. The volatile-* policies evict only keys with a time to
// live, and clickgate's are leases and staged checkpoints, which it is
// built to lose.
var ErrEvicting = errors.New("redis may evict any key when its memory is full")

// Ping checks that Redis answers within ctx, every master of a cluster,
// that none may evict clickgate's keys (ErrEvicting), that none is full,
// refusing writes, and, with ReplicaAcks, that each has that many replicas
// in sync. It is what /readyz asks; a frozen Redis fails it at ctx's
// deadline.
func (s *Store) Ping(ctx context.Context) error {
	return s.eachMaster(ctx, func(addr, info string) error {
		if err := checkPolicy(addr, info); err != nil {
			return err
		}
		if err := checkFull(addr, info); err != nil {
			return err
		}
		return checkReplicas(addr, info, s.replicaAcks)
	})
}

// eachMaster reads INFO memory, replication and persistence of the server,
// or of every master of a cluster, and calls check with its address and
// the reply.
func (s *Store) eachMaster(ctx context.Context, check func(addr, info string) error) error {
	one := func(ctx context.Context, c redis.Cmdable, addr string) error {
		info, err := c.Info(ctx, "memory", "replication", "persistence").Result()
		if err != nil {
			hint := ""
			if redis.HasErrorPrefix(err, "NOPERM") {
				hint = " (the ACL needs +info)"
			}
			return fmt.Errorf("cannot read INFO memory of redis at %q%s: %w", addr, hint, storeErr(err))
		}
		return check(addr, info)
	}
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		return storeErr(c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return one(ctx, m, m.Options().Addr)
		}))
	}
	return one(ctx, s.rdb, s.addr)
}

// checkPolicy refuses a maxmemory-policy that evicts any key.
func checkPolicy(addr, info string) error {
	policy, ok := infoField(info, "maxmemory_policy")
	if !ok {
		return fmt.Errorf("cannot read the maxmemory-policy of redis at %q: INFO memory has no maxmemory_policy", addr)
	}
	if strings.HasPrefix(policy, "allkeys-") {
		return fmt.Errorf("%w: redis at %q has maxmemory-policy %s; set it to noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf)",
			ErrEvicting, addr, policy)
	}
	return nil
}

// checkFull fails while a Redis refuses writes: as Redis counts, its
// memory less what it does not count for eviction (replicas' and the
// append-only file's buffers) over its maxmemory. Redis evicts what its
// policy lets it before every command, INFO included, so over it still
// means that a volatile-* policy found no key with a time to live left.
func checkFull(addr, info string) error {
	var n [3]int64
	for i, name := range []string{"used_memory", "mem_not_counted_for_evict", "maxmemory"} {
		v, _ := infoField(info, name)
		n[i], _ = strconv.ParseInt(v, 10, 64)
	}
	if used, most := n[0]-n[1], n[2]; most > 0 && used > most {
		return fmt.Errorf("redis at %q is full: %d bytes used of its maxmemory %d; it refuses writes, and visits are spooled", addr, used, most)
	}
	return nil
}

// replicaMaxLag is how long ago, at most, a replica in sync acknowledged
// what it has: replicas acknowledge every second, and Redis counts whole
// seconds.
const replicaMaxLag = 2

// checkReplicas fails while a master has fewer than acks replicas in
// sync (online, and acknowledging within replicaMaxLag seconds): the
// appends that wait for them (--redis-replica-acks) fail meanwhile, and
// their visits are spooled.
func checkReplicas(addr, info string, acks int) error {
	if acks == 0 {
		return nil
	}
	n := 0
	for line := range strings.Lines(info) {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if i, err := strconv.Atoi(strings.TrimPrefix(name, "slave")); !ok || !strings.HasPrefix(name, "slave") || err != nil || i < 0 {
			continue // not slave0, slave1, ...
		}
		var online bool
		lag := replicaMaxLag + 1
		for f := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "state":
				online = v == "online"
			case "lag":
				if l, err := strconv.Atoi(v); err == nil {
					lag = l
				}
			}
		}
		if online && lag <= replicaMaxLag {
			n++
		}
	}
	if n < acks {
		return fmt.Errorf("redis at %q has %d replicas in sync, and --redis-replica-acks asks for %d: appends are refused and spooled meanwhile", addr, n, acks)
	}
	return nil
}

// infoField returns the value of name in the text of an INFO reply.
func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

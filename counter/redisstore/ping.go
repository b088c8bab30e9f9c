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
// that none may evict clickgate's keys (ErrEvicting), and that none is at
// its maxmemory (under noeviction it then refuses writes). It is what
// /readyz asks; a frozen Redis fails it at ctx's deadline.
func (s *Store) Ping(ctx context.Context) error {
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return checkServer(ctx, m, m.Options().Addr)
		})
	}
	return checkServer(ctx, s.rdb, s.addr)
}

// checkServer reads the memory figures of the Redis server c at addr.
func checkServer(ctx context.Context, c redis.Cmdable, addr string) error {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return fmt.Errorf("cannot read the maxmemory-policy of redis at %q (INFO memory; the ACL needs +info): %w", addr, storeErr(err))
	}
	policy, ok := infoField(info, "maxmemory_policy")
	if !ok {
		return fmt.Errorf("cannot read the maxmemory-policy of redis at %q: INFO memory has no maxmemory_policy", addr)
	}
	if strings.HasPrefix(policy, "allkeys-") {
		return fmt.Errorf("%w: redis at %q has maxmemory-policy %s; set it to noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf)",
			ErrEvicting, addr, policy)
	}
	used, _ := infoField(info, "used_memory")
	most, _ := infoField(info, "maxmemory")
	u, err1 := strconv.ParseInt(used, 10, 64)
	m, err2 := strconv.ParseInt(most, 10, 64)
	if err1 == nil && err2 == nil && m > 0 && u >= m {
		return fmt.Errorf("redis at %q is full: %d bytes used of its maxmemory %d; it refuses writes, and visits are spooled", addr, u, m)
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

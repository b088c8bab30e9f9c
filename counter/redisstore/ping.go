package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Ping checks that Redis answers within ctx: every master of a cluster.
// It is what /readyz asks; a frozen Redis fails it at ctx's deadline.
func (s *Store) Ping(ctx context.Context) error {
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		return storeErr(c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.Ping(ctx).Err()
		}))
	}
	return storeErr(s.rdb.Ping(ctx).Err())
}

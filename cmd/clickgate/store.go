package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/redisstore"
	"github.com/clickgate/clickgate/redirect"
)

// storeFlags are the flags that open the store; serve and flush share them,
// so both open it with the same dedupe parameters.
type storeFlags struct {
	redis, data, secret *string
	expected            *uint64
	fp                  *float64
	budget              *budgetFlags
	partitions          *uint
	cluster             *bool
	replicaAcks         *int
	replicaTimeout      *time.Duration

	// Set by serve: the store then judges with this velocity rule. Other
	// commands judge nothing: the Redis store runs no judges, and the
	// embedded store's keeps its checkpoint's rule.
	judge          bool
	velocityMax    int
	velocityWindow time.Duration
}

func addStoreFlags(fs *flag.FlagSet) *storeFlags {
	return &storeFlags{
		redis:          fs.String("redis", "", "Redis URL, redis://[user:pass@]host:port/db or rediss:// for TLS; when empty, the embedded store under --data"),
		data:           fs.String("data", "./data", "data directory: the embedded store, the ledger, and the generated secrets"),
		secret:         fs.String("click-secret", "", "secret that keys click ids and visitor keys (at least 32 bytes); when empty, generated and kept in DATA/click-secret (embedded store only: nodes sharing Redis must share it)"),
		expected:       fs.Uint64("dedupe-expected", 1_000_000, "expected unique visitors per campaign per dedupe window (sizes the Bloom filters)"),
		budget:         addBudgetFlags(fs),
		fp:             fs.Float64("dedupe-fp", 0.001, "Bloom filter false-positive rate (a false positive is a visit wrongly counted as duplicate)"),
		cluster:        fs.Bool("redis-cluster", false, "--redis is a Redis Cluster's seed nodes, redis://[user:pass@]host:port?addr=host2:port2&addr=host3:port3 (rediss:// for TLS)"),
		partitions:     fs.Uint("partitions", 1, "with --redis: partitions of each campaign's visit log, split by creator, each with its own judge and hash tag; a single Redis wants 1, a cluster enough to spread over its masters; every node must use the same"),
		replicaAcks:    fs.Int("redis-replica-acks", 0, "with --redis: replicas of its master that must have each append of visits before its clicks count as committed (WAIT); an append fewer acknowledge within --redis-replica-timeout is spooled and appended again, so that a failover loses no visit redirected as counted; 0: none, replication is asynchronous"),
		replicaTimeout: fs.Duration("redis-replica-timeout", 100*time.Millisecond, "how long an append waits for --redis-replica-acks replicas (1ms to 10s)"),
	}
}

// holder names the judges of the node whose data directory is data: one
// node runs on it at a time (its spool is locked), and a node that
// restarts takes its leases back at once.
func holder(data string) string {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(data); err == nil {
		data = abs
	}
	return host + ":" + data
}

// open opens the store and returns it with its dedupe parameters and the
// click secret.
func (f *storeFlags) open(ctx context.Context, log *slog.Logger) (counter.Store, counter.DedupeParams, []byte, error) {
	params, err := counter.NewDedupeParams(*f.expected, *f.fp)
	if err != nil {
		return nil, params, nil, usageError("dedupe sizing: %s", err)
	}
	if err := f.budget.set(&params); err != nil {
		return nil, params, nil, err
	}
	if f.judge {
		params.VelocityMax, params.VelocityWindow = f.velocityMax, f.velocityWindow
	}
	// Trimmed: a secret read from a file with a newline must key the same.
	secret := []byte(strings.TrimSpace(*f.secret))
	switch {
	case len(secret) == 0 && *f.redis != "":
		return nil, params, nil, usageError("--click-secret is required with --redis: every node sharing the store must use the same one")
	case len(secret) == 0:
		if secret, err = loadOrCreateSecret(*f.data, "click-secret", log); err != nil {
			return nil, params, nil, err
		}
	case len(secret) < 32:
		return nil, params, nil, usageError("--click-secret must be at least 32 bytes")
	}
	params.Keying = redirect.KeyingFingerprint(secret)
	var store counter.Store
	if *f.cluster && *f.redis == "" {
		return nil, params, nil, usageError("--redis-cluster needs --redis, the cluster's seed nodes")
	}
	if *f.partitions < 1 || *f.partitions > 1024 {
		return nil, params, nil, usageError("--partitions must be 1 to 1024")
	}
	if *f.replicaAcks < 0 || *f.replicaAcks > 64 {
		return nil, params, nil, usageError("--redis-replica-acks must be 0 to 64")
	}
	if *f.replicaTimeout < time.Millisecond || *f.replicaTimeout > 10*time.Second {
		return nil, params, nil, usageError("--redis-replica-timeout must be 1ms to 10s")
	}
	if *f.redis != "" {
		setRedisLogger(log)
		store, err = redisstore.Open(ctx, redisstore.Options{URL: *f.redis, Cluster: *f.cluster, Params: params, Partitions: uint32(*f.partitions),
			Judge: f.judge, Holder: holder(*f.data), Logger: log,
			ReplicaAcks: *f.replicaAcks, ReplicaTimeout: *f.replicaTimeout})
	} else {
		store, err = boltstore.Open(filepath.Join(*f.data, "store"), params)
	}
	if errors.Is(err, counter.ErrParamsMismatch) {
		return nil, params, nil, fmt.Errorf("cannot open store: %w; every node and every restart must use the same --dedupe-expected, --dedupe-fp, --click-secret and --partitions", err)
	}
	if errors.Is(err, judge.ErrParams) {
		// Budgets may change (the judge adopts them at its checkpoint);
		// the sizing of its filters may not.
		return nil, params, nil, fmt.Errorf("cannot open store: %w; every restart must use the --dedupe-expected, --dedupe-fp and --click-secret of the judge's checkpoint", err)
	}
	if err != nil {
		return nil, params, nil, fmt.Errorf("cannot open store: %w", err)
	}
	return store, params, secret, nil
}

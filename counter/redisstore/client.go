package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

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
		co.DisableIdentity, co.MaintNotificationsConfig = true, noMaintNotifications()
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
	ro.DisableIdentity, ro.MaintNotificationsConfig = true, noMaintNotifications()
	ro.DialTimeout = cmp.Or(o.DialTimeout, ro.DialTimeout)
	ro.ReadTimeout = cmp.Or(o.ReadTimeout, ro.ReadTimeout)
	ro.WriteTimeout = cmp.Or(o.WriteTimeout, ro.WriteTimeout)
	return redis.NewClient(ro), ro.Addr, nil
}

// noMaintNotifications turns off go-redis's maintenance notifications.
// With DisableIdentity, a connection sends only what the README's ACL
// allows: go-redis would otherwise send CLIENT SETINFO as it connects, and
// CLIENT MAINT_NOTIFICATIONS to a Redis 7.2 or later, which the ACL refuses
// (the client goes on, but every connection leaves an error in Redis's
// ACL LOG and INFO errorstats). Both are for Redis Cloud's tooling.
func noMaintNotifications() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
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

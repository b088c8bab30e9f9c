package redistest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// createTimeout bounds redis-cli --cluster create, which takes about 2 s.
const createTimeout = 30 * time.Second

// Cluster is a Redis Cluster of redis-server processes on loopback, each with
// its own temporary data directory and cluster bus port, killed when the test
// ends. Its methods are safe for concurrent use.
type Cluster struct {
	opt   ClusterOptions
	dir   string
	tls   *tls.Config // of the harness's own clients; nil without TLS
	nodes []*Node     // in start order

	mu     sync.Mutex
	layout layout // as of the last wait
}

// Node is one redis-server of a Cluster. Stop kills it as a crash would,
// Pause stalls it, Restart brings it back on the same ports and data
// directory, where it rejoins the cluster with the same ID (as a replica if
// its slots were failed over meanwhile).
type Node struct {
	*Server
	// ID is the node's cluster ID, 40 hex digits; it keeps it across
	// restarts (nodes.conf).
	ID string

	rdb *redis.Client // the harness's own
}

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Masters is the number of masters, over which redis-cli spreads the
	// 16384 slots evenly; at least 3. default: 3
	Masters int
	// Replicas is the number of replicas of each master. default: 0
	Replicas int
	// NodeTimeout is cluster-node-timeout: a master that does not answer
	// for that long is failed over to a replica, about a second later.
	// default: 2s
	NodeTimeout time.Duration
	// Password is the default user's on every node (requirepass), and
	// masterauth for replication. URL and Client carry it.
	// default: none, no authentication
	Password string
	// TLS serves TLS only, between the nodes too (tls-cluster,
	// tls-replication), with one certificate for 127.0.0.1 signed by a CA
	// made for the cluster; CAFile names the CA's certificate, and URL is
	// rediss://. default: plain TCP
	TLS bool
	// Args are more redis-server arguments for every node, for example an
	// ACL user. default: none
	Args []string
	// Wrap is a command every node runs under, as Options.Wrap.
	// default: none
	Wrap []string
}

// StartCluster starts Masters*(1+Replicas) redis-servers, each as Start does
// (append-only, appendfsync everysec) with cluster mode on, joins them with
// redis-cli --cluster create, and waits until the cluster is ready as
// WaitState defines it. The nodes are killed when the test ends. It fails the
// test, never skips it, if redis-server or redis-cli is missing or the
// cluster does not form within a bounded time.
func StartCluster(tb testing.TB, o ClusterOptions) *Cluster {
	tb.Helper()
	c, err := LaunchCluster(tb.TempDir(), o)
	if err != nil {
		tb.Fatalf("%s", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// LaunchCluster is StartCluster for a program that is not a test (the load
// tool): it starts the cluster with its nodes' directories under dir, and
// returns it once ready, or an error when it cannot, its nodes stopped.
// Close stops it.
func LaunchCluster(dir string, o ClusterOptions) (c *Cluster, err error) {
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 2 * time.Second
	}
	if o.Masters < 3 || o.Replicas < 0 || o.NodeTimeout < time.Millisecond {
		return nil, fmt.Errorf("cannot start a cluster of %d masters with %d replicas each and a node timeout of %s: redis-cli creates one of 3 masters or more", o.Masters, o.Replicas, o.NodeTimeout)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli not found on PATH (install it, e.g. apt-get install redis-server): %w", err)
	}
	c = &Cluster{opt: o, dir: dir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if o.TLS {
		if c.tls, err = writeTLSFiles(c.dir); err != nil {
			return nil, fmt.Errorf("cannot make the TLS certificates: %w", err)
		}
	}
	for i := range o.Masters * (1 + o.Replicas) {
		dir := filepath.Join(c.dir, "node"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, fmt.Errorf("cannot make the node's directory: %w", err)
		}
		s, err := newServer(dir, Options{Password: o.Password, TLS: o.TLS, Args: o.Args, Wrap: o.Wrap})
		if err != nil {
			return nil, err
		}
		s.tls, s.tlsDir = c.tls, c.dir
		s.cluster = &clusterNode{nodeTimeout: o.NodeTimeout}
		// A server that failed to start is not running: nothing to stop.
		if err := s.startOnFreePort(); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &Node{Server: s, rdb: redis.NewClient(c.nodeOptions(s.Addr()))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	for _, n := range c.nodes {
		if n.ID, err = n.rdb.ClusterMyID(ctx).Result(); err != nil {
			return nil, fmt.Errorf("cannot read the cluster ID of %s: %w", n.Addr(), err)
		}
	}
	if err := c.create(ctx, cli); err != nil {
		return nil, err
	}
	if err := c.wait("ready", func(layout) error { return nil }); err != nil {
		return nil, err
	}
	return c, nil
}

// create joins the nodes with redis-cli, which assigns the slots, the
// replicas and the config epochs, and introduces the nodes to each other.
func (c *Cluster) create(ctx context.Context, cli string) error {
	var args []string
	if c.opt.TLS {
		args = append(args, "--tls", "--cacert", c.CAFile())
	}
	args = append(args, "--cluster", "create")
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(c.opt.Replicas), "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	if c.opt.Password != "" {
		// Not -a: that would put it in ps and warn about it.
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+c.opt.Password)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("cannot create the cluster with %s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// nodeOptions are those of the harness's client of one node: short timeouts
// and no retries, as it polls.
func (c *Cluster) nodeOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		Password:              c.opt.Password,
		TLSConfig:             c.tlsConfig(),
		MaxRetries:            -1,
		DialTimeout:           500 * time.Millisecond,
		ReadTimeout:           500 * time.Millisecond,
		WriteTimeout:          500 * time.Millisecond,
		ContextTimeoutEnabled: true,
		PoolSize:              1,
	}
}

func (c *Cluster) tlsConfig() *tls.Config {
	if c.tls == nil {
		return nil
	}
	return c.tls.Clone()
}

// Nodes returns every node in start order.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Addrs returns every node's address, "127.0.0.1:port", in start order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// URL returns the cluster's URL in go-redis's form (redis.ParseClusterURL),
// as the default user: "redis://127.0.0.1:port?addr=127.0.0.1:port2&...",
// every node a seed; "rediss://" with TLS, with ":password@" with a
// Password.
func (c *Cluster) URL() string {
	if c.opt.Password == "" {
		return c.UserURL("", "")
	}
	return c.UserURL("default", c.opt.Password)
}

// UserURL returns the cluster's URL as user with password.
func (c *Cluster) UserURL(user, password string) string {
	u := url.URL{Scheme: "redis", Host: c.nodes[0].Addr()}
	if c.opt.TLS {
		u.Scheme = "rediss"
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	q := make([]string, 0, len(c.nodes)-1)
	for _, n := range c.nodes[1:] {
		q = append(q, "addr="+n.Addr())
	}
	u.RawQuery = strings.Join(q, "&")
	return u.String()
}

// CAFile returns the file of the CA certificate that signed the nodes', with
// TLS.
func (c *Cluster) CAFile() string { return filepath.Join(c.dir, "ca.pem") }

// Client returns a cluster client of the nodes, as the default user, closed
// when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:     c.Addrs(),
		Password:  c.opt.Password,
		TLSConfig: c.tlsConfig(),
	})
	tb.Cleanup(func() { cl.Close() })
	return cl
}

// Stop kills every node.
func (c *Cluster) Stop() {
	for _, n := range c.nodes {
		n.Stop()
	}
}

// Close kills every node and closes the harness's clients. StartCluster's
// cluster is closed when the test ends; LaunchCluster's by its caller.
func (c *Cluster) Close() {
	c.Stop()
	for _, n := range c.nodes {
		n.rdb.Close()
	}
}

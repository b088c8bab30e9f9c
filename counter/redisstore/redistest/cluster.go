package redistest

import (
	"context"
	"crypto/tls"
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
}

// StartCluster starts Masters*(1+Replicas) redis-servers, each as Start does
// (append-only, appendfsync everysec) with cluster mode on, joins them with
// redis-cli --cluster create, and waits until the cluster is ready as
// WaitState defines it. The nodes are killed when the test ends. It fails the
// test, never skips it, if redis-server or redis-cli is missing or the
// cluster does not form within a bounded time.
func StartCluster(tb testing.TB, o ClusterOptions) *Cluster {
	tb.Helper()
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 2 * time.Second
	}
	if o.Masters < 3 || o.Replicas < 0 || o.NodeTimeout < time.Millisecond {
		tb.Fatalf("cannot start a cluster of %d masters with %d replicas each and a node timeout of %s: redis-cli creates one of 3 masters or more", o.Masters, o.Replicas, o.NodeTimeout)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redis-cli not found on PATH (install it, e.g. apt-get install redis-server): %s", err)
	}
	c := &Cluster{opt: o, dir: tb.TempDir()}
	if o.TLS {
		if c.tls, err = writeTLSFiles(c.dir); err != nil {
			tb.Fatalf("cannot make the TLS certificates: %s", err)
		}
	}
	for i := range o.Masters * (1 + o.Replicas) {
		dir := filepath.Join(c.dir, "node"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			tb.Fatalf("cannot make the node's directory: %s", err)
		}
		s := newServer(tb, dir, Options{Password: o.Password, TLS: o.TLS, Args: o.Args})
		s.tls, s.tlsDir = c.tls, c.dir
		s.cluster = &clusterNode{nodeTimeout: o.NodeTimeout}
		s.startOnFreePort(tb)
		c.nodes = append(c.nodes, &Node{Server: s, rdb: redis.NewClient(c.nodeOptions(s.Addr()))})
	}
	tb.Cleanup(func() {
		for _, n := range c.nodes {
			n.rdb.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	for _, n := range c.nodes {
		if n.ID, err = n.rdb.ClusterMyID(ctx).Result(); err != nil {
			tb.Fatalf("cannot read the cluster ID of %s: %s", n.Addr(), err)
		}
	}
	c.create(ctx, tb, cli)
	c.WaitState(tb)
	return c
}

// create joins the nodes with redis-cli, which assigns the slots, the
// replicas and the config epochs, and introduces the nodes to each other.
func (c *Cluster) create(ctx context.Context, tb testing.TB, cli string) {
	tb.Helper()
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
		tb.Fatalf("cannot create the cluster with %s: %s\n%s", strings.Join(cmd.Args, " "), err, out)
	}
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

package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
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

const (
	// createTimeout bounds redis-cli --cluster create, which takes about 2 s.
	createTimeout = 30 * time.Second
	// pollInterval is how often the harness asks the nodes for their state
	// while it waits on the cluster.
	pollInterval = 20 * time.Millisecond
)

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

// Masters returns the nodes that serve slots, in start order, as of the last
// time the harness waited on the cluster (StartCluster, WaitState,
// WaitFailover).
func (c *Cluster) Masters() []*Node {
	return c.filter(func(e entry) bool { return e.slots != "" })
}

// Replicas returns the nodes that replicate a master, running or not, in
// start order, as of the last wait. A master that is down and whose slots
// were failed over is neither a master nor a replica until it restarts.
func (c *Cluster) Replicas() []*Node {
	return c.filter(func(e entry) bool { return e.master != "" })
}

// ReplicasOf returns the replicas of master m, as of the last wait.
func (c *Cluster) ReplicasOf(m *Node) []*Node {
	return c.filter(func(e entry) bool { return e.master == m.ID })
}

func (c *Cluster) filter(f func(entry) bool) []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var nodes []*Node
	for _, n := range c.nodes {
		if e, ok := c.layout[n.ID]; ok && f(e) {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// WaitState waits until the cluster is ready: every node that runs and is not
// paused says cluster_state:ok, knows every node, and agrees with the others
// on who serves which slots; every master that serves slots runs; every
// running node either serves slots or is a replica whose link to its master
// is up (a replica reports itself as a master for about a
// second after redis-cli is done, and one whose link never came up would not
// fail over). It fails the test if that takes longer than 10 s plus 4 node
// timeouts.
func (c *Cluster) WaitState(tb testing.TB) {
	tb.Helper()
	c.wait(tb, "ready", func(layout) error { return nil })
}

// WaitFailover waits until one of the replicas of master m (as of the last
// wait) has taken over its slots and the cluster is ready as WaitState
// defines it, and returns that replica. Stop or Pause m first; it fails the
// test if m has no replica or the failover takes longer than WaitState
// waits.
func (c *Cluster) WaitFailover(tb testing.TB, m *Node) *Node {
	tb.Helper()
	replicas := c.ReplicasOf(m)
	if len(replicas) == 0 {
		tb.Fatalf("cannot wait for a failover of %s: it has no replica", m.Addr())
	}
	var promoted *Node
	c.wait(tb, "failed over from "+m.Addr(), func(l layout) error {
		for _, r := range replicas {
			if l[r.ID].slots != "" {
				promoted = r
				return nil
			}
		}
		return fmt.Errorf("no replica of %s serves slots yet", m.Addr())
	})
	return promoted
}

// wait polls the nodes until the cluster is ready and done accepts its
// layout, which it keeps for Masters and Replicas.
func (c *Cluster) wait(tb testing.TB, what string, done func(layout) error) {
	tb.Helper()
	timeout := 10*time.Second + 4*c.opt.NodeTimeout
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		l, err := c.check(ctx)
		cancel()
		if err == nil {
			err = done(l)
		}
		if err == nil {
			c.mu.Lock()
			c.layout = l
			c.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redis cluster not %s within %s: %s\n%s", what, timeout, err, c.logTails())
		}
		time.Sleep(pollInterval)
	}
}

// layout is a node's view of the cluster (CLUSTER NODES) by node ID, less
// what changes without a change of roles (flags, pings, epochs).
type layout map[string]entry

type entry struct {
	master string // the ID of the master it replicates; empty for a master
	slots  string // the slot ranges it serves, "0-5460 7"; empty for none
}

// check returns the cluster's layout, or why the cluster is not ready. The
// running nodes must agree on who serves which slots; who replicates whom is
// what each running node says of itself, and what the first running node
// says of those that are down. Nodes learn of each other's roles by gossip,
// about a second late, which matters to no client.
func (c *Cluster) check(ctx context.Context) (layout, error) {
	l := layout{}
	var first layout
	var slots map[string]string // the agreed slot ranges by master ID
	var from *Node
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		var info, nodes, repl *redis.StringCmd
		_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			info = p.ClusterInfo(ctx)
			nodes = p.ClusterNodes(ctx)
			repl = p.Info(ctx, "replication")
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cannot ask %s for its state: %w", n.Addr(), err)
		}
		if state := infoField(info.Val(), "cluster_state"); state != "ok" {
			return nil, fmt.Errorf("%s says cluster_state:%s", n.Addr(), state)
		}
		view, err := c.parseNodes(nodes.Val())
		if err != nil {
			return nil, fmt.Errorf("unexpected CLUSTER NODES from %s: %w", n.Addr(), err)
		}
		if first == nil {
			first, slots, from = view, view.slots(), n
		} else if !maps.Equal(view.slots(), slots) {
			return nil, fmt.Errorf("%s and %s disagree on who serves which slots", from.Addr(), n.Addr())
		}
		e := view[n.ID]
		l[n.ID] = e
		role := infoField(repl.Val(), "role")
		switch {
		case e.master == "" && e.slots == "":
			return nil, fmt.Errorf("%s is a master without slots", n.Addr())
		case e.master == "" && role != "master":
			return nil, fmt.Errorf("%s serves slots but reports role:%s", n.Addr(), role)
		case e.master == "":
		case role != "slave":
			return nil, fmt.Errorf("%s is a replica but reports role:%s", n.Addr(), role)
		case infoField(repl.Val(), "master_link_status") != "up":
			return nil, fmt.Errorf("the link of replica %s to its master is down", n.Addr())
		case infoField(repl.Val(), "master_port") != strconv.Itoa(c.byID(e.master).port):
			return nil, fmt.Errorf("replica %s replicates port %s, not its master %s", n.Addr(), infoField(repl.Val(), "master_port"), c.byID(e.master).Addr())
		}
	}
	if first == nil {
		return nil, errors.New("no node runs")
	}
	for id, e := range first {
		if _, ok := l[id]; !ok {
			l[id] = e
		}
	}
	for id := range slots {
		if n := c.byID(id); !n.running() {
			return nil, fmt.Errorf("%s serves slots but is down", n.Addr())
		}
	}
	return l, nil
}

// slots returns the slot ranges of every master that serves some.
func (l layout) slots() map[string]string {
	m := map[string]string{}
	for id, e := range l {
		if e.slots != "" {
			m[id] = e.slots
		}
	}
	return m
}

// parseNodes parses CLUSTER NODES, whose lines are
// "id ip:port@cport[,hostname] flags master ping-sent pong-recv config-epoch
// link-state slot...".
func (c *Cluster) parseNodes(s string) (layout, error) {
	l := layout{}
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("short line %q", line)
		}
		id, flags := f[0], ","+f[2]+","
		if c.byID(id) == nil {
			return nil, fmt.Errorf("unknown node %q (in handshake?)", id)
		}
		if strings.Contains(flags, ",handshake,") || strings.Contains(flags, ",noaddr,") {
			return nil, fmt.Errorf("node %s is not known yet: %s", id, f[2])
		}
		var e entry
		switch {
		case strings.Contains(flags, ",slave,"):
			if c.byID(f[3]) == nil {
				return nil, fmt.Errorf("node %s replicates an unknown node %q", id, f[3])
			}
			e.master = f[3]
		case strings.Contains(flags, ",master,"):
			var slots []string
			for _, r := range f[8:] {
				if !strings.HasPrefix(r, "[") { // a slot being migrated
					slots = append(slots, r)
				}
			}
			e.slots = strings.Join(slots, " ")
		default:
			return nil, fmt.Errorf("node %s is neither a master nor a replica: %s", id, f[2])
		}
		l[id] = e
	}
	if len(l) != len(c.nodes) {
		return nil, fmt.Errorf("%d nodes known; want %d", len(l), len(c.nodes))
	}
	return l, nil
}

func (c *Cluster) byID(id string) *Node {
	for _, n := range c.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// infoField returns the value of name in the text of INFO or CLUSTER INFO.
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// logTails returns the end of every node's log, for failure messages.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, n := range c.nodes {
		fmt.Fprintf(&b, "redis log of %s (%s):\n%s\n", n.Addr(), n.ID, n.tail(1<<10))
	}
	return b.String()
}

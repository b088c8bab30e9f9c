package redistest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pollInterval is how often the harness asks the nodes for their state while
// it waits on the cluster.
const pollInterval = 20 * time.Millisecond

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
	if err := c.wait("ready", func(layout) error { return nil }); err != nil {
		tb.Fatalf("%s", err)
	}
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
	err := c.wait("failed over from "+m.Addr(), func(l layout) error {
		for _, r := range replicas {
			if l[r.ID].slots != "" {
				promoted = r
				return nil
			}
		}
		return fmt.Errorf("no replica of %s serves slots yet", m.Addr())
	})
	if err != nil {
		tb.Fatalf("%s", err)
	}
	return promoted
}

// wait polls the nodes until the cluster is ready and done accepts its
// layout, which it keeps for Masters and Replicas.
func (c *Cluster) wait(what string, done func(layout) error) error {
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
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis cluster not %s within %s: %w\n%s", what, timeout, err, c.logTails())
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

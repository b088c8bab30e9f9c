package redistest

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClusterMasters(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, ClusterOptions{})
	t.Logf("3 masters ready in %s", time.Since(start))
	if got := len(c.Masters()); got != 3 {
		t.Fatalf("unexpected number of masters; got %d; want 3", got)
	}
	if got := c.Replicas(); len(got) != 0 {
		t.Fatalf("unexpected replicas; got %d; want none", len(got))
	}
	for _, n := range c.Nodes() {
		if len(n.ID) != 40 {
			t.Fatalf("unexpected node ID for %q; got %q; want 40 hex digits", n.Addr(), n.ID)
		}
	}
	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatalf("cannot parse URL %q: %s", c.URL(), err)
	}
	if !slices.Equal(opt.Addrs, c.Addrs()) {
		t.Fatalf("unexpected addresses in URL %q; got %v; want %v", c.URL(), opt.Addrs, c.Addrs())
	}
	cl := redis.NewClusterClient(opt)
	defer cl.Close()
	ctx := context.Background()
	keys := writeKeys(t, cl, 100)
	readKeys(t, cl, keys)
	// The keys are spread over every master.
	var total int64
	for _, m := range c.Masters() {
		direct := redis.NewClient(&redis.Options{Addr: m.Addr()})
		n, err := direct.DBSize(ctx).Result()
		direct.Close()
		if err != nil || n == 0 {
			t.Fatalf("unexpected number of keys on master %s; got %d, %v; want some", m.Addr(), n, err)
		}
		total += n
	}
	if total != int64(len(keys)) {
		t.Fatalf("unexpected number of keys on the masters; got %d; want %d", total, len(keys))
	}
}

func TestClusterFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, ClusterOptions{Replicas: 1})
	t.Logf("3 masters and 3 replicas ready in %s", time.Since(start))
	masters, replicas := c.Masters(), c.Replicas()
	if len(masters) != 3 || len(replicas) != 3 {
		t.Fatalf("unexpected layout; got %d masters and %d replicas; want 3 and 3", len(masters), len(replicas))
	}
	for _, m := range masters {
		if got := c.ReplicasOf(m); len(got) != 1 {
			t.Fatalf("unexpected number of replicas of %s; got %d; want 1", m.Addr(), len(got))
		}
	}
	cl := c.Client(t)
	ctx := context.Background()
	keys := writeKeys(t, cl, 100)

	m := masters[0]
	want := c.ReplicasOf(m)[0]
	// What m acknowledged may not have reached its replica yet (replication
	// is asynchronous): write its keys again and WAIT on the same connection.
	direct := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer direct.Close()
	var acked *redis.Cmd
	_, err := direct.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			if owner, err := cl.MasterForKey(ctx, k); err != nil {
				return err
			} else if owner.Options().Addr == m.Addr() {
				p.Set(ctx, k, k, 0)
			}
		}
		acked = p.Do(ctx, "WAIT", 1, 5000)
		return nil
	})
	if err != nil || acked.Val() != int64(1) {
		t.Fatalf("unexpected WAIT on master %s; got %v, %v; want 1", m.Addr(), acked.Val(), err)
	}

	m.Stop()
	killed := time.Now()
	got := c.WaitFailover(t, m)
	took := time.Since(killed)
	t.Logf("replica %s took over from %s in %s", got.Addr(), m.Addr(), took)
	if got != want {
		t.Fatalf("unexpected node promoted; got %s; want %s", got.Addr(), want.Addr())
	}
	// Redis fails a master over a node timeout (2 s) after it stopped
	// answering, plus the gossip of the failure reports, plus 0.5-1 s before
	// the election: 3.5-4.7 s measured with three such clusters at once.
	if limit := 2*time.Second + 4*time.Second; took > limit {
		t.Fatalf("unexpected failover time; got %s; want at most %s", took, limit)
	}
	if ms := c.Masters(); len(ms) != 3 || !slices.Contains(ms, got) || slices.Contains(ms, m) {
		t.Fatalf("unexpected masters after the failover; got %v; want %s instead of %s", addrs(ms), got.Addr(), m.Addr())
	}
	if rs := c.Replicas(); len(rs) != 2 || slices.Contains(rs, m) || slices.Contains(rs, got) {
		t.Fatalf("unexpected replicas after the failover; got %v; want 2, neither %s nor %s", addrs(rs), m.Addr(), got.Addr())
	}
	readKeys(t, c.Client(t), keys)

	// The old master comes back as a replica of the new one.
	m.Restart(t)
	c.WaitState(t)
	if rs := c.ReplicasOf(got); !slices.Equal(rs, []*Node{m}) {
		t.Fatalf("unexpected replicas of %s after a restart of %s; got %v; want %s", got.Addr(), m.Addr(), addrs(rs), m.Addr())
	}
	if len(c.Masters()) != 3 || len(c.Replicas()) != 3 {
		t.Fatalf("unexpected layout after the restart; got %v masters and %v replicas; want 3 and 3", addrs(c.Masters()), addrs(c.Replicas()))
	}
	readKeys(t, c.Client(t), keys)

	// A stalled master is failed over too, and steps down when it wakes.
	got.Pause(t)
	if back := c.WaitFailover(t, got); back != m {
		t.Fatalf("unexpected node promoted after a pause of %s; got %s; want %s", got.Addr(), back.Addr(), m.Addr())
	}
	got.Resume(t)
	c.WaitState(t)
	if rs := c.ReplicasOf(m); !slices.Equal(rs, []*Node{got}) {
		t.Fatalf("unexpected replicas of %s after %s woke; got %v; want %s", m.Addr(), got.Addr(), addrs(rs), got.Addr())
	}
}

func TestClusterPasswordAndTLS(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterOptions{Password: "s3cret", TLS: true, Replicas: 1,
		Args: []string{"--user", "edge", "on", ">edgepw", "~e:*", "+@all"}})
	if !strings.HasPrefix(c.URL(), "rediss://default:s3cret@127.0.0.1:") {
		t.Fatalf("unexpected URL; got %q; want rediss://default:s3cret@127.0.0.1:port?...", c.URL())
	}
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(c.CAFile())
	if err != nil || !roots.AppendCertsFromPEM(ca) {
		t.Fatalf("cannot read the CA certificate %s: %v", c.CAFile(), err)
	}
	client := func(url string) *redis.ClusterClient {
		t.Helper()
		opt, err := redis.ParseClusterURL(url)
		if err != nil {
			t.Fatalf("cannot parse URL %q: %s", url, err)
		}
		if opt.TLSConfig == nil {
			t.Fatalf("no TLS for %q", url)
		}
		opt.TLSConfig.RootCAs = roots
		cl := redis.NewClusterClient(opt)
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	readKeys(t, client(c.URL()), writeKeys(t, c.Client(t), 30))
	ctx := context.Background()
	edge := client(c.UserURL("edge", "edgepw"))
	if err := edge.Set(ctx, "e:k", "v", 0).Err(); err != nil {
		t.Fatalf("cannot set as the ACL user: %s", err)
	}
	if err := edge.Get(ctx, "k").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("unexpected answer to a key outside the ACL user's; got %v; want NOPERM", err)
	}
}

func TestClusterCleanup(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		c := StartCluster(t, ClusterOptions{})
		for _, n := range c.Nodes() {
			if pids = append(pids, n.PID()); n.PID() == 0 {
				t.Fatalf("unexpected stopped node %s", n.Addr())
			}
		}
		// Paused or stopped nodes are cleaned up too.
		c.Nodes()[0].Pause(t)
		c.Nodes()[1].Stop()
	})
	if len(pids) != 3 {
		t.Fatalf("unexpected number of nodes; got %d; want 3", len(pids))
	}
	for _, pid := range pids {
		// The process group: redis forks for AOF rewrites.
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("unexpected process group %d after the cluster's test; got %v; want none (ESRCH)", pid, err)
		}
	}
}

// TestStartClusterFailsWithoutRedisCli checks that a missing redis-cli fails
// the test rather than skipping it.
func TestStartClusterFailsWithoutRedisCli(t *testing.T) {
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: %s", err)
	}
	bin := t.TempDir()
	if err := os.Symlink(server, filepath.Join(bin, "redis-server")); err != nil {
		t.Fatalf("cannot link redis-server: %s", err)
	}
	t.Setenv("PATH", bin)
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartCluster(ft, ClusterOptions{})
	}()
	<-done
	if msg := ft.message(); !strings.Contains(msg, "redis-cli not found") {
		t.Fatalf("unexpected failure without redis-cli; got %q; want redis-cli not found", msg)
	}
}

// fatalTB records Fatalf and ends the goroutine that called it, as
// testing.T does, without failing the test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) message() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

// writeKeys sets n keys, each to its name, through the cluster client, and
// returns them; they fall in different slots.
func writeKeys(t *testing.T, cl *redis.ClusterClient, n int) []string {
	t.Helper()
	ctx := context.Background()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		if err := cl.Set(ctx, keys[i], keys[i], 0).Err(); err != nil {
			t.Fatalf("cannot set %q: %s", keys[i], err)
		}
	}
	return keys
}

// readKeys checks that every key holds its name.
func readKeys(t *testing.T, cl *redis.ClusterClient, keys []string) {
	t.Helper()
	ctx := context.Background()
	for _, k := range keys {
		if got, err := cl.Get(ctx, k).Result(); err != nil || got != k {
			t.Fatalf("unexpected value of %q; got %q, %v; want %q", k, got, err, k)
		}
	}
}

func addrs(nodes []*Node) []string {
	a := make([]string, len(nodes))
	for i, n := range nodes {
		a[i] = n.Addr()
	}
	return a
}

// TestLaunchCluster checks the cluster a program that is not a test starts:
// every node runs under Wrap (its process is the server's), the cluster
// serves keys, and Close kills every node.
func TestLaunchCluster(t *testing.T) {
	c, err := LaunchCluster(t.TempDir(), ClusterOptions{Wrap: []string{"taskset", "-c", "0"}})
	if err != nil {
		t.Fatalf("cannot launch a cluster: %s", err)
	}
	defer c.Close()
	var pids []int
	for _, n := range c.Nodes() {
		pid := n.PID()
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil || !strings.Contains(string(status), "\nCpus_allowed_list:\t0\n") {
			t.Fatalf("unexpected CPUs of node %s (pid %d); got %q, %v; want CPU 0 only, as Wrap pins it", n.Addr(), pid, status, err)
		}
		pids = append(pids, pid)
	}
	cl := c.Client(t)
	readKeys(t, cl, writeKeys(t, cl, 30))
	c.Close()
	for i, n := range c.Nodes() {
		if n.PID() != 0 {
			t.Fatalf("unexpected pid of node %s after Close; got %d; want 0", n.Addr(), n.PID())
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pids[i])); err == nil {
			t.Fatalf("node %s (pid %d) still runs after Close", n.Addr(), pids[i])
		}
	}
}

// TestLaunchClusterError checks that LaunchCluster returns an error, not a
// panic or a test failure, for a cluster redis-cli cannot create.
func TestLaunchClusterError(t *testing.T) {
	c, err := LaunchCluster(t.TempDir(), ClusterOptions{Masters: 2})
	if err == nil || c != nil {
		c.Close()
		t.Fatalf("unexpected result for 2 masters; got %v, %v; want an error", c, err)
	}
}

package main

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

// startCluster starts the cluster design's Redis Cluster: clusterMasters
// masters, no replicas, pinned as the single redis-server is, each
// append-only with appendfsync everysec (redistest's defaults).
func (l *loadtester) startCluster(r *row) error {
	dir, err := os.MkdirTemp(l.tmp, "cluster")
	if err != nil {
		return err
	}
	var wrap []string
	if cpus := cmp.Or(l.redisCPU, l.cpus); cpus != "" {
		wrap = []string{"taskset", "-c", cpus}
	}
	c, err := redistest.LaunchCluster(dir, redistest.ClusterOptions{Masters: clusterMasters, Wrap: wrap})
	if err != nil {
		return fmt.Errorf("cannot start a redis cluster (apt-get install redis-server, which brings redis-cli): %w", err)
	}
	r.cluster = c
	for _, n := range c.Masters() {
		r.nodes = append(r.nodes, redis.NewClient(&redis.Options{Addr: n.Addr()}))
	}
	return nil
}

// waitServed waits until the public listener target answers code with a
// redirect (a HEAD, which clickgate does not count), and returns how long
// that took. Each try comes from a source address of its own (127.201.x.y):
// a code not served yet is an unknown code, and clickgate answers a
// network that asks for too many of those with 429 (--probe-max).
func (l *loadtester) waitServed(target, code string, timeout time.Duration) (time.Duration, error) {
	var tries atomic.Uint32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		n := tries.Add(1)
		src := netip.AddrFrom4([4]byte{127, 201, byte(n >> 8), byte(n)})
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		return d.DialContext(ctx, network, addr)
	}
	c := &http.Client{
		Timeout:       time.Second,
		Transport:     &http.Transport{DialContext: dial, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	start := time.Now()
	for {
		req, _ := http.NewRequestWithContext(l.ctx, "HEAD", "http://"+target+"/"+code, nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				return time.Since(start), nil
			}
		}
		if time.Since(start) > timeout || l.ctx.Err() != nil {
			return 0, fmt.Errorf("%s does not serve link %s after %s (last: %v)", target, code, timeout, cmp.Or(err, fmt.Errorf("status %d", statusOf(resp))))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// clusterLayout is where a cluster's keys are, by hash tag: each
// partition of a campaign ("{campaign:p}"), and the catalog ("{catalog}").
type clusterLayout struct {
	masters    []masterUse
	partitions []tagUse // every partition's, by memory
	catalog    tagUse
}

type masterUse struct {
	addr       string
	partitions int
	dataset    float64 // used_memory_dataset, bytes
	catalog    bool
}

type tagUse struct {
	tag   string
	keys  int
	bytes float64 // MEMORY USAGE of its keys
}

// layoutOf reads which master holds which hash tags and their memory.
func layoutOf(ctx context.Context, nodes []*redis.Client) (*clusterLayout, error) {
	out := &clusterLayout{}
	for _, c := range nodes {
		m := masterUse{addr: c.Options().Addr, dataset: redisInfo(ctx, c, "used_memory_dataset")}
		tags := map[string]*tagUse{}
		iter := c.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			i, j := strings.IndexByte(key, '{'), strings.IndexByte(key, '}')
			if i < 0 || j < i {
				continue
			}
			tag := key[i+1 : j]
			b, err := c.MemoryUsage(ctx, key).Result()
			if err != nil && err != redis.Nil {
				return nil, fmt.Errorf("cannot read the memory of %q on %s: %w", key, m.addr, err)
			}
			if tags[tag] == nil {
				tags[tag] = &tagUse{tag: tag}
			}
			tags[tag].keys++
			tags[tag].bytes += float64(b)
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("cannot scan %s: %w", m.addr, err)
		}
		for tag, u := range tags {
			if tag == "catalog" {
				out.catalog, m.catalog = *u, true
				continue
			}
			out.partitions = append(out.partitions, *u)
			m.partitions++
		}
		out.masters = append(out.masters, m)
	}
	slices.SortFunc(out.partitions, func(a, b tagUse) int { return cmp.Compare(a.bytes, b.bytes) })
	return out, nil
}

// partitionBytes returns the smallest, median and largest memory of a
// partition.
func (cl *clusterLayout) partitionBytes() (lo, med, hi float64) {
	p := cl.partitions
	if len(p) == 0 {
		return 0, 0, 0
	}
	return p[0].bytes, p[len(p)/2].bytes, p[len(p)-1].bytes
}

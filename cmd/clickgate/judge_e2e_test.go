package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

// judgedAll waits until the judges of every partition of campaign have
// published past the end of its log: Stats on any node then holds every
// visit committed so far.
func judgedAll(t *testing.T, srv *redistest.Server, campaign string, partitions int) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for p := range partitions {
		tag := fmt.Sprintf("cg:{%s:%d}:", campaign, p)
		for {
			last, err := rdb.XRevRangeN(ctx, tag+"log", "+", "-", 1).Result()
			if err != nil {
				t.Fatal(err)
			}
			judged, err := rdb.Get(ctx, tag+"judged").Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			if len(last) == 0 || judged != "" && !streamIDLess(judged, last[0].ID) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %d of %q: judged up to %q, the log ends at %q after 30s", p, campaign, judged, last[0].ID)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func streamIDLess(a, b string) bool {
	var am, as, bm, bs uint64
	fmt.Sscanf(a, "%d-%d", &am, &as)
	fmt.Sscanf(b, "%d-%d", &bm, &bs)
	return am < bm || am == bm && as < bs
}

// waitServed waits until p serves code, created through another node: a
// HEAD, never counted as a visit.
func waitServed(t *testing.T, p *proc, code string) {
	t.Helper()
	probe := newClicker("127.0.9.9")
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		resp, err := probe.request(p, "HEAD", code)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 302 {
			return
		}
		if time.Since(start) > time.Second {
			t.Fatalf("link created on another node not served within 1s: %d", resp.StatusCode)
		}
	}
}

// TestRedisJudgeTakeover: two nodes on one Redis; the node whose judge
// holds the campaign's lease is SIGKILLed, and the other takes the lease
// over when it expires, judging on from the last checkpoint. Every visitor
// who got a 302, through either node, is counted exactly once, and the
// visitors of before the kill are duplicates after it.
func TestRedisJudgeTakeover(t *testing.T) {
	srv := faultRedis(t)
	a := faultServe(t, srv, t.TempDir())
	b := faultServe(t, srv, t.TempDir())
	code := a.setup(t)
	waitServed(t, b, code)
	cs := clickers(300)
	clickAll(t, a, code, cs[:100], 1)
	clickAll(t, b, code, cs[100:200], 1)
	judgedAll(t, srv, "spring", 1)

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	lease, err := rdb.Get(context.Background(), "cg:{spring:0}:lease").Result()
	if err != nil {
		t.Fatalf("no judge holds the lease: %v", err)
	}
	owner, survivor := a, b
	if strings.HasSuffix(lease, b.data) {
		owner, survivor = b, a
	} else if !strings.HasSuffix(lease, a.data) {
		t.Fatalf("lease %q held by neither node", lease)
	}
	owner.cmd.Process.Kill()
	<-owner.exited

	clickAll(t, survivor, code, cs[200:], 1)
	clickAll(t, survivor, code, cs[:200], 1)
	start := time.Now()
	// The lease expires within its TTL (10s); then the survivor judges.
	judgedAll(t, srv, "spring", 1)
	st := survivor.stats(t)
	t.Logf("taken over and judged in %s: %v", time.Since(start).Round(time.Millisecond), st)
	if q, d := statInt(t, st, "qualified"), statInt(t, st, "duplicates"); q != 300 || d != 200 {
		t.Fatalf("unexpected counts after the takeover; got qualified %d, duplicates %d; want 300 and 200", q, d)
	}
	if lease, err := rdb.Get(context.Background(), "cg:{spring:0}:lease").Result(); err != nil || !strings.HasSuffix(lease, survivor.data) {
		t.Fatalf("lease %q, %v after the takeover; want it held by the survivor", lease, err)
	}
}

// TestRedisGlobalVelocity: one address rotating User-Agents through two
// nodes gets at most --velocity-max qualified visits in the window, all
// nodes together, and a restart of both does not reset it: the judge of
// the campaign counts every node's visits, and keeps its count in its
// checkpoint.
func TestRedisGlobalVelocity(t *testing.T) {
	srv := faultRedis(t)
	da, db := t.TempDir(), t.TempDir()
	start := func() (*proc, *proc) {
		return faultServe(t, srv, da, "--velocity-max", "5"), faultServe(t, srv, db, "--velocity-max", "5")
	}
	a, b := start()
	code := a.setup(t)
	waitServed(t, b, code)
	c := newClicker("127.0.3.3")
	rotate := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			p := a
			if i%2 == 1 {
				p = b
			}
			ua := fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36", 100+i)
			resp, err := c.request(p, "GET", code, "User-Agent", ua)
			if err != nil || resp.StatusCode != 302 {
				t.Fatalf("click %d: %v, %v", i, resp, err)
			}
		}
	}
	rotate(0, 8) // 4 through each node: within each node's own limit
	judgedAll(t, srv, "spring", 1)
	if st := a.stats(t); statInt(t, st, "qualified") != 5 || statInt(t, st, "velocity") != 3 {
		t.Fatalf("unexpected counts; got %v; want 5 qualified and 3 velocity across both nodes", st)
	}
	a.stop(t)
	b.stop(t)
	a, b = start()
	rotate(8, 12)
	judgedAll(t, srv, "spring", 1)
	if st := b.stats(t); statInt(t, st, "qualified") != 5 || statInt(t, st, "velocity") != 7 {
		t.Fatalf("unexpected counts after a restart; got %v; want still 5 qualified, and 7 velocity", st)
	}
}

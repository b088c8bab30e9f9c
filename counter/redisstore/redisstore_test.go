package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/counter/storetest"
)

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	t.Run("Prefix", func(t *testing.T) {
		n := 0
		storetest.Run(t, func(t *testing.T) storetest.Opener {
			n++
			prefix := fmt.Sprintf("t%d", n)
			return func(p counter.DedupeParams) (counter.Store, error) {
				return Open(context.Background(), Options{URL: srv.URL(0), Params: p, Prefix: prefix, Judge: true, Partitions: 3})
			}
		})
	})
	t.Run("Cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
		n := 0
		storetest.Run(t, func(t *testing.T) storetest.Opener {
			n++
			prefix := fmt.Sprintf("t%d", n)
			return func(p counter.DedupeParams) (counter.Store, error) {
				return Open(context.Background(), Options{URL: c.URL(), Cluster: true, Params: p, Prefix: prefix, Judge: true, Partitions: 4})
			}
		})
	})
	t.Run("DB", func(t *testing.T) {
		db := 0
		storetest.Run(t, func(t *testing.T) storetest.Opener {
			db++ // default prefix, a database of its own
			url := srv.URL(db)
			return func(p counter.DedupeParams) (counter.Store, error) {
				return Open(context.Background(), Options{URL: url, Params: p, Judge: true})
			}
		})
	})
}

// env is a store on its own server, and a plain client to look inside.
type env struct {
	srv    *redistest.Server
	s      *Store
	rdb    *redis.Client
	params counter.DedupeParams
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	// always: TestUnavailable kills the server and counts on what it
	// acknowledged (see redistest.Start).
	srv := redistest.StartWith(t, redistest.Options{Args: []string{"--appendfsync", "always"}})
	o.URL = srv.URL(0)
	if o.Params == (counter.DedupeParams{}) {
		o.Params = storetest.Params(t)
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	t.Cleanup(func() { s.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return &env{srv: srv, s: s, rdb: rdb, params: o.Params}
}

func (e *env) commit(t *testing.T, visits ...counter.Visit) []counter.Reason {
	t.Helper()
	out := make([]counter.Reason, len(visits))
	if err := e.s.Commit(context.Background(), visits, out); err != nil {
		t.Fatalf("cannot commit: %s", err)
	}
	return out
}

func (e *env) total(t *testing.T, campaign, creator string) counter.Counts {
	t.Helper()
	days, err := e.s.Stats(context.Background(), campaign, creator)
	if err != nil {
		t.Fatalf("cannot read stats: %s", err)
	}
	return counter.Total(days)
}

func visit(campaign, creator string, key int, at time.Time) counter.Visit {
	v := counter.Visit{Campaign: campaign, Creator: creator, Key: storetest.Key(key)}
	v.SetWindow(at, 24*time.Hour)
	return v
}

// checkReasons checks Commit's answers: counter.Pending stands for any
// decision, which the test checks in Stats.
func checkReasons(t *testing.T, got []counter.Reason, want ...counter.Reason) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] && (got[i] != counter.Pending || want[i] == counter.Uncounted) {
			t.Fatalf("unexpected reasons; got %v; want %v", got, want)
		}
	}
}

var keyRE = regexp.MustCompile(`^cg:\{([^{}]+)\}:(campaigns|creators|links|version|changes|epoch|dedupe|judge|judges|log|lease|lease:token|checkpoint|judged|[nj]:[A-Za-z0-9_.-]+|users|clicks)$`)

func TestKeysShareHashTags(t *testing.T) {
	e := newEnv(t, Options{Judge: true, Partitions: 4})
	ctx := context.Background()
	now := time.Now()
	if err := e.s.PutCampaign(ctx, counter.Campaign{ID: "c1"}); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	if err := e.s.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "c1"}); err != nil {
		t.Fatalf("cannot put creator: %s", err)
	}
	if err := e.s.CreateLink(ctx, counter.Link{Code: "AB3KX9QZ", Campaign: "c1", Creator: "alice"}); err != nil {
		t.Fatalf("cannot create link: %s", err)
	}
	var visits []counter.Visit
	creators := []string{"alice", "bob.b", "carol", "dave", "erin", "frank"}
	for i := range 100 {
		for j, c := range creators {
			// Visitor keys are keyed by creator: distinct per creator.
			visits = append(visits, visit("c1", c, j*1000+i, now), visit("c-2", c, j*1000+i, now))
		}
	}
	e.commit(t, visits...)
	for _, c := range creators {
		if got := e.total(t, "c1", c); got[counter.Qualified] != 100 {
			t.Fatalf("unexpected counts of %q; got %+v; want 100 qualified", c, got)
		}
	}
	if err := e.s.AddCounts(ctx, []counter.Count{{Campaign: "c1", Creator: "carol", Day: counter.DayOf(now), Reason: counter.Uncounted, N: 1}}); err != nil {
		t.Fatalf("cannot add counts: %s", err)
	}
	for i := range 50 {
		c := counter.Conversion{Campaign: "c1", Creator: "dave", UserID: fmt.Sprintf("user-%d", i), Click: fmt.Sprintf("%032x", i), Day: counter.DayOf(now)}
		if _, _, err := e.s.AttributeSignup(ctx, c); err != nil {
			t.Fatalf("cannot attribute %+v: %s", c, err)
		}
	}

	keys, err := e.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("cannot list keys: %s", err)
	}
	tags := map[string]int{}
	for _, k := range keys {
		m := keyRE.FindStringSubmatch(k)
		if m == nil {
			t.Fatalf("unexpected key %q", k)
		}
		switch name := m[2]; {
		case name == "users" || name == "clicks" || strings.HasPrefix(name, "n:"):
			// Every user and every click of a campaign in one slot: one
			// script checks both on one node of a cluster.
			if m[1] != "c1:0" {
				t.Fatalf("unexpected key %q outside {c1:0}", k)
			}
		case strings.HasPrefix(name, "j:"):
			// A creator's judged counters are in the hash tag of its
			// partition, with the log, the lease and the checkpoint.
			campaign, p, _ := strings.Cut(m[1], ":")
			if want := fmt.Sprint(judge.Partition(campaign, name[2:], 4)); p != want {
				t.Fatalf("judged counters %q in partition %s; want %s", k, p, want)
			}
		case name == "log" || name == "lease" || name == "lease:token" || name == "checkpoint" || name == "judged":
			if m[1] == "catalog" {
				t.Fatalf("unexpected partition key %q in the catalog's hash tag", k)
			}
		default:
			if m[1] != "catalog" {
				t.Fatalf("unexpected catalog key %q outside {catalog}", k)
			}
		}
		tags[m[1]]++
	}
	if tags["catalog"] != 9 {
		t.Fatalf("unexpected number of catalog keys; got %d; want 9 in %q", tags["catalog"], keys)
	}
	// Six creators spread over the four partitions of each campaign.
	if len(tags) < 1+2*3 {
		t.Fatalf("unexpected hash tags; got %d: %v; want {catalog} and most partitions of 2 campaigns", len(tags), tags)
	}
}

func TestCommitAfterScriptFlush(t *testing.T) {
	e := newEnv(t, Options{Judge: true})
	ctx := context.Background()
	now := time.Now()
	checkReasons(t, e.commit(t, visit("c1", "alice", 1, now), visit("c1", "alice", 2, now)),
		counter.Qualified, counter.Qualified)
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("cannot flush scripts: %s", err)
	}
	checkReasons(t, e.commit(t, visit("c1", "alice", 1, now), visit("c1", "alice", 3, now), visit("c1", "alice", 2, now), visit("c1", "alice", 3, now)),
		counter.Duplicate, counter.Qualified, counter.Duplicate, counter.Duplicate)
	got := e.total(t, "c1", "alice")
	if got[counter.Qualified] != 3 || got[counter.Duplicate] != 3 || got.Clicks() != 6 {
		t.Fatalf("unexpected counts after SCRIPT FLUSH; got %+v; want qualified=3 duplicates=3 clicks=6", got)
	}
	// CreateLink runs a script too.
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("cannot flush scripts: %s", err)
	}
	if err := e.s.CreateLink(ctx, counter.Link{Code: "AB3KX9QZ", Campaign: "c1", Creator: "alice"}); err != nil {
		t.Fatalf("cannot create link after SCRIPT FLUSH: %s", err)
	}
	if v, err := e.s.Version(ctx); err != nil || v != 1 {
		t.Fatalf("unexpected version; got %d, %v; want 1", v, err)
	}
}

func TestUnavailable(t *testing.T) {
	ms := 300 * time.Millisecond
	e := newEnv(t, Options{DialTimeout: ms, ReadTimeout: ms, WriteTimeout: ms, Judge: true})
	ctx := context.Background()
	now := time.Now()
	d := counter.DayOf(now)
	checkReasons(t, e.commit(t, visit("c1", "alice", 1, now)), counter.Qualified)

	e.srv.Stop()
	visits := []counter.Visit{visit("c1", "alice", 1, now), visit("c1", "alice", 2, now), visit("c2", "bob", 3, now)}
	out := []counter.Reason{counter.Qualified, counter.Duplicate, counter.Qualified}
	err := e.s.Commit(ctx, visits, out)
	if !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("unexpected error of Commit on a stopped server; got %v; want ErrUnavailable", err)
	}
	checkReasons(t, out, counter.Uncounted, counter.Uncounted, counter.Uncounted)
	f := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, counter.ErrUnavailable) {
			t.Fatalf("unexpected error of %s on a stopped server; got %v; want ErrUnavailable", what, err)
		}
	}
	f("AddCounts", e.s.AddCounts(ctx, []counter.Count{{Campaign: "c1", Creator: "alice", Day: d, Reason: counter.Uncounted, N: 3}}))
	_, err = Open(ctx, Options{URL: e.srv.URL(0), Params: e.params, DialTimeout: ms})
	f("Open", err)
	// A deadline that ends first is unavailability too (and keeps this test
	// short: a refused connection is dialed again a few times).
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = e.s.Stats(short, "c1", "alice")
	f("Stats", err)
	_, err = e.s.Catalog(short)
	f("Catalog", err)
	_, err = e.s.Version(short)
	f("Version", err)
	_, err = e.s.Link(short, "AB3KX9QZ")
	f("Link", err)
	f("PutCampaign", e.s.PutCampaign(short, counter.Campaign{ID: "c1"}))
	f("CreateLink", e.s.CreateLink(short, counter.Link{Code: "AB3KX9QZ"}))

	// Back up: the same store works again, the first visit is still known
	// (append-only file) and the script is loaded again.
	e.srv.Restart(t)
	checkReasons(t, e.commit(t, visit("c1", "alice", 1, now), visit("c1", "alice", 2, now)),
		counter.Duplicate, counter.Qualified)
	if err := e.s.AddCounts(ctx, []counter.Count{{Campaign: "c1", Creator: "alice", Day: d, Reason: counter.Uncounted, N: 3}}); err != nil {
		t.Fatalf("cannot add counts after restart: %s", err)
	}
	got := e.total(t, "c1", "alice")
	if got[counter.Qualified] != 2 || got[counter.Duplicate] != 1 || got[counter.Uncounted] != 3 {
		t.Fatalf("unexpected counts after restart; got %+v; want qualified=2 duplicates=1 uncounted=3", got)
	}
}

func TestOpenErrors(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	p := storetest.Params(t)
	f := func(o Options, want string) {
		t.Helper()
		s, err := Open(ctx, o)
		if err == nil {
			s.Close()
			t.Fatalf("unexpected success opening %+v", o)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("unexpected error for %+v; got %q; want it to contain %q", o, err, want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error quotes the password: %q", err)
		}
	}
	f(Options{Params: p}, "redis URL is required")
	f(Options{URL: "http://" + srv.Addr(), Params: p}, "cannot parse redis URL")
	f(Options{URL: "redis://u:s3cret@" + srv.Addr() + "/x", Params: p}, "invalid database number")
	f(Options{URL: "redis://u:s3cret@" + srv.Addr() + "/0?nope=1", Params: p}, "cannot parse redis URL")
	f(Options{URL: "redis://u:s3cret@%zz/0", Params: p}, "cannot parse redis URL")
	f(Options{URL: srv.URL(0), Params: p, Prefix: "a{b"}, "must not contain")
	f(Options{URL: srv.URL(0)}, "invalid dedupe parameters")
	f(Options{URL: srv.URL(0), Params: counter.DedupeParams{Slots: 1, M: 1<<32 + 1, K: 3}}, "invalid dedupe parameters")

	s, err := Open(ctx, Options{URL: srv.URL(0), Params: p})
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	s.Close()
	other := p
	other.K++
	_, err = Open(ctx, Options{URL: srv.URL(0), Params: other})
	if !errors.Is(err, counter.ErrParamsMismatch) || !strings.Contains(err.Error(), fmt.Sprintf("%q", p.String())) ||
		!strings.Contains(err.Error(), fmt.Sprintf("%q", other.String())) {
		t.Fatalf("unexpected error for other parameters; got %v; want ErrParamsMismatch quoting %q and %q", err, p, other)
	}
	// Another prefix is another store, with parameters of its own.
	s, err = Open(ctx, Options{URL: srv.URL(0), Params: other, Prefix: "other"})
	if err != nil {
		t.Fatalf("cannot open store with another prefix: %s", err)
	}
	s.Close()
}

func TestStatsSkipsUnknownReasons(t *testing.T) {
	e := newEnv(t, Options{Judge: true})
	ctx := context.Background()
	v := visit("c1", "alice", 1, time.Date(2026, 5, 11, 10, 0, 0, 0, time.UTC))
	e.commit(t, v)
	key := "cg:{c1:0}:j:alice"
	other := "cg:{c1:3}:n:alice"
	// A newer version's reason, and a day with nothing known in it.
	e.rdb.HIncrBy(ctx, key, "2026-05-11:refunded", 4)
	e.rdb.HIncrBy(ctx, other, "2026-05-12:refunded", 1)
	e.rdb.HIncrBy(ctx, other, "2026-05-11:duplicates", 2)
	days, err := e.s.Stats(ctx, "c1", "alice")
	if err != nil {
		t.Fatalf("cannot read stats: %s", err)
	}
	want := counter.Counts{counter.Qualified: 1, counter.Duplicate: 2}
	if len(days) != 1 || days[0].Day != v.Day || days[0].Counts != want {
		t.Fatalf("unexpected stats; got %+v; want %v on %v", days, want, v.Day)
	}

	e.rdb.HIncrBy(ctx, other, "yesterday:qualified", 1)
	if _, err := e.s.Stats(ctx, "c1", "alice"); err == nil || !strings.Contains(err.Error(), `"yesterday:qualified"`) {
		t.Fatalf("unexpected error for a malformed field; got %v; want it quoted", err)
	}
}

func TestCommitEmptyAndZeroCounts(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	if err := e.s.Commit(ctx, nil, nil); err != nil {
		t.Fatalf("cannot commit nothing: %s", err)
	}
	d := counter.DayOf(time.Now())
	if err := e.s.AddCounts(ctx, []counter.Count{{Campaign: "c1", Creator: "alice", Day: d, Reason: counter.Duplicate}}); err != nil {
		t.Fatalf("cannot add zero counts: %s", err)
	}
	if days, err := e.s.Stats(ctx, "c1", "alice"); err != nil || len(days) != 0 {
		t.Fatalf("unexpected stats after adding zero; got %+v, %v; want none", days, err)
	}
	err := e.s.AddCounts(ctx, []counter.Count{{Campaign: "c1", Creator: "alice", Day: d, Reason: counter.NumReasons, N: 1}})
	if err == nil {
		t.Fatalf("unexpected success adding counts of an unknown reason")
	}
	// A code with ':' would share a link's counter hash with another.
	err = e.s.AddCounts(ctx, []counter.Count{{Campaign: "c1", Creator: "alice", Link: "a:b", Day: d, Reason: counter.Bot, N: 1}})
	if err == nil {
		t.Fatalf("unexpected success adding counts of a link with ':'")
	}
}

func TestEmptyCatalog(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	cat, err := e.s.Catalog(ctx)
	if err != nil {
		t.Fatalf("cannot read an empty catalog: %s", err)
	}
	if cat.Version != 0 || len(cat.Campaigns)+len(cat.Creators)+len(cat.Links) != 0 {
		t.Fatalf("unexpected empty catalog; got %+v; want version 0 and nothing in it", cat)
	}
	if _, err := e.s.Creator(ctx, "c1", "nope"); !errors.Is(err, counter.ErrNotFound) {
		t.Fatalf("unexpected error for an unknown creator; got %v; want ErrNotFound", err)
	}
	if err := e.s.PutCampaign(ctx, counter.Campaign{ID: "b"}); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	if err := e.s.PutCampaign(ctx, counter.Campaign{ID: "a"}); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	cat, err = e.s.Catalog(ctx)
	if err != nil || cat.Version != 2 || len(cat.Campaigns) != 2 || cat.Campaigns[0].ID != "a" || cat.Campaigns[1].ID != "b" {
		t.Fatalf("unexpected catalog; got %+v, %v; want version 2 with campaigns a, b", cat, err)
	}
}

// TestEvictionPolicy: a Redis that may evict any key when its memory is
// full is refused at Open and fails Ping (so /readyz), on a single Redis
// and on any master of a cluster; noeviction and the volatile-* policies
// are taken. A Redis at its maxmemory, which refuses writes, fails Ping.
func TestEvictionPolicy(t *testing.T) {
	ctx := context.Background()
	p := storetest.Params(t)
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	for _, tc := range []struct {
		name string
		url  string
		set  func(policy string) // on one server
	}{
		{"single", srv.URL(0), func(policy string) {
			if err := admin.ConfigSet(ctx, "maxmemory-policy", policy).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"cluster", c.URL(), func(policy string) {
			m := redis.NewClient(&redis.Options{Addr: c.Masters()[2].Addr()})
			defer m.Close()
			if err := m.ConfigSet(ctx, "maxmemory-policy", policy).Err(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{URL: tc.url, Cluster: tc.name == "cluster", Params: p}
			for _, policy := range []string{"allkeys-lru", "allkeys-lfu", "allkeys-random"} {
				tc.set(policy)
				s, err := Open(ctx, o)
				if err == nil {
					s.Close()
				}
				if !errors.Is(err, ErrEvicting) || !strings.Contains(err.Error(), "maxmemory-policy "+policy) {
					t.Fatalf("unexpected Open on a Redis with maxmemory-policy %s; got %v; want ErrEvicting naming it", policy, err)
				}
			}
			for _, policy := range []string{"noeviction", "volatile-lru", "volatile-ttl"} {
				tc.set(policy)
				s, err := Open(ctx, o)
				if err != nil {
					t.Fatalf("cannot open a store on a Redis with maxmemory-policy %s: %v", policy, err)
				}
				tc.set("allkeys-lru")
				if err := s.Ping(ctx); !errors.Is(err, ErrEvicting) {
					t.Fatalf("unexpected Ping once the policy is allkeys-lru; got %v; want ErrEvicting", err)
				}
				tc.set(policy)
				if err := s.Ping(ctx); err != nil {
					t.Fatalf("unexpected Ping with maxmemory-policy %s: %v", policy, err)
				}
				s.Close()
			}
		})
	}
	// Under noeviction, a Redis at its maxmemory refuses writes: not ready.
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{URL: srv.URL(0), Params: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "is full") {
		t.Fatalf("unexpected Ping of a Redis at its maxmemory; got %v; want it full", err)
	}
	// So is one under volatile-lru with no key with a time to live left
	// to evict: it refuses writes too.
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "volatile-lru").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "is full") {
		t.Fatalf("unexpected Ping of a Redis at its maxmemory under volatile-lru; got %v; want it full", err)
	}
	if err := admin.Set(ctx, "cg-test-write", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Fatalf("unexpected write to the full Redis; got %v; want it refused with OOM", err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("unexpected Ping of a Redis without a maxmemory: %v", err)
	}
}

// TestWarnsWithoutAOF: a Redis without an append-only file loses what it
// acknowledged since its last snapshot when it restarts, visits included:
// Open says so, and says nothing with one.
func TestWarnsWithoutAOF(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	for _, aof := range []string{"yes", "no"} {
		if err := admin.ConfigSet(ctx, "appendonly", aof).Err(); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		s, err := Open(ctx, Options{URL: srv.URL(0), Params: storetest.Params(t), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if warned := strings.Contains(logs.String(), "redis keeps no append-only file"); warned != (aof == "no") {
			t.Fatalf("appendonly %s: unexpected warning %v; logs:\n%s", aof, warned, logs.String())
		}
	}
}

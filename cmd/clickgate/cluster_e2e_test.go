package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter/judge"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// The cluster tests run the real binary as several edges on a real Redis
// Cluster (redistest.StartCluster): each campaign's visits go to
// clusterPartitions logs, one hash tag each, spread over the masters, and
// each partition is judged by whichever edge holds its lease. Every visitor
// clicks from its own loopback address and follows one link, so a
// creator's qualified visits must equal its distinct visitors.

const (
	clusterPartitions = 6
	// The edges share their admin token and app key, as a fleet behind
	// one admin endpoint would.
	clusterAdminToken = "cluster-admin-token-0123456789abcdef"
	clusterAppKey     = "cluster-app-key-0123456789abcdef0123"
	// maxClicksPerVisitor stays well under --velocity-max (30 per 10 min
	// per address) and --budget-network (20 qualified per address a day).
	maxClicksPerVisitor = 7
)

// clusterServe starts an edge on cluster c with --partitions
// clusterPartitions and the shared secrets.
func clusterServe(t *testing.T, c *redistest.Cluster, args ...string) *proc {
	t.Helper()
	data := t.TempDir()
	// startServe reads the token from the data directory, where serve
	// keeps it when it generates one.
	for name, v := range map[string]string{"admin-token": clusterAdminToken, "app-key": clusterAppKey} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return startServe(t, data, append(append(clusterStoreArgs(c), "--click-secret", e2eSecret,
		"--admin-token", clusterAdminToken, "--app-key", clusterAppKey), args...)...)
}

func clusterStoreArgs(c *redistest.Cluster) []string {
	return []string{"--redis", c.URL(), "--redis-cluster", "--partitions", strconv.Itoa(clusterPartitions)}
}

// clusterLink is a link of a creator of campaign spring.
type clusterLink struct {
	creator, code string
}

// clusterCreators names n creators of campaign whose visits go to every
// one of clusterPartitions partitions, the first clusterPartitions
// creators one per partition.
func clusterCreators(campaign string, n int) []string {
	var creators []string
	seen := map[uint32]bool{}
	for i := 0; len(seen) < clusterPartitions; i++ {
		name := fmt.Sprintf("creator%d", i)
		if p := judge.Partition(campaign, name, clusterPartitions); !seen[p] {
			seen[p] = true
			creators = append(creators, name)
		}
	}
	for i := 0; len(creators) < n; i++ {
		if name := fmt.Sprintf("extra%d", i); !slices.Contains(creators, name) {
			creators = append(creators, name)
		}
	}
	return creators
}

// clusterSetup creates campaign spring, its creators and perCreator links
// each through p, and waits until every other edge serves every link: a
// HEAD each, counted as one prefetch of the link's creator.
func clusterSetup(t *testing.T, p *proc, others []*proc, creators []string, perCreator int) []clusterLink {
	t.Helper()
	now := time.Now().UTC()
	p.mustCall(t, "PUT", "/v1/campaigns/spring", map[string]any{
		"name": "Spring", "starts_at": now.Add(-time.Hour), "ends_at": now.Add(6 * 7 * 24 * time.Hour),
		"eligible_countries": []string{"US"}}, 201)
	var links []clusterLink
	for _, cr := range creators {
		p.mustCall(t, "PUT", "/v1/creators/"+cr, map[string]any{"campaign": "spring", "handle": "@" + cr, "country": "US"}, 201)
		for range perCreator {
			out := p.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "spring", "creator": cr,
				"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
			links = append(links, clusterLink{cr, out["code"].(string)})
		}
	}
	for _, o := range others {
		for _, l := range links {
			waitServed(t, o, l.code)
		}
	}
	return links
}

// clickLink follows l once from c through p and checks the redirect and
// its click id.
func clickLink(c *clicker, p *proc, campaign string, l clusterLink) error {
	req, _ := http.NewRequest("GET", "http://"+p.public+"/"+l.code, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("click from %s on %s: %w", c.ip, p.public, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 302 {
		return fmt.Errorf("unexpected status from %s on %s; got %d; want 302", c.ip, p.public, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	id, ok := strings.CutPrefix(loc, "https://app.example.com/join?"+redirect.DefaultClickParam+"=")
	if !ok {
		return fmt.Errorf("unexpected Location %q", loc)
	}
	_, key := redirect.DeriveKeys(p.secret)
	claims, err := clickid.NewSigner(key).Parse([]byte(id))
	if err != nil {
		return fmt.Errorf("invalid click id %q: %w", id, err)
	}
	if claims.Campaign != campaign || claims.Creator != l.creator || claims.Link != l.code {
		return fmt.Errorf("unexpected click id claims %+v for link %+v", claims, l)
	}
	return nil
}

// clusterPerson returns a browser at ip that opens a connection per click, so that
// thousands of visitors hold no idle connections.
func clusterPerson(ip string) *clicker {
	c := newClicker(ip)
	c.client.Transport.(*http.Transport).DisableKeepAlives = true
	return c
}

// clusterVisitorIP is visitor i's own loopback address: 250 a /24, under
// --budget-block's 300 qualified visits a day.
func clusterVisitorIP(base, i int) string {
	return fmt.Sprintf("127.%d.%d.%d", base+i/62500, i/250%250, 1+i%250)
}

// keySlot is the Redis Cluster hash slot of key: CRC16 of its hash tag (the
// part between the first '{' and the next '}', if not empty) or of the
// whole key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16 // CRC-16/XMODEM
	for _, c := range []byte(key) {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}

func partitionSlot(campaign string, p int) int {
	return keySlot(fmt.Sprintf("cg:{%s:%d}:log", campaign, p))
}

// slotMaster returns the node that serves slot, as the cluster says.
func slotMaster(t *testing.T, c *redistest.Cluster, slot int) *redistest.Node {
	t.Helper()
	slots, err := c.Client(t).ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range slots {
		if slot >= r.Start && slot <= r.End {
			for _, n := range c.Nodes() {
				if n.Addr() == r.Nodes[0].Addr {
					return n
				}
			}
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return nil
}

// partitionsByMaster returns the partitions of campaign by the address of
// the master that serves them.
func partitionsByMaster(t *testing.T, c *redistest.Cluster, campaign string) map[string][]int {
	t.Helper()
	m := map[string][]int{}
	for p := range clusterPartitions {
		addr := slotMaster(t, c, partitionSlot(campaign, p)).Addr()
		m[addr] = append(m[addr], p)
	}
	return m
}

// clusterJudgedAll waits until the judge of every partition of campaign
// has published past the end of its log, read through a cluster client:
// Stats on any edge then holds every visit appended so far.
func clusterJudgedAll(t *testing.T, c *redistest.Cluster, campaign string, timeout time.Duration) {
	t.Helper()
	rdb := c.Client(t)
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for p := range clusterPartitions {
		tag := fmt.Sprintf("cg:{%s:%d}:", campaign, p)
		for {
			last, err := rdb.XRevRangeN(ctx, tag+"log", "+", "-", 1).Result()
			var judged string
			if err == nil {
				judged, err = rdb.Get(ctx, tag+"judged").Result()
				if errors.Is(err, redis.Nil) {
					err = nil
				}
			}
			if err == nil && (len(last) == 0 || judged != "" && !streamIDLess(judged, last[0].ID)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %d of %q not judged to the end of its log within %s: judged %q, log %v, err %v", p, campaign, timeout, judged, last, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// clusterStats reads every creator's stats through every edge, twice: the
// first round makes each edge add the duplicates it tallied in memory. It
// fails unless the second round is the same through every edge, and
// returns it.
func clusterStats(t *testing.T, edges []*proc, campaign string, creators []string) map[string]map[string]any {
	t.Helper()
	get := func(p *proc, cr string) map[string]any {
		return p.mustCall(t, "GET", "/v1/creators/"+cr+"/stats?campaign="+campaign, nil, 200)
	}
	for _, p := range edges {
		for _, cr := range creators {
			get(p, cr)
		}
	}
	all := map[string]map[string]any{}
	for _, cr := range creators {
		want := get(edges[0], cr)
		for _, p := range edges[1:] {
			if got := get(p, cr); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("unexpected stats of %s through edge %s; got %v; want %v, as through edge %s", cr, p.admin, got, want, edges[0].admin)
			}
		}
		all[cr] = want
	}
	return all
}

// flushSummary is clickgate flush's answer, and POST /v1/flush's.
type flushSummary struct {
	Seq      uint64   `json:"seq"`
	Creators int      `json:"creators"`
	Sealed   []string `json:"sealed"`
	LastSeq  uint64   `json:"last_seq"`
	Head     string   `json:"head"`
}

func runFlush(t *testing.T, args ...string) flushSummary {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"flush"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var s flushSummary
	if err != nil || json.Unmarshal(out, &s) != nil {
		t.Fatalf("clickgate flush %v failed: %v\n%s%s", args, err, out, stderr.String())
	}
	return s
}

func adminFlush(t *testing.T, p *proc) flushSummary {
	t.Helper()
	out := p.mustCall(t, "POST", "/v1/flush", nil, 200)
	b, _ := json.Marshal(out)
	var s flushSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestClusterEdges: three edges on a 3-master cluster, a campaign whose
// creators' partitions cover every master, 1,000 visitors clicking 1 to 7
// times each through random edges. Every click is redirected; once the
// judges have published everything, stats are exact and the same through
// every edge. Then the flushing edge moves the totals into its ledger, once:
// a second flush, through the CLI and the admin API, then one by the CLI on
// the cluster itself with the edge stopped, write nothing; ledger verify
// agrees with the store, and a campaign that ended is sealed and paid out
// from the ledger.
func TestClusterEdges(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	// a flushes the store into its ledger, by hand: POST /v1/flush.
	a := clusterServe(t, c, "--flush-interval", "1h")
	b := clusterServe(t, c, "--flush-interval", "0")
	e := clusterServe(t, c, "--flush-interval", "0")
	edges := []*proc{a, b, e}
	creators := clusterCreators("spring", 8)
	links := clusterSetup(t, a, []*proc{b, e}, creators, 2)
	spread := partitionsByMaster(t, c, "spring")
	t.Logf("partitions of spring by master: %v; creators by partition: %v", spread, creatorPartitions("spring", creators))
	if len(spread) != 3 {
		t.Fatalf("the partitions of spring are on %d masters; want all 3", len(spread))
	}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	type job struct{ visitor, edge int }
	const visitors = 1000
	var jobs []job
	for v := range visitors {
		for range 1 + rng.IntN(maxClicksPerVisitor) {
			jobs = append(jobs, job{v, rng.IntN(len(edges))})
		}
	}
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	people := make([]*clicker, visitors)
	for v := range people {
		people[v] = clusterPerson(clusterVisitorIP(40, v))
	}
	start := time.Now()
	work := make(chan job)
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for j := range work {
				if err := clickLink(people[j.visitor], edges[j.edge], "spring", links[j.visitor%len(links)]); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	clicked := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d of %d clicks were not redirected (seed %d): %v", len(errs), len(jobs), seed, errs[:min(5, len(errs))])
	}
	clusterJudgedAll(t, c, "spring", 30*time.Second)
	judged := time.Since(start) - clicked

	// What each creator must show: its visitors, its clicks, and one
	// prefetch per link and edge that waited for it to be served.
	type want struct{ visitors, clicks int }
	wants := map[string]*want{}
	for _, cr := range creators {
		wants[cr] = &want{clicks: 2 * (len(edges) - 1)}
	}
	for v := range visitors {
		wants[links[v%len(links)].creator].visitors++
	}
	for _, j := range jobs {
		wants[links[j.visitor%len(links)].creator].clicks++
	}
	stats := clusterStats(t, edges, "spring", creators)
	var qualified int
	for _, cr := range creators {
		st, w := stats[cr], wants[cr]
		if statInt(t, st, "qualified") != w.visitors || statInt(t, st, "clicks") != w.clicks ||
			statInt(t, st, "prefetches") != 2*(len(edges)-1) ||
			statInt(t, st, "duplicates") != w.clicks-w.visitors-2*(len(edges)-1) {
			t.Fatalf("unexpected stats of %s (seed %d); got %v; want qualified %d (its visitors), clicks %d, prefetches %d, the rest duplicates",
				cr, seed, st, w.visitors, w.clicks, 2*(len(edges)-1))
		}
		qualified += w.visitors
	}
	t.Logf("%d clicks of %d visitors through 3 edges in %s, judged %s later; %d qualified, stats the same through every edge",
		len(jobs), visitors, clicked.Round(time.Millisecond), judged.Round(time.Millisecond), qualified)

	// The ledger, exactly once.
	ledgerDir := filepath.Join(a.data, "ledger")
	first := adminFlush(t, a)
	if first.Seq == 0 || first.Creators != len(creators) {
		t.Fatalf("unexpected first flush; got %+v; want a record of %d creators", first, len(creators))
	}
	checkLedger(t, ledgerDir, a, creators)
	records := len(ledgerRecords(t, ledgerDir))
	again := runFlush(t, "--data", a.data, "--admin-url", "http://"+a.admin)
	if again.Seq != 0 || again.Creators != 0 || again.LastSeq != first.LastSeq || again.Head != first.Head {
		t.Fatalf("a second flush through clickgate flush changed the ledger; got %+v after %+v", again, first)
	}

	// A campaign that ends within seconds is sealed once ended, and paid
	// from the ledger.
	end := time.Now().UTC().Add(4 * time.Second).Truncate(time.Second)
	a.mustCall(t, "PUT", "/v1/campaigns/flash", map[string]any{"starts_at": time.Now().UTC().Add(-time.Hour), "ends_at": end,
		"eligible_countries": []string{"US"}, "visit_block_size": 1, "visit_block_reward_cents": 10, "signup_grace": "0s"}, 201)
	a.mustCall(t, "PUT", "/v1/creators/flashy", map[string]any{"campaign": "flash", "handle": "@flashy", "country": "US"}, 201)
	flash := clusterLink{"flashy", "flashy-link"}
	a.mustCall(t, "POST", "/v1/links", map[string]any{"campaign": "flash", "creator": flash.creator, "code": flash.code,
		"destinations": map[string]string{"default": "https://app.example.com/join"}}, 201)
	for _, p := range edges[1:] {
		waitServed(t, p, flash.code)
	}
	const flashVisitors = 30
	for v := range flashVisitors {
		if err := clickLink(clusterPerson(clusterVisitorIP(45, v)), edges[v%len(edges)], "flash", flash); err != nil {
			t.Fatal(err)
		}
	}
	if time.Now().After(end) {
		t.Fatalf("the flash campaign ended before its visitors clicked: the machine is too slow for this test")
	}
	clusterJudgedAll(t, c, "flash", 30*time.Second)
	if st := clusterStats(t, edges, "flash", []string{flash.creator})[flash.creator]; statInt(t, st, "qualified") != flashVisitors {
		t.Fatalf("unexpected stats of the flash campaign; got %v; want %d qualified", st, flashVisitors)
	}
	time.Sleep(time.Until(end.Add(100 * time.Millisecond)))
	sealed := adminFlush(t, a)
	if !slices.Equal(sealed.Sealed, []string{"flash"}) || sealed.Creators != 1 {
		t.Fatalf("unexpected flush after the end of flash; got %+v; want flashy's totals and flash sealed", sealed)
	}
	if again := adminFlush(t, a); again.Seq != 0 || len(again.Sealed) != 0 || again.LastSeq != sealed.LastSeq {
		t.Fatalf("a second POST /v1/flush changed the ledger; got %+v after %+v", again, sealed)
	}
	out, err := ledgerCLI(a, "payouts", []string{"--click-secret", e2eSecret}, "--campaign", "flash", "--format", "json")
	var st struct {
		Rows []struct {
			CreatorID       string `json:"creator_id"`
			QualifiedVisits int64  `json:"qualified_visits"`
			CappedCents     int64  `json:"capped_cents"`
		}
	}
	if err != nil || json.Unmarshal(out, &st) != nil || len(st.Rows) != 1 ||
		st.Rows[0].CreatorID != flash.creator || st.Rows[0].QualifiedVisits != flashVisitors || st.Rows[0].CappedCents != 10*flashVisitors {
		t.Fatalf("unexpected clickgate payouts of flash: %v\n%s", err, out)
	}

	// a stops (its last flush writes nothing); clickgate flush then opens
	// the cluster and the ledger itself, and writes nothing either.
	records = len(ledgerRecords(t, ledgerDir))
	a.stop(t)
	if again := runFlush(t, append(clusterStoreArgs(c), "--click-secret", e2eSecret, "--data", a.data)...); again.Seq != 0 ||
		len(again.Sealed) != 0 || again.LastSeq != sealed.LastSeq {
		t.Fatalf("clickgate flush on the cluster changed the ledger; got %+v after %+v", again, sealed)
	}
	if n := len(ledgerRecords(t, ledgerDir)); n != records {
		t.Fatalf("unexpected ledger records after the stop and a flush; got %d; want %d", n, records)
	}
	checkLedger(t, ledgerDir, b, creators)
	t.Logf("ledger: %d records, flash sealed and paid %d cents", records, st.Rows[0].CappedCents)
}

func creatorPartitions(campaign string, creators []string) map[int][]string {
	m := map[int][]string{}
	for _, cr := range creators {
		p := int(judge.Partition(campaign, cr, clusterPartitions))
		m[p] = append(m[p], cr)
	}
	return m
}

// clusterLoad clicks the links through random edges, as new visitors and
// as visitors who come back, until halted, and records every answer.
type clusterLoad struct {
	edges []*proc
	links []clusterLink
	base  int // of the visitors' addresses, clusterVisitorIP
	stop  chan struct{}
	done  sync.WaitGroup
	sent  atomic.Int64

	mu       sync.Mutex
	visitors []clusterVisitor // visitor i follows links[i%len(links)]
	errs     []string
}

type clusterVisitor struct {
	clicks     int       // sent
	redirected int       // answered 302 with a valid click id
	first      time.Time // of the first 302
}

func startClusterLoad(edges []*proc, links []clusterLink, base, workers int) *clusterLoad {
	l := &clusterLoad{edges: edges, links: links, base: base, stop: make(chan struct{})}
	for w := range workers {
		l.done.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				v := l.pick(rng)
				err := clickLink(clusterPerson(clusterVisitorIP(l.base, v)), l.edges[rng.IntN(len(l.edges))], "spring", l.links[v%len(l.links)])
				l.sent.Add(1)
				l.mu.Lock()
				if err != nil {
					l.errs = append(l.errs, fmt.Sprintf("+%s %s", time.Now().Format("15:04:05.000"), err))
				} else {
					if l.visitors[v].redirected == 0 {
						l.visitors[v].first = time.Now()
					}
					l.visitors[v].redirected++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// pick returns a visitor who comes back one time in three, else a new one,
// and counts its click.
func (l *clusterLoad) pick(rng *rand.Rand) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.visitors); n > 0 && rng.IntN(3) == 0 {
		v := rng.IntN(n)
		if vs := &l.visitors[v]; vs.redirected > 0 && vs.clicks < maxClicksPerVisitor {
			vs.clicks++
			return v
		}
	}
	l.visitors = append(l.visitors, clusterVisitor{clicks: 1})
	return len(l.visitors) - 1
}

// waitSent waits until n more clicks were sent than when it was called.
func (l *clusterLoad) waitSent(t *testing.T, n int64) {
	t.Helper()
	want := l.sent.Load() + n
	for deadline := time.Now().Add(time.Minute); l.sent.Load() < want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d clicks sent within a minute", l.sent.Load(), want)
		}
	}
}

// halt stops the load and fails on any click not redirected.
func (l *clusterLoad) halt(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.done.Wait()
	if len(l.errs) > 0 {
		t.Fatalf("%d of %d clicks were not redirected: %v", len(l.errs), l.sent.Load(), l.errs[:min(5, len(l.errs))])
	}
}

// byCreator returns, for each creator, its visitors who got a 302 and the
// clicks sent on its links.
func (l *clusterLoad) byCreator() (visitors, clicks map[string]int) {
	visitors, clicks = map[string]int{}, map[string]int{}
	for i, v := range l.visitors {
		cr := l.links[i%len(l.links)].creator
		clicks[cr] += v.clicks
		if v.redirected > 0 {
			visitors[cr]++
		}
	}
	return visitors, clicks
}

// TestClusterFailover: 3 masters with a replica each, 2 edges under load.
// A master that serves partitions of the campaign is killed (SIGKILL) and
// its replica promoted; every click keeps being redirected (what cannot be
// committed in --commit-timeout is spooled and shipped later), and the
// edges find the promoted replica: their spools empty within the 20 s
// that drained gives them after the load. Once the judges have published
// too, each creator's qualified visits are compared with its visitors who
// got a 302: none doubled; lost, reported, are the visits the dead master
// acknowledged and had not replicated yet (replication is asynchronous),
// bounded here by the visitors who got their first 302 in the second
// before the kill. With --redis-replica-acks 1 none is lost: an append
// counts once the master's replica has it, and the promoted replica takes
// appends again once the killed master is back as its replica (until
// then they wait in the spools).
func TestClusterFailover(t *testing.T) {
	t.Run("async", func(t *testing.T) { testClusterFailover(t, 0) })
	t.Run("replica-acks", func(t *testing.T) { testClusterFailover(t, 1) })
}

func testClusterFailover(t *testing.T, acks int) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Replicas: 1})
	args := []string{"--flush-interval", "0", "--commit-timeout", faultCommitTimeout.String()}
	if acks > 0 {
		args = append(args, "--redis-replica-acks", strconv.Itoa(acks), "--redis-replica-timeout", "1s")
	}
	a := clusterServe(t, c, args...)
	b := clusterServe(t, c, args...)
	edges := []*proc{a, b}
	creators := clusterCreators("spring", clusterPartitions)
	links := clusterSetup(t, a, []*proc{b}, creators, 1)
	spread := partitionsByMaster(t, c, "spring")
	victim := slotMaster(t, c, partitionSlot("spring", 0))
	if len(c.ReplicasOf(victim)) == 0 {
		t.Fatalf("master %s has no replica", victim.Addr())
	}

	l := startClusterLoad(edges, links, 60, 8)
	l.waitSent(t, 300)
	victim.Stop() // SIGKILL
	killed := time.Now()
	promoted := c.WaitFailover(t, victim)
	failover := time.Since(killed)
	if acks > 0 {
		victim.Restart(t) // back as the promoted replica's replica
		c.WaitState(t)
	}
	l.waitSent(t, 300)
	l.halt(t)

	var spooled, replayed float64
	for _, p := range edges {
		m := p.drained(t)
		spooled += m["clickgate_visits_spooled_total"]
		replayed += m["clickgate_visits_replayed_total"]
		if n := lost(m); n != 0 {
			t.Fatalf("edge %s lost %v visits: neither committed nor spooled", p.admin, n)
		}
	}
	clusterJudgedAll(t, c, "spring", time.Minute)
	recovered := time.Since(killed)
	stats := clusterStats(t, edges, "spring", creators)
	visitors, clicks := l.byCreator()
	var recent int // visitors whose first 302 came in the second before the kill
	for _, v := range l.visitors {
		if v.redirected > 0 && v.first.After(killed.Add(-time.Second)) && v.first.Before(killed) {
			recent++
		}
	}
	var lostVisits, doubled, qualified, redirected, sent, counted int
	for _, cr := range creators {
		q, v := statInt(t, stats[cr], "qualified"), visitors[cr]
		qualified += q
		redirected += v
		sent += clicks[cr]
		counted += statInt(t, stats[cr], "clicks") - statInt(t, stats[cr], "prefetches")
		if q > v {
			doubled += q - v
		} else {
			lostVisits += v - q
		}
	}
	t.Logf("partitions by master %v; killed %s (partition 0), %s promoted in %s; spools empty and every partition judged %s after the kill",
		spread, victim.Addr(), promoted.Addr(), failover.Round(time.Millisecond), recovered.Round(time.Millisecond))
	t.Logf("%d clicks sent, all redirected, %d counted; %v visits spooled, %v replayed; %d visitors got a 302, %d qualified: %d lost, %d doubled (%d visitors had their first 302 in the second before the kill)",
		sent, counted, spooled, replayed, redirected, qualified, lostVisits, doubled, recent)
	if doubled != 0 {
		t.Fatalf("%d visits were counted twice: %v", doubled, stats)
	}
	if lostVisits > recent || acks > 0 && lostVisits > 0 {
		t.Fatalf("%d acknowledged visits were lost (%d visitors were acknowledged in the second before the kill; replica acks %d)", lostVisits, recent, acks)
	}
}

// TestClusterReshard: while clicks flow through 2 edges, the slot of the
// hash tag of partition 0 (its log, lease, checkpoint and counters) moves
// to another master, key by key, as redis-cli --cluster reshard does
// (CLUSTER SETSLOT IMPORTING and MIGRATING, MIGRATE, SETSLOT NODE). No click
// fails, and the counts are exact.
func TestClusterReshard(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	args := []string{"--flush-interval", "0", "--commit-timeout", faultCommitTimeout.String()}
	a := clusterServe(t, c, args...)
	b := clusterServe(t, c, args...)
	edges := []*proc{a, b}
	creators := clusterCreators("spring", clusterPartitions)
	links := clusterSetup(t, a, []*proc{b}, creators, 1)
	slot := partitionSlot("spring", 0)
	src := slotMaster(t, c, slot)
	var dst *redistest.Node
	for _, m := range c.Masters() {
		if m != src {
			dst = m
			break
		}
	}

	l := startClusterLoad(edges, links, 70, 8)
	l.waitSent(t, 300)
	start := time.Now()
	moved := moveSlot(t, c, slot, src, dst)
	took := time.Since(start)
	l.waitSent(t, 300)
	l.halt(t)
	c.WaitState(t)
	if got := slotMaster(t, c, slot); got != dst {
		t.Fatalf("slot %d is served by %s after the move; want %s", slot, got.Addr(), dst.Addr())
	}

	var spooled float64
	for _, p := range edges {
		m := p.drained(t)
		spooled += m["clickgate_visits_spooled_total"]
	}
	clusterJudgedAll(t, c, "spring", time.Minute)
	stats := clusterStats(t, edges, "spring", creators)
	visitors, clicks := l.byCreator()
	var qualified int
	for _, cr := range creators {
		st := stats[cr]
		if statInt(t, st, "qualified") != visitors[cr] || statInt(t, st, "clicks") != clicks[cr]+1 || statInt(t, st, "uncounted") != 0 {
			t.Fatalf("unexpected stats of %s (partition %d) after the move; got %v; want qualified %d, clicks %d (one a prefetch)",
				cr, judge.Partition("spring", cr, clusterPartitions), st, visitors[cr], clicks[cr]+1)
		}
		qualified += visitors[cr]
	}
	t.Logf("slot %d of partition 0 moved from %s to %s in %s, keys %v; %d clicks, all redirected, %v visits spooled; %d qualified, exact",
		slot, src.Addr(), dst.Addr(), took.Round(time.Millisecond), moved, l.sent.Load(), spooled, qualified)
}

// moveSlot moves slot from master src to master dst as redis-cli --cluster
// reshard does, a key at a time with a pause in between so that clicks meet
// the slot half moved, and returns the keys moved.
func moveSlot(t *testing.T, c *redistest.Cluster, slot int, src, dst *redistest.Node) []string {
	t.Helper()
	ctx := context.Background()
	client := func(n *redistest.Node) *redis.Client {
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr()})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	from, to := client(src), client(dst)
	do := func(rdb *redis.Client, args ...any) {
		t.Helper()
		if err := rdb.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v on %s failed: %s", args, rdb.Options().Addr, err)
		}
	}
	do(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.ID)
	do(from, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.ID)
	var moved []string
	host, port, _ := strings.Cut(dst.Addr(), ":")
	for {
		keys, err := from.ClusterGetKeysInSlot(ctx, slot, 1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		do(from, "MIGRATE", host, port, "", 0, 5000, "KEYS", keys[0])
		moved = append(moved, keys[0])
		time.Sleep(100 * time.Millisecond)
	}
	do(to, "CLUSTER", "SETSLOT", slot, "NODE", dst.ID)
	do(from, "CLUSTER", "SETSLOT", slot, "NODE", dst.ID)
	for _, m := range c.Masters() {
		if m != src && m != dst {
			do(client(m), "CLUSTER", "SETSLOT", slot, "NODE", dst.ID)
		}
	}
	return moved
}

package redisstore

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/counter/storetest"
)

const (
	// benchVisitBytes is about what one encoded visit takes in a batch.
	benchVisitBytes = 60
	// benchPartitions is the number of partitions one AppendLog call
	// writes to, as one group commit of a busy edge does.
	benchPartitions = 16
)

// redisUsage is what a Redis server spent so far, from INFO: the CPU of its
// process (every thread: commands, networking, the append-only file) and
// the per-command statistics.
type redisUsage struct {
	cpu  time.Duration
	cmds map[string]cmdStat
}

type cmdStat struct{ calls, usec int64 }

func readUsage(tb testing.TB, rdb *redis.Client) redisUsage {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "cpu", "commandstats").Result()
	if err != nil {
		tb.Fatalf("cannot read INFO: %s", err)
	}
	u := redisUsage{cmds: map[string]cmdStat{}}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_user" || name == "used_cpu_sys":
			sec, err := strconv.ParseFloat(val, 64)
			if err != nil {
				tb.Fatalf("cannot parse %s %q: %s", name, val, err)
			}
			u.cpu += time.Duration(sec * float64(time.Second))
		case strings.HasPrefix(name, "cmdstat_"):
			var st cmdStat
			for kv := range strings.SplitSeq(val, ",") {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "calls":
					st.calls = n
				case "usec":
					st.usec = n
				}
			}
			u.cmds[strings.TrimPrefix(name, "cmdstat_")] = st
		}
	}
	return u
}

// report reports, from before to now, the CPU of the Redis process per op
// of the benchmark and per unit (visits, entries: n of them), and the
// execution time per call of command cmd as INFO commandstats counts it.
func (u redisUsage) report(b *testing.B, now redisUsage, cmd, unit string, n int64) {
	cpu := now.cpu - u.cpu
	calls := now.cmds[cmd].calls - u.cmds[cmd].calls
	usec := now.cmds[cmd].usec - u.cmds[cmd].usec
	if calls > 0 {
		b.ReportMetric(float64(usec)/float64(calls), "redis-us/"+cmd)
		b.ReportMetric(float64(cpu.Microseconds())/float64(calls), "redis-cpu-us/"+cmd)
	}
	if n > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "redis-cpu-ns/"+unit)
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit+"/s")
	}
}

// benchServer is a server with AOF everysec, as in production, a store on
// it, and a plain client to look inside.
func benchServer(b *testing.B) (*Store, *redis.Client) {
	srv := redistest.Start(b)
	s, err := Open(context.Background(), Options{URL: srv.URL(0), Params: storetest.Params(b)})
	if err != nil {
		b.Fatalf("cannot open store: %s", err)
	}
	b.Cleanup(func() { s.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { rdb.Close() })
	b.Cleanup(func() { waitAOFRewrite(b, rdb) })
	return s, rdb
}

// waitAOFRewrite stops Redis from starting another rewrite of its
// append-only file and waits for the one in progress, if any: its child
// process would outlive the server that redistest kills and write into the
// data directory while the test removes it.
func waitAOFRewrite(b *testing.B, rdb *redis.Client) {
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "auto-aof-rewrite-percentage", "0").Err(); err != nil {
		b.Errorf("cannot turn off AOF rewrites: %s", err)
		return
	}
	for deadline := time.Now().Add(time.Minute); ; {
		info, err := rdb.Info(ctx, "persistence").Result()
		if err != nil {
			b.Errorf("cannot read INFO persistence: %s", err)
			return
		}
		if !strings.Contains(info, "aof_rewrite_in_progress:1") && !strings.Contains(info, "aof_rewrite_scheduled:1") {
			return
		}
		if time.Now().After(deadline) {
			b.Errorf("the AOF rewrite did not end within a minute")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// trimWhile keeps the logs of campaign short while a benchmark appends, so
// that Redis's memory stays flat as the judge's checkpoints keep it; its
// XTRIMs count in the process CPU, as a judge's would.
func trimWhile(b *testing.B, rdb *redis.Client, s *Store, campaign string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			pipe := rdb.Pipeline()
			for p := range uint32(benchPartitions) {
				key, _ := s.partitionKey(campaign, p, "log")
				pipe.XTrimMaxLen(context.Background(), key, 64)
			}
			if _, err := pipe.Exec(context.Background()); err != nil {
				b.Errorf("cannot trim: %s", err)
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func benchPayload(visits int) []byte {
	p := make([]byte, visits*benchVisitBytes)
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return p
}

// BenchmarkAppendLog appends batches to 16 partitions per call, one XADD
// each in one round trip, from several goroutines; one op is one call.
// The Redis CPU it reports is the choice of plain XADD in log.go.
func BenchmarkAppendLog(b *testing.B) {
	for _, visits := range []int{128, 1024} {
		b.Run(fmt.Sprintf("visits=%d", visits), func(b *testing.B) {
			s, rdb := benchServer(b)
			payload := benchPayload(visits)
			var batch atomic.Uint64
			stop := trimWhile(b, rdb, s, "c1")
			before := readUsage(b, rdb)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				appends := make([]LogAppend, benchPartitions)
				for pb.Next() {
					for p := range appends {
						appends[p] = LogAppend{Campaign: "c1", Partition: uint32(p), BatchID: batch.Add(1), Payload: payload}
					}
					if err := s.AppendLog(context.Background(), appends); err != nil {
						b.Errorf("cannot append: %s", err)
						return
					}
				}
			})
			after := readUsage(b, rdb)
			stop()
			before.report(b, after, "xadd", "visits", int64(b.N)*benchPartitions*int64(visits))
		})
	}
}

// appendDedupeScripts are the alternative to log.go's plain XADD that
// BenchmarkAppendLogScript measures: a script per partition that records
// the batch id, then appends only if it was new.
//
//	KEYS[1]  the log
//	KEYS[2]  the dedupe key: setnx, the batch's own key; hsetnx, a hash of
//	         the partition's batch ids
//	ARGV[1]  the batch id
//	ARGV[2]  the payload
//	ARGV[3]  the retention, seconds
var appendDedupeScripts = map[string]*redis.Script{
	"setnx": redis.NewScript(`#!lua
if not redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[3]) then
	return false
end
return redis.call('XADD', KEYS[1], '*', 'b', ARGV[1], 'p', ARGV[2])
`),
	"hsetnx": redis.NewScript(`#!lua
if redis.call('HSETNX', KEYS[2], ARGV[1], 1) == 0 then
	return false
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
return redis.call('XADD', KEYS[1], '*', 'b', ARGV[1], 'p', ARGV[2])
`),
}

// BenchmarkAppendLogScript is BenchmarkAppendLog with the batch ids
// deduplicated in Redis by a script instead: what log.go did not choose.
// setnx keeps one key per batch for the retention (bounded by time);
// hsetnx one hash per partition that expires only when idle (a real one
// would need rotating hashes to be bounded).
func BenchmarkAppendLogScript(b *testing.B) {
	for _, dedupe := range []string{"setnx", "hsetnx"} {
		for _, visits := range []int{128, 1024} {
			b.Run(fmt.Sprintf("dedupe=%s/visits=%d", dedupe, visits), func(b *testing.B) {
				s, rdb := benchServer(b)
				script := appendDedupeScripts[dedupe]
				if err := script.Load(context.Background(), rdb).Err(); err != nil {
					b.Fatalf("cannot load script: %s", err)
				}
				payload := benchPayload(visits)
				var batch atomic.Uint64
				stop := trimWhile(b, rdb, s, "c1")
				before := readUsage(b, rdb)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					cmds := make([]*redis.Cmd, benchPartitions)
					for pb.Next() {
						pipe := s.rdb.Pipeline()
						for p := range cmds {
							id := strconv.FormatUint(batch.Add(1), 10)
							tag := string(appendSlotKey(nil, s.prefix, "c1", uint32(p)))
							dkey := tag + "batches"
							if dedupe == "setnx" {
								dkey = tag + "batch:" + id
							}
							cmds[p] = script.EvalSha(context.Background(), pipe, []string{tag + "log", dkey}, id, payload, 600)
						}
						pipe.Exec(context.Background())
						for _, c := range cmds {
							if err := c.Err(); err != nil {
								b.Errorf("cannot append: %s", err)
								return
							}
						}
					}
				})
				after := readUsage(b, rdb)
				stop()
				before.report(b, after, "evalsha", "visits", int64(b.N)*benchPartitions*int64(visits))
			})
		}
	}
}

// BenchmarkReadLog reads a log of batches of 128 visits, 64 entries per
// call, as a judge catching up does; one op is one call.
func BenchmarkReadLog(b *testing.B) {
	const entries, perRead, visits = 1024, 64, 128
	s, rdb := benchServer(b)
	payload := benchPayload(visits)
	appends := make([]LogAppend, 64)
	for n := 0; n < entries; n += len(appends) {
		for i := range appends {
			appends[i] = LogAppend{Campaign: "c1", Partition: 0, BatchID: uint64(n + i), Payload: payload}
		}
		if err := s.AppendLog(context.Background(), appends); err != nil {
			b.Fatalf("cannot append: %s", err)
		}
	}
	before := readUsage(b, rdb)
	b.SetBytes(int64(perRead * len(payload)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		after := ""
		for pb.Next() {
			got, err := s.ReadLog(context.Background(), "c1", 0, after, perRead)
			if err != nil {
				b.Errorf("cannot read: %s", err)
				return
			}
			if len(got) < perRead {
				after = "" // wrap around to the start
			} else {
				after = got[len(got)-1].ID
			}
			sinkEntries = got
		}
	})
	now := readUsage(b, rdb)
	before.report(b, now, "xrange", "visits", int64(b.N)*perRead*visits)
}

var sinkEntries []LogEntry

// copyCheckpointScript is the alternative to lease.go's staged checkpoint
// that BenchmarkWriteCheckpoint measures: the checkpoint passed to the
// fenced script as an argument.
//
//	KEYS[1]  the lease
//	KEYS[2]  the checkpoint
//	ARGV[1]  the lease's value
//	ARGV[2]  the checkpoint
var copyCheckpointScript = redis.NewScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)

// BenchmarkWriteCheckpoint writes fenced checkpoints of several sizes, with
// no trim, one at a time; one op is one checkpoint. staged is
// WriteCheckpoint; copy passes the checkpoint through the script.
func BenchmarkWriteCheckpoint(b *testing.B) {
	for _, how := range []string{"staged", "copy"} {
		for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/bytes=%d", how, size), func(b *testing.B) {
				s, rdb := benchServer(b)
				ctx := context.Background()
				l, err := s.AcquireLease(ctx, "c1", 0, "judge", time.Minute)
				if err != nil {
					b.Fatalf("cannot acquire lease: %s", err)
				}
				key, _ := s.partitionKey("c1", 0, "lease")
				cp := make([]byte, size)
				for i := range cp {
					cp[i] = byte(rand.Uint32())
				}
				write := func() error { return s.WriteCheckpoint(ctx, l, cp, "") }
				cmd := "evalsha"
				if how == "copy" {
					write = func() error {
						return copyCheckpointScript.Run(ctx, s.rdb, []string{key, key + ":checkpoint"}, l.value, cp).Err()
					}
				}
				before := readUsage(b, rdb)
				b.SetBytes(int64(len(cp)))
				b.ReportAllocs()
				for b.Loop() {
					if err := write(); err != nil {
						b.Fatalf("cannot write checkpoint: %s", err)
					}
				}
				now := readUsage(b, rdb)
				before.report(b, now, cmd, "", 0)
				if how == "staged" {
					b.ReportMetric(float64(now.cmds["set"].usec-before.cmds["set"].usec)/float64(b.N), "redis-us/set")
				}
			})
		}
	}
}

package redisstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/storetest"
)

func genScript(k int) string {
	var b strings.Builder
	b.WriteString("#!lua\nlocal ")
	for i := 1; i <= k; i++ {
		if i > 1 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "p%d", i)
	}
	fmt.Fprintf(&b, " = struct.unpack('<%s', ARGV[3])\n", strings.Repeat("I4", k))
	b.WriteString("local old = redis.call('BITFIELD', KEYS[1]")
	for i := 1; i <= k; i++ {
		fmt.Fprintf(&b, ", 'SET', 'u1', p%d, 1", i)
	}
	b.WriteString(")\n")
	b.WriteString(`for i = 1, #old do
	if old[i] == 0 then
		redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':qualified', 1)
		redis.call('EXPIREAT', KEYS[1], ARGV[1])
		return 1
	end
end
redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':duplicates', 1)
return 0
`)
	return b.String()
}

func TestProbeScripts(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	p := e.params
	now := time.Now()
	for _, variant := range []string{"gmatch", "struct", "gmatch", "struct"} {
		e.rdb.ConfigResetStat(ctx)
		e.rdb.FlushAll(ctx)
		var sc *redis.Script
		if variant == "gmatch" {
			sc = commitScript
		} else {
			sc = redis.NewScript(genScript(int(p.K)))
		}
		if err := sc.Load(ctx, e.rdb).Err(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for r := 0; r < 100; r++ {
			pipe := e.rdb.Pipeline()
			for i := 0; i < 256; i++ {
				v := counter.Visit{Campaign: "c1", Creator: "alice", Key: storetest.Key(r*256 + i)}
				v.SetWindow(now, 24*time.Hour)
				pos := p.AppendPositions(nil, &v.Key)
				var arg string
				if variant == "gmatch" {
					var sb []byte
					for j, x := range pos {
						if j > 0 {
							sb = append(sb, ' ')
						}
						sb = strconv.AppendUint(sb, x, 10)
					}
					arg = string(sb)
				} else {
					var sb []byte
					for _, x := range pos {
						sb = binary.LittleEndian.AppendUint32(sb, uint32(x))
					}
					arg = string(sb)
				}
				bf := fmt.Sprintf("cg:{c1:%d}:bf:%d", p.Slot(&v.Key), v.Window)
				n := fmt.Sprintf("cg:{c1:%d}:n:alice", p.Slot(&v.Key))
				pipe.EvalSha(ctx, sc.Hash(), []string{bf, n}, v.Expires, v.Day.String(), arg)
			}
			cmds, err := pipe.Exec(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r == 0 {
				if x, _ := cmds[0].(*redis.Cmd).Int64(); x != 1 {
					t.Fatalf("unexpected %d", x)
				}
			}
		}
		info, _ := e.rdb.Info(ctx, "commandstats").Result()
		for _, l := range strings.Split(info, "\n") {
			if strings.Contains(l, "evalsha") {
				t.Logf("%s: %v total; %s", variant, time.Since(start), l)
			}
		}
	}
}

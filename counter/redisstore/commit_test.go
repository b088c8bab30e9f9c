package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// TestCommitBatch commits one batch over campaigns, slots, more creators
// than one script call names, repeats and mark-only visits, in one round
// trip, and checks every result and counter.
func TestCommitBatch(t *testing.T) {
	e := newEnv(t, Options{})
	now := time.Now()
	var visits []counter.Visit
	want := map[string]int64{} // campaign/creator → qualified
	for i := range 2000 {
		campaign := fmt.Sprintf("c%d", i%2)
		creator := fmt.Sprintf("k%d", i%600)
		visits = append(visits, visit(campaign, creator, i, now))
		want[campaign+"/"+creator]++
	}
	// Every tenth visitor again in the same batch: a duplicate, because its
	// first visit comes earlier in its group. Then a mark-only key.
	for i := 0; i < 2000; i += 10 {
		visits = append(visits, visits[i])
	}
	mark := visit("c0", "k0", 99999, now)
	mark.MarkOnly = true
	visits = append(visits, mark, visit("c0", "k0", 99999, now))

	e.commit(t, visit("c9", "k9", 0, now)) // connects (a connection's set-up takes round trips too)
	before := roundTrips.Get()
	out := e.commit(t, visits...)
	if n := roundTrips.Get() - before; n != 1 {
		t.Errorf("a batch took %d round trips; want 1", n)
	}
	for i, r := range out {
		wantR := counter.Qualified
		if i >= 2000 {
			wantR = counter.Duplicate
		}
		if i == len(out)-2 {
			wantR = counter.Qualified // the mark-only visit's key was new
		}
		if r != wantR {
			t.Fatalf("visit %d: %s, want %s", i, r, wantR)
		}
	}
	for i := range 600 {
		for c := range 2 {
			campaign, creator := fmt.Sprintf("c%d", c), fmt.Sprintf("k%d", i)
			got := e.total(t, campaign, creator)
			dups := int64(0)
			for j := 0; j < 2000; j += 10 {
				if visits[j].Campaign == campaign && visits[j].Creator == creator {
					dups++
				}
			}
			if campaign == "c0" && creator == "k0" {
				dups++ // the visit after the mark
			}
			if got[counter.Qualified] != want[campaign+"/"+creator] || got[counter.Duplicate] != dups {
				t.Fatalf("%s/%s: %+v; want qualified %d, duplicates %d", campaign, creator, got, want[campaign+"/"+creator], dups)
			}
		}
	}
}

// TestCommitScriptRefusesMalformedCalls calls the script with a valid visit
// and a malformed one: it answers an error and writes nothing.
func TestCommitScriptRefusesMalformedCalls(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	v := visit("c1", "alice", 1, time.Now())
	g := e.s.commitGroups([]counter.Visit{v})[0]
	valid := g.args[len(g.args)-1].(string)
	keys := g.args[3:5]
	size := (e.params.M + 7) / 8
	bad := func(b []byte) string { return string(b) }
	wrongBitmap, wrongCounter := []byte(valid), []byte(valid)
	wrongBitmap[0] = 2  // only one bitmap
	wrongCounter[2] = 1 // KEYS[1] is the bitmap, not a counter hash
	for name, argv := range map[string][]any{
		"short positions": {"0", e.params.K, size, 1, "2026-01-01", valid, "2026-01-01", valid[:len(valid)-1]},
		"bad bitmap":      {"0", e.params.K, size, 1, "2026-01-01", valid, "2026-01-01", bad(wrongBitmap)},
		"bad counter":     {"0", e.params.K, size, 1, "2026-01-01", valid, "2026-01-01", bad(wrongCounter)},
		"odd arguments":   {"0", e.params.K, size, 1, "2026-01-01", valid, "2026-01-01"},
		"no k":            {"0", "x", size, 1, "2026-01-01", valid},
		"no size":         {"0", e.params.K, "x", 1, "2026-01-01", valid},
		"no bitmaps":      {"0", e.params.K, size, 0, "2026-01-01", valid},
	} {
		args := append([]any{"evalsha", commitScript.Hash(), 2}, keys...)
		err := e.rdb.Do(ctx, append(args, argv...)...).Err()
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if n, _ := e.rdb.Exists(ctx, keys[0].(string), keys[1].(string)).Result(); n != 0 {
			t.Fatalf("%s: the script wrote %d keys before failing", name, n)
		}
	}
}

// TestBitmapCreatedFullSize: a new bitmap has its final size at once, so
// Redis never over-allocates it while it grows.
func TestBitmapCreatedFullSize(t *testing.T) {
	e := newEnv(t, Options{})
	v := visit("c1", "alice", 1, time.Now())
	e.commit(t, v)
	key := e.s.commitGroups([]counter.Visit{v})[0].args[3].(string)
	n, err := e.rdb.StrLen(context.Background(), key).Result()
	if want := int64((e.params.M + 7) / 8); err != nil || n != want {
		t.Fatalf("bitmap %s is %d bytes (%v); want %d", key, n, err, want)
	}
	// The zero byte that sized it set no bit: only the visitor's are set.
	distinct := map[uint64]bool{}
	for _, p := range e.params.AppendPositions(nil, &v.Key) {
		distinct[p] = true
	}
	if bits, err := e.rdb.BitCount(context.Background(), key, nil).Result(); err != nil || bits != int64(len(distinct)) {
		t.Fatalf("%d bits set (%v); want the visitor's %d", bits, err, len(distinct))
	}
}

// TestCommitLargeGroup: a campaign window with more visits than one script
// call takes is split, in order: a visitor's repeat in the later call is a
// duplicate.
func TestCommitLargeGroup(t *testing.T) {
	e := newEnv(t, Options{})
	now := time.Now()
	var visits []counter.Visit
	for i := range maxVisitsPerGroup + 10 {
		visits = append(visits, visit("big", "k", i, now))
	}
	visits = append(visits, visit("big", "k", 0, now))
	if g := e.s.commitGroups(visits); len(g) != 2 {
		t.Fatalf("%d visits in %d groups; want 2", len(visits), len(g))
	}
	out := e.commit(t, visits...)
	for i, r := range out {
		if want := (i < len(out)-1); (r == counter.Qualified) != want {
			t.Fatalf("visit %d: %s", i, r)
		}
	}
	got := e.total(t, "big", "k")
	if got[counter.Qualified] != maxVisitsPerGroup+10 || got[counter.Duplicate] != 1 {
		t.Fatalf("counts %+v", got)
	}
}

package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

func payload(batch uint64, n int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("batch-%d;", batch)), n)
}

func (e *env) readLog(t *testing.T, campaign string, partition uint32, after string, count int) []LogEntry {
	t.Helper()
	got, err := e.s.ReadLog(context.Background(), campaign, partition, after, count)
	if err != nil {
		t.Fatalf("cannot read the log of %q/%d after %q: %s", campaign, partition, after, err)
	}
	return got
}

// checkLog checks that entries are the batches of ids, in order, with
// their payloads, and that their stream ids increase.
func checkLog(t *testing.T, what string, got []LogEntry, ids ...uint64) {
	t.Helper()
	if len(got) != len(ids) {
		t.Fatalf("unexpected number of entries in %s; got %d: %v; want batches %v", what, len(got), got, ids)
	}
	for i, e := range got {
		if e.BatchID != ids[i] || !bytes.Equal(e.Payload, payload(ids[i], 3)) {
			t.Fatalf("unexpected entry %d in %s; got batch %d with %q; want batch %d", i, what, e.BatchID, e.Payload, ids[i])
		}
		if i > 0 && !streamIDBefore(got[i-1].ID, e.ID) {
			t.Fatalf("unexpected order of entries in %s; got %q before %q", what, got[i-1].ID, e.ID)
		}
	}
}

func TestLogAppendAndRead(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	app := func(campaign string, partition uint32, batch uint64) LogAppend {
		return LogAppend{Campaign: campaign, Partition: partition, BatchID: batch, Payload: payload(batch, 3)}
	}
	calls := []struct {
		appends []LogAppend
	}{
		{[]LogAppend{app("c1", 0, 1), app("c1", 7, 2), app("c-2", 0, 3), app("c1", 0, 4)}},
		{[]LogAppend{app("c1", 7, 5), app("c1", 0, 6)}},
		{[]LogAppend{app("c1", 0, 7)}},
	}
	// The first pipeline dials a connection of its own (go-redis keeps
	// them in a pool of their own): its handshake is round trips too.
	if err := e.s.AppendLog(ctx, []LogAppend{app("warm", 0, 0)}); err != nil {
		t.Fatalf("cannot append: %s", err)
	}
	for i, c := range calls {
		before := roundTrips.Get()
		if err := e.s.AppendLog(ctx, c.appends); err != nil {
			t.Fatalf("cannot append call %d: %s", i, err)
		}
		if n := roundTrips.Get() - before; n != 1 {
			t.Fatalf("unexpected round trips of call %d; got %d; want 1", i, n)
		}
	}
	if err := e.s.AppendLog(ctx, nil); err != nil {
		t.Fatalf("cannot append nothing: %s", err)
	}

	checkLog(t, "c1/0", e.readLog(t, "c1", 0, "", 100), 1, 4, 6, 7)
	checkLog(t, "c1/0 from 0-0", e.readLog(t, "c1", 0, "0-0", 100), 1, 4, 6, 7)
	checkLog(t, "c1/7", e.readLog(t, "c1", 7, "", 100), 2, 5)
	checkLog(t, "c-2/0", e.readLog(t, "c-2", 0, "", 100), 3)
	checkLog(t, "c1/1", e.readLog(t, "c1", 1, "", 100))
	checkLog(t, "c3/0", e.readLog(t, "c3", 0, "", 100))

	// Paging: strictly after the last id read, count at a time.
	var all []LogEntry
	for after := ""; ; {
		got := e.readLog(t, "c1", 0, after, 3)
		if len(got) == 0 {
			break
		}
		if len(got) > 3 {
			t.Fatalf("unexpected number of entries; got %d; want at most 3", len(got))
		}
		all = append(all, got...)
		after = got[len(got)-1].ID
	}
	checkLog(t, "c1/0 paged", all, 1, 4, 6, 7)
	checkLog(t, "c1/0 after its last", e.readLog(t, "c1", 0, all[3].ID, 10))
	checkLog(t, "c1/0 after its first", e.readLog(t, "c1", 0, all[0].ID, 10), 4, 6, 7)

	if _, err := e.s.ReadLog(ctx, "c1", 0, "", 0); err == nil {
		t.Fatalf("unexpected success of ReadLog with count 0")
	}
	if _, err := e.s.ReadLog(ctx, "c1", 0, "not-an-id", 10); err == nil {
		t.Fatalf("unexpected success of ReadLog after an invalid id")
	}
}

// TestLogRetriedBatch appends a batch again, as a retry after a timeout
// does: the log holds it twice under the same batch id, and a reader that
// skips the batch ids it has seen reads it once.
func TestLogRetriedBatch(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	b := func(batch uint64) LogAppend {
		return LogAppend{Campaign: "c1", Partition: 3, BatchID: batch, Payload: payload(batch, 3)}
	}
	for i, appends := range [][]LogAppend{{b(10)}, {b(11)}, {b(10), b(12)}} {
		if err := e.s.AppendLog(ctx, appends); err != nil {
			t.Fatalf("cannot append call %d: %s", i, err)
		}
	}
	got := e.readLog(t, "c1", 3, "", 10)
	checkLog(t, "the log", got, 10, 11, 10, 12)
	seen := map[uint64]bool{}
	var judged []LogEntry
	for _, e := range got {
		if !seen[e.BatchID] {
			seen[e.BatchID] = true
			judged = append(judged, e)
		}
	}
	checkLog(t, "the batches judged", judged, 10, 11, 12)
}

func TestTrimLog(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	for batch := range uint64(5) {
		if err := e.s.AppendLog(ctx, []LogAppend{{Campaign: "c1", Partition: 1, BatchID: batch, Payload: payload(batch, 3)}}); err != nil {
			t.Fatalf("cannot append: %s", err)
		}
	}
	all := e.readLog(t, "c1", 1, "", 10)
	checkLog(t, "the log", all, 0, 1, 2, 3, 4)
	if err := e.s.TrimLog(ctx, "c1", 1, all[2].ID); err != nil {
		t.Fatalf("cannot trim: %s", err)
	}
	checkLog(t, "the log trimmed below its third entry", e.readLog(t, "c1", 1, "", 10), 2, 3, 4)
	if n, err := e.rdb.XLen(ctx, "cg:{c1:1}:log").Result(); err != nil || n != 3 {
		t.Fatalf("unexpected length of the trimmed log; got %d, %v; want 3", n, err)
	}
	// Trimming below an id past the end empties the log; appends go on
	// after the last id.
	if err := e.s.TrimLog(ctx, "c1", 1, "99999999999999"); err != nil {
		t.Fatalf("cannot trim: %s", err)
	}
	checkLog(t, "the emptied log", e.readLog(t, "c1", 1, "", 10))
	if err := e.s.AppendLog(ctx, []LogAppend{{Campaign: "c1", Partition: 1, BatchID: 5, Payload: payload(5, 3)}}); err != nil {
		t.Fatalf("cannot append: %s", err)
	}
	checkLog(t, "the log after its last judged", e.readLog(t, "c1", 1, all[4].ID, 10), 5)
	for _, below := range []string{"", "x-1"} {
		if err := e.s.TrimLog(ctx, "c1", 1, below); err == nil {
			t.Fatalf("unexpected success of TrimLog below %q", below)
		}
	}
}

func TestLogInvalidCampaign(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	for _, c := range []string{"", "a{b", "a}b", "{c1}"} {
		if err := e.s.AppendLog(ctx, []LogAppend{{Campaign: "c1"}, {Campaign: c}}); !errors.Is(err, errBadCampaign) {
			t.Fatalf("unexpected error of AppendLog to campaign %q; got %v; want errBadCampaign", c, err)
		}
		if _, err := e.s.ReadLog(ctx, c, 0, "", 1); !errors.Is(err, errBadCampaign) {
			t.Fatalf("unexpected error of ReadLog of campaign %q; got %v; want errBadCampaign", c, err)
		}
		if _, err := e.s.AcquireLease(ctx, c, 0, "a", time.Second); !errors.Is(err, errBadCampaign) {
			t.Fatalf("unexpected error of AcquireLease of campaign %q; got %v; want errBadCampaign", c, err)
		}
	}
	// The valid append of the refused call was not sent either.
	if n, err := e.rdb.DBSize(ctx).Result(); err != nil || n != 1 {
		t.Fatalf("unexpected keys after refused appends; got %d, %v; want only the dedupe parameters", n, err)
	}
}

func TestAppendLogUnavailable(t *testing.T) {
	e := newEnv(t, Options{DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	e.srv.Stop()
	// A deadline that ends first is unavailability too (and keeps this test
	// short: a refused connection is dialed again a few times).
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	appends := []LogAppend{{Campaign: "c1", Partition: 0, BatchID: 1}, {Campaign: "c1", Partition: 1, BatchID: 2}}
	err := e.s.AppendLog(short, appends)
	var ae *AppendLogError
	if !errors.As(err, &ae) || !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("unexpected error of AppendLog on a stopped server; got %v; want an *AppendLogError of ErrUnavailable", err)
	}
	if fmt.Sprint(ae.Failed) != "[0 1]" {
		t.Fatalf("unexpected failed appends; got %v; want [0 1]", ae.Failed)
	}
	_, err = e.s.ReadLog(short, "c1", 0, "", 1)
	if !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("unexpected error of ReadLog on a stopped server; got %v; want ErrUnavailable", err)
	}
	e.srv.Restart(t)
	if err := e.s.AppendLog(ctx, appends); err != nil {
		t.Fatalf("cannot append after restart: %s", err)
	}
}

// TestLogMemoryPerVisit measures what a pending visit costs in the log
// (MEMORY USAGE of the stream), for visits of about 60 bytes in batches of
// several sizes. A batch above stream-node-max-bytes (4 KB) is a stream
// node of its own, whose allocation jemalloc rounds up to its next size
// class (8 KB for 128 visits): most of the overhead.
func TestLogMemoryPerVisit(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	for _, c := range []struct {
		visits, entries int
		max             float64 // bytes per visit
	}{
		{visits: 8, entries: 1024, max: 75},
		{visits: 128, entries: 256, max: 70},
		{visits: 1024, entries: 32, max: 68},
	} {
		p := uint32(c.visits)
		batch := make([]byte, c.visits*benchVisitBytes)
		for i := range batch {
			batch[i] = byte(i*7 + i/benchVisitBytes)
		}
		for i := range c.entries {
			if err := e.s.AppendLog(ctx, []LogAppend{{Campaign: "c1", Partition: p, BatchID: uint64(1_000_000_000 + i), Payload: batch}}); err != nil {
				t.Fatalf("cannot append: %s", err)
			}
		}
		key := fmt.Sprintf("cg:{c1:%d}:log", p)
		used, err := e.rdb.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			t.Fatalf("cannot read memory usage of %q: %s", key, err)
		}
		perVisit := float64(used) / float64(c.entries*c.visits)
		t.Logf("batches of %d visits of %d bytes: %d entries use %d bytes: %.2f bytes per pending visit, %.1f bytes per entry above the payload",
			c.visits, benchVisitBytes, c.entries, used, perVisit, float64(used)/float64(c.entries)-float64(len(batch)))
		if perVisit > c.max {
			t.Fatalf("unexpected memory per pending visit in batches of %d; got %.2f bytes; want at most %.0f", c.visits, perVisit, c.max)
		}
	}
}

// partitionKeyRE matches every key of a partition: its hash tag is the
// campaign and the partition.
var partitionKeyRE = regexp.MustCompile(`^cg:\{([A-Za-z0-9_.-]+:[0-9]+)\}:(log|lease|lease:token|checkpoint)$`)

// TestPartitionKeysShareHashSlot checks that every key of one partition is
// in one hash slot of a cluster, computed as a cluster does, so that the
// checkpoint's script and the lease's run on one node.
func TestPartitionKeysShareHashSlot(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	parts := []struct {
		campaign  string
		partition uint32
	}{{"c1", 0}, {"c1", 5}, {"c-2.x", 5}, {"c_3", 4000000000}}
	var appends []LogAppend
	for i, p := range parts {
		appends = append(appends, LogAppend{Campaign: p.campaign, Partition: p.partition, BatchID: uint64(i), Payload: []byte("x")})
	}
	if err := e.s.AppendLog(ctx, appends); err != nil {
		t.Fatalf("cannot append: %s", err)
	}
	for i, p := range parts {
		l, err := e.s.AcquireLease(ctx, p.campaign, p.partition, "judge", time.Minute)
		if err != nil {
			t.Fatalf("cannot acquire lease: %s", err)
		}
		entries := e.readLog(t, p.campaign, p.partition, "", 1)
		if err := e.s.WriteCheckpoint(ctx, l, []byte{byte(i)}, entries[0].ID); err != nil {
			t.Fatalf("cannot write checkpoint: %s", err)
		}
	}
	keys, err := e.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("cannot list keys: %s", err)
	}
	slots := map[string]map[uint16]bool{}
	n := 0
	for _, k := range keys {
		if k == "cg:{catalog}:dedupe" {
			continue
		}
		m := partitionKeyRE.FindStringSubmatch(k)
		if m == nil {
			t.Fatalf("unexpected key %q", k)
		}
		if slots[m[1]] == nil {
			slots[m[1]] = map[uint16]bool{}
		}
		slots[m[1]][keySlot(k)] = true
		n++
	}
	if n != 4*len(parts) || len(slots) != len(parts) {
		t.Fatalf("unexpected keys; got %q; want log, lease, lease:token and checkpoint of %d partitions", keys, len(parts))
	}
	for tag, s := range slots {
		if len(s) != 1 {
			t.Fatalf("unexpected hash slots of the keys of partition {%s}; got %v; want one", tag, s)
		}
	}
}

func TestKeySlot(t *testing.T) {
	f := func(key string, want uint16) {
		t.Helper()
		if got := keySlot(key); got != want {
			t.Fatalf("unexpected slot of %q; got %d; want %d", key, got, want)
		}
	}
	// Known answers of CLUSTER KEYSLOT, and the CRC16 check value.
	if got := crc16([]byte("123456789")); got != 0x31c3 {
		t.Fatalf("unexpected CRC16 of %q; got %#x; want 0x31c3", "123456789", got)
	}
	f("123456789", 12739)
	f("somekey", 11058)
	f("foo{hash_tag}", 2515)
	f("bar{hash_tag}", 2515)
	f("{}foo", 9500) // an empty tag does not count: the whole key
	f("foo{}", 5542)
	f("foo{}{bar}", 8363)
	f("foo{{bar}}zap", keySlot("{bar"))
}

// keySlot is the Redis Cluster hash slot of key: CRC16 of its hash tag (the
// part between the first '{' and the next '}', if not empty) or of the
// whole key, modulo 16384.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16([]byte(key)) % 16384
}

// crc16 is CRC-16/XMODEM, as Redis Cluster uses.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

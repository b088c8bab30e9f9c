package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/spool"
	"github.com/clickgate/clickgate/counter/storetest"
)

// TestSealWaitsForSpool: the flusher seals no statement while this node's
// spool holds visits, which may have been clicked before the end: it
// writes the totals, lists the campaign as unsettled and logs why; the
// first flush after the spool is empty seals it.
func TestSealWaitsForSpool(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := boltstore.Open(filepath.Join(dir, "store"), storetest.Params(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	end := time.Now().Add(-time.Minute)
	if err := store.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: end.Add(-time.Hour), EndsAt: end, VisitBlockSize: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := store.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}); err != nil {
		t.Fatal(err)
	}
	v := counter.Visit{Campaign: "spring", Creator: "alice", Key: storetest.Key(1)}
	v.SetWindow(end.Add(-time.Second), 24*time.Hour)
	id, err := sp.Append([]counter.Visit{v}, false)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	f, err := startFlusher(ctx, store, sp, filepath.Join(dir, "ledger"), bytes.Repeat([]byte{7}, 32), false, time.Hour, nil,
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.stop(ctx)

	res, err := f.Flush(ctx)
	if err != nil || res.Batch.Seq == 0 || res.Sealed.Seq != 0 || len(res.Unsettled) != 1 || res.Unsettled[0].Campaign != "spring" ||
		!strings.Contains(res.Unsettled[0].Err.Error(), "1 batches of visits wait in this node's spool") {
		t.Fatalf("unexpected flush with a spooled visit: %+v, %v; want the totals, no seal, spring unsettled", res, err)
	}
	if !strings.Contains(logs.String(), "final statement waits") || !strings.Contains(logs.String(), "campaign=spring") {
		t.Fatalf("the wait was not logged:\n%s", logs.String())
	}
	// The spool ships the visit, as the replayer does once the store is back.
	if err := store.Commit(ctx, []counter.Visit{v}, make([]counter.Reason, 1)); err != nil {
		t.Fatal(err)
	}
	if err := sp.Ack(id); err != nil {
		t.Fatal(err)
	}
	res, err = f.Flush(ctx)
	if err != nil || res.Sealed.Seq == 0 || len(res.Unsettled) != 0 {
		t.Fatalf("unexpected flush with an empty spool: %+v, %v; want the seal", res, err)
	}
	if st := res.Sealed.Statements[0]; st.Campaign != "spring" || len(st.Rows) != 1 || st.Rows[0].QualifiedVisits != 1 {
		t.Fatalf("unexpected statement: %+v; want alice's spooled visit in it", st)
	}
}

// TestFlushCommandWaitsForSpool: `clickgate flush` on the data of a
// stopped node whose spool holds visits seals no statement; once the
// spool is empty, it does.
func TestFlushCommandWaitsForSpool(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data, "--flush-interval", "0")
	now := time.Now().UTC()
	end := now.Add(2 * time.Second)
	p.mustCall(t, "PUT", "/v1/campaigns/spring", map[string]any{"starts_at": now.Add(-time.Hour), "ends_at": end,
		"visit_block_size": 1000, "signup_grace": "0s"}, 201)
	p.mustCall(t, "PUT", "/v1/creators/alice", map[string]any{"campaign": "spring", "country": "US"}, 201)
	p.stop(t)
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(data, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	v := counter.Visit{Campaign: "spring", Creator: "alice", Key: storetest.Key(1)}
	v.SetWindow(now, 24*time.Hour)
	id, err := sp.Append([]counter.Visit{v}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(end.Add(100 * time.Millisecond)))
	flush := func() (unsettled, sealed []string) {
		t.Helper()
		out, err := exec.Command(binary, "flush", "--data", data).Output()
		var s struct{ Unsettled, Sealed []string }
		if err != nil || json.Unmarshal(out, &s) != nil {
			t.Fatalf("clickgate flush failed: %v\n%s", err, out)
		}
		return s.Unsettled, s.Sealed
	}
	if unsettled, sealed := flush(); !slices.Equal(unsettled, []string{"spring"}) || len(sealed) != 0 {
		t.Fatalf("unexpected flush with a visit spooled; unsettled %q, sealed %q; want spring unsettled", unsettled, sealed)
	}
	if sp, err = spool.Open(spool.Options{Dir: filepath.Join(data, "spool")}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Ack(id); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	if unsettled, sealed := flush(); len(unsettled) != 0 || !slices.Equal(sealed, []string{"spring"}) {
		t.Fatalf("unexpected flush with the spool empty; unsettled %q, sealed %q; want spring sealed", unsettled, sealed)
	}
}

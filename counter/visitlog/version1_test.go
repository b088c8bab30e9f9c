package visitlog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/clickgate/clickgate/counter/disk"
	"github.com/clickgate/clickgate/counter/internal/fuzzseed"
)

// asVersion returns b as a batch of version v holds it: before version
// 3 no visit has a link, before version 2 none has a block.
func asVersion(b Batch, v byte) Batch {
	b.Visits = append(b.Visits[:0:0], b.Visits...)
	for i := range b.Visits {
		if v < batchVersion {
			b.Visits[i].Link = ""
		}
		if v < batchVersion2 {
			b.Visits[i].Block = 0
		}
	}
	return b
}

// TestVersion1 reads what logs written before Visit.Block was recorded
// hold: batches of version 1 (the v1-* seeds of FuzzDecodeBatch, written
// by that build) and a segment of them (FuzzOpen's v1-whole). Every visit
// is read as it was written, with Block 0 and no link, and encodes again
// as version 3.
func TestVersion1(t *testing.T) {
	var dec Decoder
	for name, want := range seedBatches() {
		want = asVersion(want, batchVersion1)
		p := fuzzseed.Read(t, "FuzzDecodeBatch", "v1-"+name)
		if p[0] != batchVersion1 {
			t.Fatalf("unexpected version of golden batch %q; got %d; want 1", name, p[0])
		}
		var got, viaDecoder Batch
		if err := DecodeBatch(p, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("unexpected version 1 batch %q; got %+v, %v; want %+v", name, got, err, want)
		}
		if err := dec.Decode(p, &viaDecoder); err != nil || !reflect.DeepEqual(viaDecoder, want) {
			t.Fatalf("unexpected version 1 batch %q from a Decoder; got %v", name, err)
		}
		q := AppendBatch(nil, &got)
		if q[0] != batchVersion || len(q) != len(p)+8*len(want.Visits) {
			t.Fatalf("unexpected encoding of version 1 batch %q: version %d, %d bytes of %d", name, q[0], len(q), len(p))
		}
		if again := mustDecode(t, q); !reflect.DeepEqual(again, want) {
			t.Fatalf("unexpected batch %q after encoding it again", name)
		}
	}

	checkOldSegment(t, batchVersion1)
}

// checkOldSegment reads a segment of batches of version v, as the log of
// that build wrote it (tornLog's appends, FuzzOpen's seed "v<v>-whole"):
// every record is the batch it was then, and the current segment seed,
// which holds the same batches, is another.
func checkOldSegment(t *testing.T, v byte) {
	t.Helper()
	seed := fmt.Sprintf("v%d-whole", v)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, disk.SegmentName(1)), fuzzseed.Read(t, "FuzzOpen", seed), 0o600); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, openLog(t, dir, Options{}), Offset{})
	if len(recs) != 8 {
		t.Fatalf("unexpected records in the version %d segment; got %d; want 8", v, len(recs))
	}
	for i, r := range recs {
		id := uint64(i + 1)
		want := asVersion(Batch{ID: id, Visits: visits(int(id), 1+int(id%2))}, v)
		if r.batch[0] != v {
			t.Fatalf("unexpected version of record %d; got %d; want %d", i, r.batch[0], v)
		}
		if got := mustDecode(t, r.batch); !reflect.DeepEqual(got, want) {
			t.Fatalf("unexpected batch in record %d of the version %d segment; got %+v; want %+v", i, v, got, want)
		}
	}
	if whole := fuzzseed.Read(t, "FuzzOpen", "whole"); bytes.Equal(whole, fuzzseed.Read(t, "FuzzOpen", seed)) {
		t.Fatalf("the current segment seed is the version %d one: run TestFuzzSeeds -update-seeds", v)
	}
}

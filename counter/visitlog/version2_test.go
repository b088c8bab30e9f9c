package visitlog

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/clickgate/clickgate/counter/internal/fuzzseed"
)

// TestVersion2 reads what logs written before Visit.Link was recorded
// hold: batches of version 2 (the v2-* seeds of FuzzDecodeBatch, written
// by that build) and a segment of them (FuzzOpen's v2-whole). Every visit
// is read as it was written, with Link "", and encodes again as version
// 3: the same bytes but the version, since no visit has a link.
func TestVersion2(t *testing.T) {
	var dec Decoder
	for name, want := range seedBatches() {
		want = asVersion(want, batchVersion2)
		p := fuzzseed.Read(t, "FuzzDecodeBatch", "v2-"+name)
		if p[0] != batchVersion2 {
			t.Fatalf("unexpected version of golden batch %q; got %d; want 2", name, p[0])
		}
		var got, viaDecoder Batch
		if err := DecodeBatch(p, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("unexpected version 2 batch %q; got %+v, %v; want %+v", name, got, err, want)
		}
		if err := dec.Decode(p, &viaDecoder); err != nil || !reflect.DeepEqual(viaDecoder, want) {
			t.Fatalf("unexpected version 2 batch %q from a Decoder; got %v", name, err)
		}
		q := AppendBatch(nil, &got)
		if q[0] != batchVersion || !bytes.Equal(q[1:], p[1:]) {
			t.Fatalf("unexpected encoding of version 2 batch %q; got %x; want %x as version 3", name, q, p)
		}
		// The same visits with their links take more bytes.
		cur := fuzzseed.Read(t, "FuzzDecodeBatch", name)
		if len(cur) <= len(p) {
			t.Fatalf("unexpected size of batch %q with links: %d bytes; %d without", name, len(cur), len(p))
		}
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, segmentName(1)), fuzzseed.Read(t, "FuzzOpen", "v2-whole"), 0o600); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, openLog(t, dir, Options{}), Offset{})
	if len(recs) != 8 {
		t.Fatalf("unexpected records in the version 2 segment; got %d; want 8", len(recs))
	}
	for i, r := range recs {
		id := uint64(i + 1)
		want := asVersion(Batch{ID: id, Visits: visits(int(id), 1+int(id%2))}, batchVersion2)
		if r.batch[0] != batchVersion2 {
			t.Fatalf("unexpected version of record %d; got %d; want 2", i, r.batch[0])
		}
		if got := mustDecode(t, r.batch); !reflect.DeepEqual(got, want) {
			t.Fatalf("unexpected batch in record %d of the version 2 segment; got %+v; want %+v", i, got, want)
		}
	}
	if whole := fuzzseed.Read(t, "FuzzOpen", "whole"); bytes.Equal(whole, fuzzseed.Read(t, "FuzzOpen", "v2-whole")) {
		t.Fatalf("the current segment seed is the version 2 one: run TestFuzzSeeds -update-seeds")
	}
}

package visitlog

import (
	"bytes"
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

	checkOldSegment(t, batchVersion2)
}

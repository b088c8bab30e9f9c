package judge

import (
	"bytes"
	"reflect"
	"slices"
	"testing"

	"github.com/clickgate/clickgate/counter"
)

// TestClone applies half a log, clones the judge and applies the other
// half to both, one after the other: the clone's checkpoint does not move
// while the original judges, and both end with the decisions and the
// checkpoint of a judge that applied the whole log.
func TestClone(t *testing.T) {
	visits := genLog(100_000, 3)
	half := len(visits) / 2
	whole := mustNew(t, logParams)
	want := make([]counter.Reason, len(visits))
	whole.Apply(visits, want)

	j := mustNew(t, logParams)
	got := make([]counter.Reason, len(visits))
	j.Apply(visits[:half], got[:half])
	c := j.Clone()
	mid := mustMarshal(t, j)
	if b := mustMarshal(t, c); !bytes.Equal(b, mid) {
		t.Fatalf("unexpected checkpoint of the clone; got %d bytes; want the %d of the judge it was cloned from", len(b), len(mid))
	}
	j.Apply(visits[half:], got[half:])
	if b := mustMarshal(t, c); !bytes.Equal(b, mid) {
		t.Fatal("the clone's checkpoint changed when the judge it was cloned from applied visits")
	}
	fromClone := make([]counter.Reason, len(visits)-half)
	c.Apply(visits[half:], fromClone)
	if !slices.Equal(got, want) {
		t.Fatal("the judge that was cloned decided otherwise than one that was not")
	}
	if !slices.Equal(fromClone, want[half:]) {
		t.Fatal("the clone decided otherwise than the judge it was cloned from")
	}
	wantCheckpoint := mustMarshal(t, whole)
	for name, judge := range map[string]*Judge{"the judge": j, "the clone": c} {
		if b := mustMarshal(t, judge); !bytes.Equal(b, wantCheckpoint) {
			t.Errorf("unexpected checkpoint of %s after the whole log; got %d bytes; want the %d of a judge that was never cloned", name, len(b), len(wantCheckpoint))
		}
	}
}

// TestCloneSharesNothing walks the judge and its clone side by side: no
// map, slice or pointer of one is the other's, but for the layer sizes,
// which nothing writes after New. A field added to the judge that Clone
// does not copy fails here.
func TestCloneSharesNothing(t *testing.T) {
	j := mustNew(t, logParams)
	visits := genLog(20_000, 4)
	j.Apply(visits, make([]counter.Reason, len(visits)))
	j.SetOffset([]byte("offset"))
	shared := map[string]bool{".win.sizes": true}
	var walk func(a, b reflect.Value, path string)
	walk = func(a, b reflect.Value, path string) {
		if shared[path] {
			return
		}
		switch a.Kind() {
		case reflect.Pointer:
			if a.IsNil() || b.IsNil() {
				return
			}
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: the clone shares the judge's pointer", path)
				return
			}
			walk(a.Elem(), b.Elem(), path)
		case reflect.Map:
			if a.Len() == 0 || b.IsNil() {
				return
			}
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: the clone shares the judge's map", path)
				return
			}
			for it := a.MapRange(); it.Next(); {
				bv := b.MapIndex(it.Key())
				if !bv.IsValid() {
					t.Errorf("%s: the clone lacks a key of the judge's map", path)
					return
				}
				walk(it.Value(), bv, path+"[]")
			}
		case reflect.Slice:
			if a.Len() == 0 {
				return
			}
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: the clone shares the judge's slice", path)
				return
			}
			for i := range a.Len() {
				walk(a.Index(i), b.Index(i), path+"[]")
			}
		case reflect.Array:
			for i := range a.Len() {
				walk(a.Index(i), b.Index(i), path+"[]")
			}
		case reflect.Struct:
			for i := range a.NumField() {
				walk(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)
			}
		}
	}
	walk(reflect.ValueOf(j), reflect.ValueOf(j.Clone()), "")
}

package visitlog

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/clickgate/clickgate/counter/disk"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func openLog(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	o.Dir = dir
	if o.Logger == nil {
		o.Logger = discard
	}
	l, err := Open(o)
	if err != nil {
		t.Fatalf("cannot open the log: %s", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// encoded returns batch id of n visits, encoded.
func encoded(id uint64, n int) []byte {
	return AppendBatch(nil, &Batch{ID: id, Visits: visits(int(id), n)})
}

func mustAppend(t testing.TB, l *Log, batches ...[]byte) Offset {
	t.Helper()
	end, err := l.Append(batches...)
	if err != nil {
		t.Fatalf("cannot append: %s", err)
	}
	return end
}

// rec is a record as Read hands it out.
type rec struct {
	at, next Offset
	batch    []byte
}

func readAll(t testing.TB, l *Log, from Offset) []rec {
	t.Helper()
	var recs []rec
	err := l.Read(from, func(at, next Offset, batch []byte) error {
		recs = append(recs, rec{at, next, slices.Clone(batch)})
		return nil
	})
	if err != nil {
		t.Fatalf("cannot read from %s: %s", from, err)
	}
	return recs
}

func batchesOf(recs []rec) [][]byte {
	var bs [][]byte
	for _, r := range recs {
		bs = append(bs, r.batch)
	}
	return bs
}

func wantBatches(t testing.TB, l *Log, from Offset, want [][]byte) []rec {
	t.Helper()
	recs := readAll(t, l, from)
	if got := batchesOf(recs); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("unexpected batches from %s; got %d; want %d", from, len(got), len(want))
	}
	return recs
}

func segments(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// appendMany appends calls appends of 1 to 3 batches each, and returns the
// batches in order and the end after each call.
func appendMany(t testing.TB, l *Log, firstID uint64, calls int) (batches [][]byte, ends []Offset) {
	t.Helper()
	id := firstID
	for i := range calls {
		var call [][]byte
		for range 1 + i%3 {
			call = append(call, encoded(id, 1+int(id%4)))
			id++
		}
		ends = append(ends, mustAppend(t, l, call...))
		batches = append(batches, call...)
	}
	return batches, ends
}

func TestAppendReadReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	o := Options{SegmentBytes: 1500}
	l := openLog(t, dir, o)
	if end := l.End(); end != (Offset{1, headerLen}) {
		t.Fatalf("unexpected end of an empty log; got %s", end)
	}
	wantBatches(t, l, Offset{}, nil)
	batches, ends := appendMany(t, l, 1, 30)
	if n := len(segments(t, dir)); n < 4 {
		t.Fatalf("unexpected segments; got %d; want at least 4", n)
	}
	if l.End() != ends[len(ends)-1] {
		t.Fatalf("unexpected End; got %s; want %s", l.End(), ends[len(ends)-1])
	}
	recs := wantBatches(t, l, Offset{}, batches)
	for i, r := range recs {
		if i > 0 && r.at != recs[i-1].next && !(r.at == Offset{recs[i-1].next.Segment + 1, headerLen}) {
			t.Fatalf("record %d at %s does not follow the one before, which ends at %s", i, r.at, recs[i-1].next)
		}
		// From any record, and from after it: the rest.
		wantBatches(t, l, r.at, batches[i:])
		wantBatches(t, l, r.next, batches[i+1:])
	}
	for _, end := range ends {
		if !slices.ContainsFunc(recs, func(r rec) bool { return r.next == end }) {
			t.Fatalf("an Append's end %s is no record's next", end)
		}
	}

	for _, path := range append(segments(t, dir), dir) {
		fi, err := os.Stat(path)
		want := os.FileMode(0o600)
		if path == dir {
			want = 0o700 | os.ModeDir
		}
		if err != nil || fi.Mode() != want {
			t.Fatalf("unexpected mode of %q; got %v (%v); want %v", path, fi.Mode(), err, want)
		}
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("unexpected second Close error; got %v; want ErrClosed", err)
	}
	if _, err := l.Append(encoded(99, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("unexpected Append error after Close; got %v; want ErrClosed", err)
	}
	if err := l.Read(Offset{}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("unexpected Read error after Close; got %v; want ErrClosed", err)
	}
	select {
	case <-l.Notify():
	default:
		t.Fatalf("unexpected open Notify channel after Close")
	}
	l = openLog(t, dir, o)
	if l.End() != ends[len(ends)-1] || l.Recovered() != 0 {
		t.Fatalf("unexpected end after reopen; got %s (recovered %d); want %s (0)", l.End(), l.Recovered(), ends[len(ends)-1])
	}
	more, _ := appendMany(t, l, 1000, 5)
	wantBatches(t, l, Offset{}, append(slices.Clone(batches), more...))
}

func TestInUse(t *testing.T) {
	dir := t.TempDir()
	openLog(t, dir, Options{})
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrInUse) {
		t.Fatalf("unexpected error opening a log in use; got %v; want ErrInUse", err)
	}
}

func TestReadOffsets(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{SegmentBytes: 600})
	batches, _ := appendMany(t, l, 1, 10)
	recs := readAll(t, l, Offset{})
	f := func(from Offset, want error) {
		t.Helper()
		if err := l.Read(from, func(Offset, Offset, []byte) error { return nil }); !errors.Is(err, want) {
			t.Fatalf("unexpected Read error from %s; got %v; want %v", from, err, want)
		}
	}
	end := l.End()
	f(Offset{end.Segment, end.Pos + 1}, ErrOffset)
	f(Offset{end.Segment + 1, headerLen}, ErrOffset)
	f(Offset{1, 3}, ErrOffset)
	f(Offset{recs[2].at.Segment, recs[2].at.Pos + 1}, ErrOffset)
	last := recs[len(recs)-1]
	if last.at.Segment > 1 {
		// Past the end of a segment that is not the last.
		f(Offset{1, 1 << 20}, ErrOffset)
	}

	// The end of a segment is the start of the next one.
	for i, r := range recs[:len(recs)-1] {
		if recs[i+1].at.Segment != r.at.Segment {
			wantBatches(t, l, r.next, batches[i+1:])
			wantBatches(t, l, recs[i+1].at, batches[i+1:])
		}
	}

	stop := errors.New("stop")
	n := 0
	err := l.Read(Offset{}, func(Offset, Offset, []byte) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("unexpected Read after fn failed; got %v after %d records; want stop after 3", err, n)
	}
}

func TestAppendRefuses(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	end := mustAppend(t, l, encoded(1, 1))
	if got := mustAppend(t, l); got != end {
		t.Fatalf("unexpected end of an empty Append; got %s; want %s", got, end)
	}
	if _, err := l.Append(encoded(2, 1), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("unexpected error for an empty batch; got %v; want ErrTooLarge", err)
	}
	if _, err := l.Append(make([]byte, MaxRecordBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("unexpected error for a huge batch; got %v; want ErrTooLarge", err)
	}
	if l.End() != end {
		t.Fatalf("unexpected end after refused Appends; got %s; want %s", l.End(), end)
	}
	mustAppend(t, l, encoded(3, 1))
	wantBatches(t, l, Offset{}, [][]byte{encoded(1, 1), encoded(3, 1)})
}

// TestTrim keeps every record at or after the offset, before and after a
// reopen, and refuses to read what it removed.
func TestTrim(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 700}
	l := openLog(t, dir, o)
	batches, _ := appendMany(t, l, 1, 40)
	recs := readAll(t, l, Offset{})
	segs := len(segments(t, dir))
	if err := l.Trim(Offset{}); err != nil {
		t.Fatal(err)
	}
	if n := len(segments(t, dir)); n != segs {
		t.Fatalf("Trim at the beginning removed segments: %d of %d left", n, segs)
	}
	for _, i := range []int{5, 17, 18, 30} {
		r := recs[i]
		if err := l.Trim(r.at); err != nil {
			t.Fatalf("cannot trim below %s: %s", r.at, err)
		}
		wantBatches(t, l, r.at, batches[i:])
		first, _ := disk.ParseSegmentName(filepath.Base(segments(t, dir)[0]))
		if first != r.at.Segment {
			t.Fatalf("unexpected first segment after trimming below %s; got %d", r.at, first)
		}
		if err := l.Read(Offset{}, nil); !errors.Is(err, ErrTrimmed) && r.at.Segment > 1 {
			t.Fatalf("unexpected error reading a trimmed beginning; got %v; want ErrTrimmed", err)
		}
	}
	// The end of a segment keeps that segment: the offset reads.
	var atEnd rec
	for i, r := range recs[:len(recs)-1] {
		if recs[i+1].at.Segment != r.at.Segment && r.at.Segment > recs[30].at.Segment {
			atEnd = r
			if err := l.Trim(r.next); err != nil {
				t.Fatal(err)
			}
			wantBatches(t, l, r.next, batches[i+1:])
			break
		}
	}
	if atEnd.next.Segment == 0 {
		t.Fatalf("no segment ends after record 30")
	}
	if err := l.Trim(Offset{l.End().Segment + 1, headerLen}); !errors.Is(err, ErrOffset) {
		t.Fatalf("unexpected error trimming past the end; got %v; want ErrOffset", err)
	}
	l.Close()
	l = openLog(t, dir, o)
	i := slices.IndexFunc(recs, func(r rec) bool { return r.next == atEnd.next })
	wantBatches(t, l, atEnd.next, batches[i+1:])
	if err := l.Read(recs[30].at, nil); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("unexpected error reading a trimmed offset after a reopen; got %v; want ErrTrimmed", err)
	}
	// Everything below the end: one segment is left, and takes appends.
	end := l.End()
	if err := l.Trim(end); err != nil {
		t.Fatal(err)
	}
	if n := len(segments(t, dir)); n != 1 {
		t.Fatalf("unexpected segments after trimming below the end; got %d; want 1", n)
	}
	more, _ := appendMany(t, l, 500, 3)
	wantBatches(t, l, end, more)
}

// TestConcurrent runs one committer, readers that tail the log and a
// trimmer that follows the slowest reader, as the embedded store will; run
// it with -race.
func TestConcurrent(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{SegmentBytes: 4 << 10})
	const calls, readers = 300, 3
	var total uint64
	for i := range calls {
		total += uint64(1 + i%4)
	}
	var mu sync.Mutex
	pos := make([]Offset, readers)
	var wg sync.WaitGroup
	wg.Go(func() {
		id := uint64(1)
		for i := range calls {
			var call [][]byte
			for range 1 + i%4 {
				call = append(call, encoded(id, 1+int(id%5)))
				id++
			}
			if _, err := l.Append(call...); err != nil {
				t.Errorf("cannot append: %s", err)
				return
			}
		}
	})
	for r := range readers {
		wg.Go(func() {
			var from Offset
			var b Batch
			next := uint64(1)
			for next <= total {
				ch := l.Notify()
				err := l.Read(from, func(_, n Offset, p []byte) error {
					if err := DecodeBatch(p, &b); err != nil {
						return err
					}
					if b.ID != next || !reflect.DeepEqual(b.Visits, visits(int(next), 1+int(next%5))) {
						t.Errorf("reader %d: unexpected batch %d; want %d", r, b.ID, next)
					}
					next++
					from = n
					return nil
				})
				if err != nil {
					t.Errorf("reader %d: cannot read from %s: %s", r, from, err)
					return
				}
				mu.Lock()
				pos[r] = from
				mu.Unlock()
				if next <= total {
					<-ch
				}
			}
		})
	}
	done := make(chan struct{})
	var trimmer sync.WaitGroup
	trimmer.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-l.Notify():
			}
			mu.Lock()
			low := slices.MinFunc(pos, compareOffsets)
			mu.Unlock()
			if err := l.Trim(low); err != nil {
				t.Errorf("cannot trim below %s: %s", low, err)
				return
			}
		}
	})
	wg.Wait()
	close(done)
	trimmer.Wait()
	if t.Failed() {
		return
	}
	low := slices.MinFunc(pos, compareOffsets)
	if low != l.End() {
		t.Fatalf("unexpected reader positions %v; want all at the end %s", pos, l.End())
	}
}

func compareOffsets(a, b Offset) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// TestExtend: Append extends a segment file with zeros ahead of its
// records, a step of ExtendBytes at a time and never past SegmentBytes
// but for the records themselves; a reopen takes the zeros for the file's
// unused end, cuts nothing, and appends go on over them.
func TestExtend(t *testing.T) {
	for _, ext := range []int64{-1, 1, 700, 1 << 20} {
		t.Run(strconv.FormatInt(ext, 10), func(t *testing.T) {
			dir := t.TempDir()
			o := Options{SegmentBytes: 3000, ExtendBytes: ext}
			l := openLog(t, dir, o)
			var want [][]byte
			extended := false
			for round := range 3 {
				batches, ends := appendMany(t, l, uint64(100*round+1), 12)
				want = append(want, batches...)
				for _, path := range segments(t, dir) {
					fi, err := os.Stat(path)
					if err != nil {
						t.Fatal(err)
					}
					seq, _ := disk.ParseSegmentName(filepath.Base(path))
					var data int64
					for _, e := range ends {
						if e.Segment == seq {
							data = max(data, e.Pos)
						}
					}
					if data == 0 {
						continue // no append of this round ended here
					}
					zeros := fi.Size() - data
					extended = extended || zeros > 0
					switch {
					case ext < 0 && zeros != 0:
						t.Fatalf("%s: %d bytes past the records, not extending", path, zeros)
					case ext > 0 && (zeros < 0 || zeros > ext+ext/2):
						t.Fatalf("%s: %d bytes, %d of records; want at most %d of zeros", path, fi.Size(), data, ext+ext/2)
					}
					b, err := os.ReadFile(path)
					if err != nil || !allZero(b[data:]) {
						t.Fatalf("%s: the bytes past the records are not zeros (%v)", path, err)
					}
				}
				end := l.End()
				l.Close()
				l = openLog(t, dir, o)
				if l.Recovered() != 0 || l.End() != end {
					t.Fatalf("round %d: a reopen cut %d bytes and ends at %s; want none, %s", round, l.Recovered(), l.End(), end)
				}
				wantBatches(t, l, Offset{}, want)
			}
			if n := len(segments(t, dir)); n < 3 {
				t.Fatalf("the test wants segments to roll over; got %d", n)
			}
			if ext > 0 && !extended {
				t.Fatalf("no segment was extended past its records")
			}
		})
	}
}

// TestSyncMetric: every Append that writes records its fsync in
// clickgate_visitlog_sync_seconds, once; an empty or refused one does not.
func TestSyncMetric(t *testing.T) {
	count := func() string {
		var b bytes.Buffer
		metrics.WritePrometheus(&b, false)
		for line := range strings.Lines(b.String()) {
			if strings.HasPrefix(line, "clickgate_visitlog_sync_seconds_count ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "clickgate_visitlog_sync_seconds_count "))
			}
		}
		return "0"
	}
	l := openLog(t, t.TempDir(), Options{})
	before, _ := strconv.Atoi(count())
	mustAppend(t, l, encoded(1, 1))
	mustAppend(t, l, encoded(2, 1), encoded(3, 1))
	mustAppend(t, l)
	if _, err := l.Append(make([]byte, MaxRecordBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("unexpected error for a huge batch; got %v; want ErrTooLarge", err)
	}
	if got, want := count(), strconv.Itoa(before+2); got != want {
		t.Fatalf("unexpected count of syncs; got %s; want %s", got, want)
	}
}

package visitlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/clickgate/clickgate/counter/disk"
)

// A segment file is a header followed by records, integers little-endian:
//
//	header  "CGVLOG" 0x00 0x01 | the segment's sequence number (8 bytes)
//	record  magic (4 bytes) | n: payload length (uint32) | commit (uint32) | crc32c of n, commit and the payload (uint32) | payload (n bytes)
//	commit  bit 31: the last record of its Append; bits 0-30: bytes from the first record of its Append to this one
//
// The payload is an encoded batch; the log does not look into it.
//
// One Append writes its records with one write and one fsync. A crash
// before the fsync returns can leave any of its pages unwritten, in any
// order, so a torn Append may have whole records after a bad one: the
// commit field tells those (all of them belong to the Append that starts
// where the last whole Append ends) from the whole records of an earlier,
// fsynced Append after a bad one, which no crash explains: corruption.
// Open cuts a torn Append off whole, so the log holds whole Appends only.
//
// A segment file may end in zeros after its last Append: Append extends
// the file ahead of its records (Options.ExtendBytes), so that most
// fsyncs change no metadata. Zeros where a record would start, and only
// zeros to the end of the file, end the segment; zeros after a record
// that is not its Append's last are a torn Append.
var (
	segmentMagic = []byte("CGVLOG\x00\x01")
	recordMagic  = [4]byte{0x9e, 0x4c, 0x0b, 0x71}
)

const (
	headerLen = 16
	frameLen  = 16 // magic, length, commit, crc

	// MaxRecordBytes bounds one encoded batch in the log, so that a
	// damaged length never makes Open or Read allocate more. A batch of
	// MaxVisits typical visits takes about 60 MB.
	MaxRecordBytes = 128 << 20
	// maxAppendBytes bounds the records of one Append, so that the commit
	// field's 31 bits hold any offset in it.
	maxAppendBytes = 1 << 30

	commitLast = 1 << 31
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the record of payload, back bytes after the first
// record of its Append.
func appendRecord(dst, payload []byte, back int, last bool) []byte {
	start := len(dst)
	commit := uint32(back)
	if last {
		commit |= commitLast
	}
	dst = append(dst, recordMagic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, commit)
	dst = append(dst, 0, 0, 0, 0) // crc, set below
	dst = append(dst, payload...)
	crc := crc32.Update(crc32.Checksum(dst[start+4:start+12], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(dst[start+12:], crc)
	return dst
}

// frameHeader checks the first frameLen bytes of a record.
func frameHeader(b []byte) (size, commit uint32, err error) {
	if !bytes.Equal(b[:4], recordMagic[:]) {
		return 0, 0, errors.New("no record magic")
	}
	size = binary.LittleEndian.Uint32(b[4:])
	if size == 0 || size > MaxRecordBytes {
		return 0, 0, fmt.Errorf("payload length %d is out of range", size)
	}
	return size, binary.LittleEndian.Uint32(b[8:]), nil
}

// frame checks the record that starts b: magic, length and crc32c, and
// returns its length, commit field and payload. Failing it is what a torn
// write looks like.
func frame(b []byte) (n int, commit uint32, payload []byte, err error) {
	if len(b) < frameLen {
		return 0, 0, nil, fmt.Errorf("%d bytes left, too few for a record", len(b))
	}
	size, commit, err := frameHeader(b)
	if err != nil {
		return 0, 0, nil, err
	}
	if int64(len(b)-frameLen) < int64(size) {
		return 0, 0, nil, fmt.Errorf("payload of %d bytes, only %d left", size, len(b)-frameLen)
	}
	payload = b[frameLen : frameLen+int(size)]
	want := binary.LittleEndian.Uint32(b[12:])
	if got := crc32.Update(crc32.Checksum(b[4:12], castagnoli), castagnoli, payload); got != want {
		return 0, 0, nil, fmt.Errorf("crc32c mismatch: recorded %08x, computed %08x", want, got)
	}
	return frameLen + int(size), commit, payload, nil
}

// frameError is a record that fails frame, at off in its file.
type frameError struct {
	off    int64
	reason string
}

func (e *frameError) Error() string { return fmt.Sprintf("at byte offset %d: %s", e.off, e.reason) }

// record is one well-framed record; payload is valid until the reader's
// next call.
type record struct {
	off     int64
	n       int
	commit  uint32
	payload []byte
}

// recordReader reads the records of a segment file from pos to limit, a
// buffer at a time, with ReadAt: it shares the file with the writer.
type recordReader struct {
	f          io.ReaderAt
	pos, limit int64 // the next record; where reading stops
	buf        []byte
	start, end int // buf[start:end] is read and not yet returned: the file from pos on
}

// next returns the next record, io.EOF at limit, or a *frameError.
func (r *recordReader) next() (record, error) {
	if r.pos >= r.limit {
		return record{}, io.EOF
	}
	if err := r.fill(frameLen); err != nil {
		return record{}, err
	}
	b := r.buf[r.start:r.end]
	if len(b) < frameLen {
		return record{}, &frameError{r.pos, fmt.Sprintf("%d bytes left, too few for a record", len(b))}
	}
	size, _, err := frameHeader(b)
	if err != nil {
		return record{}, &frameError{r.pos, err.Error()}
	}
	need := frameLen + int(size)
	if left := r.limit - r.pos; int64(need) > left {
		return record{}, &frameError{r.pos, fmt.Sprintf("payload of %d bytes, only %d left", size, left-frameLen)}
	}
	if err := r.fill(need); err != nil {
		return record{}, err
	}
	n, commit, payload, err := frame(r.buf[r.start:r.end])
	if err != nil {
		return record{}, &frameError{r.pos, err.Error()}
	}
	rec := record{off: r.pos, n: n, commit: commit, payload: payload}
	r.start += n
	r.pos += int64(n)
	return rec, nil
}

// fill reads until buf holds k bytes from pos on, or all up to limit.
func (r *recordReader) fill(k int) error {
	avail := r.end - r.start
	left := r.limit - r.pos - int64(avail)
	if avail >= k || left <= 0 {
		return nil
	}
	if len(r.buf) < k {
		buf := make([]byte, max(k, min(2*len(r.buf), frameLen+MaxRecordBytes)))
		copy(buf, r.buf[r.start:r.end])
		r.buf = buf
	} else {
		copy(r.buf, r.buf[r.start:r.end])
	}
	r.start, r.end = 0, avail
	want := int(min(int64(len(r.buf)-avail), left))
	n, err := r.f.ReadAt(r.buf[avail:avail+want], r.pos+int64(avail))
	r.end += n
	if err != nil && err != io.EOF {
		// io.EOF: a file shorter than limit, which frame reports.
		return err
	}
	return nil
}

// badRecord is where a segment stops being whole.
type badRecord struct {
	off    int64
	torn   bool
	reason string
}

// scanSegment reads the segment file f of size bytes from start, a record
// boundary (headerLen: the whole segment). It returns where its last whole
// Append ends and, when that is not the end of the file, why not: torn when
// a crash explains it (see the format above). The records before start are
// not read; an Append under way at start, begun before it, is taken as
// whole once it ends, and can never be torn: only the last Append can, and
// it holds no offset that Read handed out.
func scanSegment(f io.ReaderAt, size, start int64, seq uint64, buf []byte) (end int64, bad *badRecord, err error) {
	var h [headerLen]byte
	if size < headerLen {
		return 0, &badRecord{reason: fmt.Sprintf("%d bytes, too few for a segment header", size)}, nil
	}
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, nil, err
	}
	if !bytes.Equal(h[:8], segmentMagic) {
		return 0, &badRecord{reason: "no visit log segment header"}, nil
	}
	if got := binary.LittleEndian.Uint64(h[8:]); got != seq {
		return 0, &badRecord{reason: fmt.Sprintf("the header says segment %d", got)}, nil
	}
	if start > size {
		return 0, &badRecord{off: start, reason: fmt.Sprintf("the segment has %d bytes; its records were to be read from byte offset %d", size, start)}, nil
	}
	r := recordReader{f: f, pos: start, limit: size, buf: buf}
	end = start
	began := start // where the Append under way began
	open := false  // an Append began and has not ended
	for {
		rec, err := r.next()
		fe, framing := err.(*frameError) // next returns them as they are
		switch {
		case err == io.EOF:
			if open {
				return end, &badRecord{off: end, torn: began == end, reason: "the last append ends without its last record"}, nil
			}
			return end, nil, nil
		case framing:
			zeros, err := zerosFrom(f, fe.off, size, buf)
			switch {
			case err != nil:
				return end, nil, err
			case zeros && !open:
				return end, nil, nil // the extended end of the file
			case zeros:
				return end, &badRecord{off: fe.off, torn: began == end, reason: "the last append ends without its last record"}, nil
			}
			bad := tornOrCorrupt(f, size, end, fe)
			bad.torn = bad.torn && began == end
			return end, bad, nil
		case err != nil:
			return end, nil, err
		}
		// Records lie end to end, so this also asks an Append's first
		// record to say 0.
		at := rec.off - int64(rec.commit&^commitLast)
		switch {
		case open && at == began, !open && at == end:
		case rec.off == start && start > headerLen && at >= headerLen && at < start:
			// The Append under way at start.
		default:
			return end, &badRecord{off: rec.off, reason: fmt.Sprintf("the record says its append began %d bytes before it; it began at byte offset %d", rec.off-at, began)}, nil
		}
		began, open = at, true
		if rec.commit&commitLast != 0 {
			open = false
			end = rec.off + int64(rec.n)
			began = end
		}
	}
}

// zerosFrom reports whether f holds only zero bytes from off to size,
// reading through buf.
func zerosFrom(f io.ReaderAt, off, size int64, buf []byte) (bool, error) {
	if len(buf) == 0 {
		buf = make([]byte, readBufLen)
	}
	for off < size {
		b := buf[:min(int64(len(buf)), size-off)]
		n, err := f.ReadAt(b, off)
		if n < len(b) && err == nil {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return false, err
		}
		for _, c := range b {
			if c != 0 {
				return false, nil
			}
		}
		off += int64(n)
	}
	return true, nil
}

// tornOrCorrupt judges a record that fails framing: torn when every whole
// record after it belongs to the Append that begins at end, the end of the
// last whole one.
func tornOrCorrupt(f io.ReaderAt, size, end int64, fe *frameError) *badRecord {
	bad := &badRecord{off: fe.off, torn: true, reason: fe.reason}
	rest := make([]byte, size-fe.off)
	n, _ := f.ReadAt(rest, fe.off)
	if n == 0 {
		return bad
	}
	eachWhole(rest[1:n], func(i, _ int, commit uint32, _ []byte) bool {
		off := fe.off + 1 + int64(i)
		if began := off - int64(commit&^commitLast); began != end {
			bad.torn = false
			bad.reason += fmt.Sprintf("; a whole record of an append that began at byte offset %d follows at byte offset %d", began, off)
			return false
		}
		return true
	})
	return bad
}

// eachWhole calls fn with each whole record in b, found by its magic past
// whatever is not one, and where in b it starts, until fn returns false.
func eachWhole(b []byte, fn func(off, n int, commit uint32, payload []byte) bool) {
	for i := 0; i+frameLen <= len(b); {
		j := bytes.Index(b[i:], recordMagic[:])
		if j < 0 {
			return
		}
		i += j
		n, commit, payload, err := frame(b[i:])
		if err != nil {
			i++
			continue
		}
		if !fn(i, n, commit, payload) {
			return
		}
		i += n
	}
}

// createSegment creates segment seq in dir: its header is written and
// fsynced under a temporary name, then renamed into place, so a segment
// file always starts with a whole header. On error nothing is left.
func createSegment(dir string, seq uint64, write func(*os.File, []byte, int64) (int, error), sync func(*os.File) error) (*os.File, string, error) {
	path := filepath.Join(dir, disk.SegmentName(seq))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, path, fmt.Errorf("cannot create visit log segment %q: %w", path, err)
	}
	h := binary.LittleEndian.AppendUint64(append(make([]byte, 0, headerLen), segmentMagic...), seq)
	n, err := write(f, h, 0)
	if err == nil && n != len(h) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = sync(f)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = disk.SyncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		os.Remove(path)
		return nil, path, fmt.Errorf("cannot create visit log segment %q: %w", path, err)
	}
	return f, path, nil
}

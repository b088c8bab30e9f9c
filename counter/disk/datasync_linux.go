package disk

import (
	"os"
	"syscall"
)

// DataSync makes the data written to f durable, and the metadata needed to
// read it back (its size), but not the rest (its times): fdatasync(2).
// Overwriting bytes a file already has then changes no metadata, and
// costs only the data's write and the disk's flush.
func DataSync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

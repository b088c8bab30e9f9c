//go:build !linux

package disk

import "os"

// DataSync makes the data written to f durable: f.Sync, where there is no
// fdatasync(2) to call.
func DataSync(f *os.File) error { return f.Sync() }

package disk

import (
	"os"
	"syscall"
)

// Free returns the bytes of the file system that holds path which an
// unprivileged process may still write (statfs(2): f_bavail × f_bsize).
func Free(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return int64(st.Bavail) * st.Bsize, nil
}

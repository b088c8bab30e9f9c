//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package disk

import (
	"errors"
	"os"
	"runtime"
)

// ErrWouldBlock is returned by Lock when another open file holds the lock.
var ErrWouldBlock = errors.New("would block")

// Lock refuses: without a lock two writers could share one file.
func Lock(*os.File) error {
	return errors.New("file locking is not implemented on " + runtime.GOOS)
}

//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package ledger

import (
	"errors"
	"os"
	"runtime"
)

var errWouldBlock = errors.New("would block")

// lockFile refuses: without a lock two writers could fork the chain.
func lockFile(*os.File) error {
	return errors.New("file locking is not implemented on " + runtime.GOOS)
}

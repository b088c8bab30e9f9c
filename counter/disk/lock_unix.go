//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package disk

import (
	"os"
	"syscall"
)

// ErrWouldBlock is returned by Lock when another open file holds the lock.
var ErrWouldBlock error = syscall.EWOULDBLOCK

// Lock takes an exclusive flock on f without waiting. The lock belongs to
// f's open file description: it is released when f is closed, or when the
// process dies, and a second open of the same file in this process cannot
// take it either.
func Lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			return err
		}
	}
}

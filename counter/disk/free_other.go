//go:build !linux

package disk

import (
	"errors"
	"runtime"
)

// Free is not implemented here: the metric that reads it is left out.
func Free(string) (int64, error) {
	return 0, errors.New("free space is not read on " + runtime.GOOS)
}

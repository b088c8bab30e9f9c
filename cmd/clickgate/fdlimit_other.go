//go:build !unix

package main

import (
	"flag"
	"log/slog"
)

// fitFDs does nothing where there is no RLIMIT_NOFILE.
func (f *edgeFlags) fitFDs(*flag.FlagSet, *slog.Logger) error { return nil }

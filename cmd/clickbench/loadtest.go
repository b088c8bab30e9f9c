package main

import (
	"context"
	"io"
)

func loadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usageError("loadtest: not yet")
}

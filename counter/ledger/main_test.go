package ledger

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns
	}
	if !testing.Verbose() {
		// Open warns about every torn tail it truncates, and the tests
		// make hundreds.
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	os.Exit(m.Run())
}

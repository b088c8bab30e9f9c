package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRenamedFlags: a flag's old name, on the command line or in the
// environment, is refused with its new one, before anything starts.
func TestRenamedFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"serve", "--redis-commit-interval", "3ms"}, "", "--redis-commit-interval was renamed --commit-interval"},
		{[]string{"serve", "-redis-commit-interval=3ms"}, "", "--redis-commit-interval was renamed --commit-interval"},
		{[]string{"serve"}, "3ms", "CLICKGATE_REDIS_COMMIT_INTERVAL was renamed CLICKGATE_COMMIT_INTERVAL"},
	} {
		if tc.env != "" {
			t.Setenv("CLICKGATE_REDIS_COMMIT_INTERVAL", tc.env)
		}
		var stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Fatalf("unexpected run of %q with CLICKGATE_REDIS_COMMIT_INTERVAL=%q; got %d %q; want 2 and %q", tc.args, tc.env, code, stderr.String(), tc.want)
		}
	}
}

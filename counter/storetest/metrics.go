package storetest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// CheckpointMetrics returns how many judges' checkpoints this process
// recorded (clickgate_judge_checkpoint_seconds) and their bytes in all
// (clickgate_judge_checkpoint_bytes), having checked that both count the
// same checkpoints.
func CheckpointMetrics(t testing.TB) (count, bytes int64) {
	t.Helper()
	var b strings.Builder
	metrics.WritePrometheus(&b, false)
	value := func(name string) int64 {
		for line := range strings.Lines(b.String()) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					t.Fatalf("cannot read %s: %s", name, err)
				}
				return int64(n)
			}
		}
		return 0
	}
	count = value("clickgate_judge_checkpoint_seconds_count")
	if n := value("clickgate_judge_checkpoint_bytes_count"); n != count {
		t.Fatalf("unexpected checkpoints of known size; got %d; want %d, as timed", n, count)
	}
	return count, value("clickgate_judge_checkpoint_bytes_sum")
}

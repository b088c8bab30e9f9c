package bench

import (
	"fmt"
	"io"
	"time"
)

// Write prints the run's report.
func (r *Result) Write(w io.Writer) {
	loop := fmt.Sprintf("closed loop, %d connections", r.Connections)
	if r.Loop == "open" {
		loop = fmt.Sprintf("open loop at %.0f req/s, up to %d connections", r.Rate, r.Connections)
	}
	fmt.Fprintf(w, "%s: %d requests answered in %s, %d sessions, %d errors\n", loop, r.Requests, r.Elapsed.Round(time.Millisecond), r.Sessions, r.Errors)
	fmt.Fprintf(w, "throughput: %.0f req/s\n", r.Throughput)
	fmt.Fprintf(w, "latency:    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.P999), ms(r.Latency.Max))
	if r.Loop == "open" {
		fmt.Fprintf(w, "send lag:   p50 %s  p99 %s  max %s (the generator's own delay, included above)\n", ms(r.SendLag.P50), ms(r.SendLag.P99), ms(r.SendLag.Max))
	}
	fmt.Fprintf(w, "%-10s %10s %10s %10s %10s\n", "kind", "sent", "ok", "unexpected", "errors")
	for k := range numKinds {
		c := r.Kinds[k.String()]
		fmt.Fprintf(w, "%-10s %10d %10d %10d %10d\n", k, c.Sent, c.OK, c.Unexpected, c.Errors)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/1e6) }

package admin

import (
	"bytes"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// metrics answers GET /metrics: every metric of the process, declared next
// to the code it counts, in the Prometheus text format, with the Go runtime
// and process metrics. It is behind the admin token like the rest of the
// admin API; Prometheus sends it with bearer_token.
func (a *API) metrics() (int, any, error) {
	var b bytes.Buffer
	metrics.WritePrometheus(&b, true)
	return fasthttp.StatusOK, rawBody{"text/plain; version=0.0.4; charset=utf-8", b.Bytes()}, nil
}

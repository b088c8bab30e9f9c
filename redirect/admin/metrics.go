package admin

import (
	"bytes"
	"context"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// metrics answers GET /metrics: every metric of the process, declared next
// to the code it counts, in the Prometheus text format, with the Go runtime
// and process metrics. Every family has its # HELP (from metricHelp) and #
// TYPE. It is behind the admin token like the rest of the admin API;
// Prometheus sends it with bearer_token.
func (a *API) metrics() (int, any, error) {
	if a.o.BeforeMetrics != nil {
		a.o.BeforeMetrics()
	}
	var b bytes.Buffer
	metrics.ExposeMetadata(true)
	metrics.WritePrometheus(&b, true)
	return fasthttp.StatusOK, rawBody{"text/plain; version=0.0.4; charset=utf-8", appendHelp(nil, b.Bytes())}, nil
}

// appendHelp appends exposition to dst with the text of every bare "# HELP
// family" line filled in from MetricHelp; lines that have a text, and
// families it does not know, are kept as they are.
func appendHelp(dst, exposition []byte) []byte {
	const prefix = "# HELP "
	for len(exposition) > 0 {
		line := exposition
		if i := bytes.IndexByte(exposition, '\n'); i >= 0 {
			line = exposition[:i+1]
		}
		exposition = exposition[len(line):]
		name := bytes.TrimSuffix(line, []byte("\n"))
		if !bytes.HasPrefix(name, []byte(prefix)) || bytes.IndexByte(name[len(prefix):], ' ') >= 0 {
			dst = append(dst, line...)
			continue
		}
		name = name[len(prefix):]
		help := MetricHelp(string(name))
		if help == "" {
			dst = append(dst, line...)
			continue
		}
		dst = append(dst, prefix...)
		dst = append(dst, name...)
		dst = append(dst, ' ')
		dst = append(dst, help...)
		dst = append(dst, '\n')
	}
	return dst
}

// ready answers /readyz: 200 when the store answers within ReadyTimeout,
// else 503 and why. /healthz is liveness and says ok whatever the store
// does; redirects fail open, so an edge that is not ready still redirects.
func (a *API) ready(rc *fasthttp.RequestCtx) {
	rc.SetContentType("text/plain; charset=utf-8")
	if a.o.Ready != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
		defer cancel()
		if err := a.o.Ready(ctx); err != nil {
			readyFailures.Inc()
			rc.SetStatusCode(fasthttp.StatusServiceUnavailable)
			rc.SetBodyString("not ready: store: " + err.Error() + "\n")
			return
		}
	}
	rc.SetBodyString("ready\n")
}

var readyFailures = metrics.NewCounter(`clickgate_readiness_failures_total`)

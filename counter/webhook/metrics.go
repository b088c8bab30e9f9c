package webhook

import (
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

var (
	attemptsCounter  = metrics.NewCounter(`clickgate_webhook_attempts_total`)
	failuresCounter  = metrics.NewCounter(`clickgate_webhook_failures_total`)
	deliveredCounter = metrics.NewCounter(`clickgate_webhook_delivered_total`)
	droppedCounter   = metrics.NewCounter(`clickgate_webhook_dropped_total`)
	outboxErrors     = metrics.NewCounter(`clickgate_webhook_outbox_errors_total`)

	// pendingTotal is the pending deliveries of every open outbox (one in
	// serve).
	pendingTotal atomic.Int64
	_            = metrics.NewGauge(`clickgate_webhook_pending`, func() float64 { return float64(pendingTotal.Load()) })
)

func init() {
	for _, t := range Types {
		eventsCounter(t)
	}
}

func eventsCounter(typ string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`clickgate_webhook_events_total{type="` + typ + `"}`)
}

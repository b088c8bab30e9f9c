package admin

import "strings"

// metricHelp documents every clickgate metric family of /metrics: its #
// HELP line. The metrics are declared next to the code they count, in
// several packages; their documentation is kept here, in one place, so that
// an operator reads it in one file and a test (TestMetricsHelp, and
// TestMetricsExposition on the real binary) fails on a family without one.
var metricHelp = map[string]string{
	// Clicks and redirects (redirect, counter).
	"clickgate_clicks_total":              "Clicks by what became of them (reason: qualified, duplicates, bots, previews, prefetches, velocity, budget, out_of_window, inactive, uncounted). Reasons decided at the edge are counted by the node that served the click, reasons decided by a judge by the node whose judge decided; sum over nodes. A judge replaying its log after a restart or a handover counts the replayed visits again.",
	"clickgate_redirect_duration_seconds": "Time from a request read to its 302 ready, for every redirect of the public listener: resolution, classification and, for a new visitor, the wait for the commit or the spool.",
	"clickgate_public_refused_total":      "Requests of the public listener answered with an error, by reason (malformed_request, headers_too_large, body_too_large and timeout: what fasthttp could not read; method, body, host, malformed_path, unknown_code, probes, conns_per_ip, conns_per_block, max_conns).",
	"clickgate_accept_errors_total":       "Errors accepting connections on the public listener, by reason.",
	"clickgate_readiness_failures_total":  "Checks of /readyz that failed: the store did not answer a ping within 500ms, or may evict any key, is at its maxmemory, or lacks the replicas --redis-replica-acks asks for (Redis), or its visit log could not take visits, or has no room ahead of its records (the embedded store).",
	"clickgate_build_info":                "Always 1; the labels name the build: version (set with -ldflags -X) and goversion.",
	"clickgate_data_free_bytes":           "Free bytes of the file system of --data (the embedded store, the spool, the ledger), read at each scrape (statfs: what an unprivileged process may still write).",

	// The group commit and the spool (counter).
	"clickgate_commit_duration_seconds":        "Duration of one group commit: one batch of visits written to the store.",
	"clickgate_commits_late_total":             "Batches whose commit took longer than --commit-timeout: their visits were spooled and the people redirected.",
	"clickgate_store_commit_errors_total":      "Batches the store failed to commit.",
	"clickgate_visits_spooled_total":           "Visits written to the local spool because the store did not commit them in time.",
	"clickgate_visits_replayed_total":          "Spooled visits replayed into the store.",
	"clickgate_visits_uncounted_total":         "Visits neither committed nor spooled: tallied as uncounted.",
	"clickgate_visits_lost_total":              "Visits neither committed nor spooled, by reason (spool_full, spool_error, store_error, queue_full, stopped, expired); each is tallied as uncounted.",
	"clickgate_spool_appended_batches_total":   "Batches appended to the spool.",
	"clickgate_spool_replayed_batches_total":   "Spooled batches replayed into the store.",
	"clickgate_spool_late_acked_batches_total": "Spooled batches whose late commit succeeded after all, so they are not replayed.",
	"clickgate_spool_read_errors_total":        "Errors reading a batch back from the spool.",
	"clickgate_spool_write_errors_total":       "Errors writing to the spool.",
	"clickgate_spool_bytes":                    "Bytes in the spool's files.",
	"clickgate_spool_pending_batches":          "Batches in the spool waiting for their replay.",

	// The store: visit logs, judges, dedupe (counter/...).
	"clickgate_visitlog_bytes":               "Bytes in the embedded store's visit log segments.",
	"clickgate_visitlog_appends_total":       "Visits appended to the embedded store's visit logs.",
	"clickgate_visitlog_batches_total":       "Batches appended to the embedded store's visit logs, each fsynced.",
	"clickgate_visitlog_write_errors_total":  "Errors writing the embedded store's visit logs.",
	"clickgate_visitlog_sync_seconds":        "Duration of the fsync of one append to the embedded store's visit log, the disk's share of a group commit.",
	"clickgate_redis_round_trips_total":      "Exchanges with Redis: a command, or a pipeline of them.",
	"clickgate_redis_replica_timeouts_total": "Appends of visits that fewer replicas than --redis-replica-acks acknowledged in time; their visits were spooled and appended again.",
	"clickgate_judge_visits_total":           "Visits decided by this node's judges (Redis store).",
	"clickgate_judge_batches_total":          "Log batches decided by this node's judges (Redis store).",
	"clickgate_judge_batches_skipped_total":  "Log batches a judge found decided already (a batch shipped twice).",
	"clickgate_judge_errors_total":           "Errors of this node's judges.",
	"clickgate_judge_checkpoints_total":      "Checkpoints written by this node's judges.",
	"clickgate_judge_checkpoint_seconds":     "Time to take one checkpoint of a judge of this node (both stores): the copy of its state (embedded store), its marshalling and its write. It grows with the judge's state, and takes CPU on the cores the redirects share.",
	"clickgate_judge_checkpoint_bytes":       "Size of each checkpoint of a judge of this node (both stores): its filters, the networks of the velocity window, the budgets of the day, the counters.",
	"clickgate_judge_leases_acquired_total":  "Partition leases this node's judges acquired (start, takeover after another node stopped).",
	"clickgate_follow_visits_total":          "Visits of the logs this node learnt into its local filter: read by its follower (source=log), or handed over by its own judges for the partitions they hold (source=judge).",
	"clickgate_dedupe_layers_added_total":    "Layers added to dedupe windows: more visitors than --dedupe-expected.",
	"clickgate_dedupe_window_layers":         "The most layers of any dedupe window.",
	"clickgate_dedupe_false_positive_rate":   "The highest expected false-duplicate rate of any dedupe window.",

	// The link table (redirect).
	"clickgate_catalog_changes_applied_total": "Catalog changes applied to the link table.",
	"clickgate_catalog_trimmed_reloads_total": "Whole-catalog reloads because the change feed was trimmed past the table's version.",
	"clickgate_catalog_resets_total":          "Catalogs the link table refused to swap in because they lack links it serves (a store reset, or a failover to a stale replica): each refused reload counts.",

	// The ledger flush and payouts (cmd/clickgate, counter/ledger, counter/payout).
	"clickgate_ledger_flushes_total":                     "Flushes of the store's totals into the ledger on this node, by result (ok, error).",
	"clickgate_ledger_flush_duration_seconds":            "Duration of one flush into the ledger.",
	"clickgate_ledger_last_flush_timestamp_seconds":      "Unix time of the last flush that succeeded.",
	"clickgate_ledger_last_seq":                          "Sequence number of the ledger's last record.",
	"clickgate_ledger_behind_total":                      "Creators found, at a flush, with store totals below the ledger's (did Redis lose writes?); the ledger keeps its totals.",
	"clickgate_ledger_statements_sealed_total":           "Final campaign statements sealed into the ledger.",
	"clickgate_campaign_payable":                         "1 when the campaign's final statement is sealed in the ledger and can be paid out, else 0.",
	"clickgate_campaign_payable_after_timestamp_seconds": "Unix time after which the campaign's final statement is sealed: its end plus its signup grace.",
	"clickgate_campaign_earned_cents":                    "What the campaign pays in cents, capped: the sealed statement's total, or before it the total of the ledger as of the last flush.",
	"clickgate_campaign_creators":                        "Creators of the campaign in the ledger, by payout status (payable, invited, suspended, ineligible_country).",

	// Webhooks (counter/webhook).
	"clickgate_webhook_events_total":        "Webhook events emitted by this node into its outbox, by type; an event emitted again with the same id is not counted.",
	"clickgate_webhook_attempts_total":      "Webhook delivery attempts that got an answer or failed (an attempt cut short by a shutdown is not counted).",
	"clickgate_webhook_failures_total":      "Webhook delivery attempts that did not get a 2xx: each is retried with backoff.",
	"clickgate_webhook_delivered_total":     "Webhook deliveries that got a 2xx and left the outbox.",
	"clickgate_webhook_dropped_total":       "Pending webhook deliveries dropped because their endpoint was removed.",
	"clickgate_webhook_pending":             "Webhook deliveries in this node's outbox waiting for a 2xx.",
	"clickgate_webhook_outbox_errors_total": "Webhook events that could not be written to the outbox (the conversion answered 503; a ledger event is emitted again at the next flush).",
}

// Families of the Go runtime and the process, written by VictoriaMetrics'
// metrics package, documented by name.
var runtimeHelp = map[string]string{
	"go_goroutines":                 "Goroutines that currently exist.",
	"go_threads":                    "OS threads created.",
	"go_gomaxprocs":                 "GOMAXPROCS: the OS threads that can execute Go code at once.",
	"go_cpu_count":                  "Logical CPUs usable by the process.",
	"go_info":                       "Always 1; the label names the Go version.",
	"go_info_ext":                   "Always 1; the labels name GOOS, GOARCH and the compiler.",
	"go_gc_duration_seconds":        "Quantiles of the stop-the-world pauses of the garbage collector.",
	"go_gc_pauses_seconds":          "Distribution of the garbage collector's stop-the-world pauses.",
	"go_sched_latencies_seconds":    "Distribution of the time goroutines waited runnable before running.",
	"go_memlimit_bytes":             "The Go memory limit (GOMEMLIMIT).",
	"process_cpu_seconds_total":     "CPU time of the process, user and system.",
	"process_resident_memory_bytes": "Resident memory of the process.",
	"process_start_time_seconds":    "Unix time the process started.",
	"process_open_fds":              "File descriptors open.",
	"process_max_fds":               "Limit of open file descriptors.",
}

// MetricHelp returns the help text of a metric family, or "" for a family
// that is not documented.
func MetricHelp(family string) string {
	if h := metricHelp[family]; h != "" {
		return h
	}
	if h := runtimeHelp[family]; h != "" {
		return h
	}
	switch {
	case strings.HasPrefix(family, "go_memstats_"):
		return "Go runtime.MemStats " + strings.TrimPrefix(family, "go_memstats_") + " (https://pkg.go.dev/runtime#MemStats)."
	case strings.HasPrefix(family, "go_"):
		return "Go runtime figure " + strings.TrimPrefix(family, "go_") + " (https://pkg.go.dev/runtime/metrics)."
	case strings.HasPrefix(family, "process_"):
		return "Process figure " + strings.TrimPrefix(family, "process_") + ", read from /proc."
	}
	return ""
}

package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter/ledger"
	"github.com/clickgate/clickgate/counter/webhook"
	"github.com/clickgate/clickgate/redirect/admin"
)

// webhookFlags configure serve's webhook deliveries.
type webhookFlags struct {
	dir                         *string
	timeout, retryMin, retryMax *time.Duration
	workers                     *int
}

func addWebhookFlags(fs *flag.FlagSet) webhookFlags {
	return webhookFlags{
		dir:      fs.String("webhook-outbox", "", "directory of this node's webhook outbox: emitted event ids, pending deliveries and the endpoints (with --redis, a copy of those all nodes share in Redis) (default DATA/webhooks)"),
		timeout:  fs.Duration("webhook-timeout", 10*time.Second, "how long one webhook delivery attempt may take, the receiver's answer included"),
		retryMin: fs.Duration("webhook-retry-min", time.Second, "backoff after a webhook delivery's first failed attempt; it doubles with each failure, a random half of it jitter"),
		retryMax: fs.Duration("webhook-retry-max", time.Hour, "longest backoff between two attempts of a webhook delivery; a delivery is retried until a 2xx or its endpoint is removed"),
		workers:  fs.Int("webhook-workers", 4, "webhook delivery attempts in flight at once"),
	}
}

// webhooks is serve's outbox and its deliverer.
type webhooks struct {
	outbox *webhook.Outbox
	shared *webhook.Shared // with a store that keeps endpoints for every node (Redis); else nil
	d      *webhook.Deliverer
	log    *slog.Logger
}

// start opens the outbox under dataDir and starts delivering. With a
// store that is a webhook.Registry (Redis), the endpoints are the store's,
// shared by every node, and each event is delivered by the node that
// claims it first.
func (f webhookFlags) start(dataDir string, store any, log *slog.Logger) (*webhooks, error) {
	if *f.timeout <= 0 || *f.retryMin <= 0 || *f.retryMax < *f.retryMin || *f.workers < 1 {
		return nil, usageError("--webhook-timeout and --webhook-retry-min must be above 0, --webhook-retry-max at least --webhook-retry-min, --webhook-workers at least 1")
	}
	dir := *f.dir
	if dir == "" {
		dir = filepath.Join(dataDir, "webhooks")
	}
	o, err := webhook.Open(dir)
	if err != nil {
		return nil, err
	}
	w := &webhooks{outbox: o, log: log}
	opt := webhook.DelivererOptions{Timeout: *f.timeout, RetryMin: *f.retryMin, RetryMax: *f.retryMax,
		Workers: *f.workers, UserAgent: "clickgate-webhook/" + version, Logger: log}
	if reg, ok := store.(webhook.Registry); ok {
		w.shared = webhook.NewShared(o, reg, webhook.SharedOptions{Logger: log})
		w.shared.Start()
		opt.Claimer = w.shared
	}
	w.d = webhook.NewDeliverer(o, opt)
	w.d.Start()
	return w, nil
}

// api is what the admin API manages: the shared endpoints, or the
// outbox's own.
func (w *webhooks) api() admin.Webhooks {
	if w.shared != nil {
		return w.shared
	}
	return w.outbox
}

// stop stops the deliveries and closes the outbox; what is pending is
// delivered after the next start.
func (w *webhooks) stop() {
	w.d.Stop()
	if w.shared != nil {
		w.shared.Stop()
	}
	if err := w.outbox.Close(); err != nil {
		w.log.Error("cannot close the webhook outbox", "err", err)
	}
}

// fromLedger emits the events the ledger states, after every flush and at
// start: creator.cap_reached for every creator whose earnings reach the
// campaign's cap, campaign.payable for every sealed statement. The outbox
// keeps each id once, so only what is new is written; and since it is
// derived from the ledger every time, an event a crash kept from the
// outbox is emitted by the next flush, or the next start.
func (w *webhooks) fromLedger(rep ledger.Report) {
	evs := ledgerEvents(rep, w.log)
	if n, err := w.outbox.EmitAll(evs, time.Now()); err != nil {
		w.log.Error("cannot emit the ledger's webhook events; the next flush emits them", "err", err)
	} else if n > 0 {
		w.log.Info("emitted webhook events", "events", n)
	}
}

// ledgerEvents returns the events that rep states, by campaign.
func ledgerEvents(rep ledger.Report, log *slog.Logger) []webhook.Event {
	var evs []webhook.Event
	ids := make([]string, 0, len(rep.Campaigns))
	for id := range rep.Campaigns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		t := rep.Campaigns[id]
		st, err := rep.Standing(id)
		if err != nil {
			log.Error("cannot compute the standing of a campaign for its webhook events", "campaign", id, "err", err)
			continue
		}
		for _, r := range st.Rows {
			// A cap of 0 pays nothing: there is nothing to reach.
			if t.CapCents > 0 && r.EarnedCents >= t.CapCents {
				evs = append(evs, webhook.CapEvent(webhook.Cap{Campaign: id, Creator: r.CreatorID, CapCents: t.CapCents,
					EarnedCents: r.EarnedCents, QualifiedVisits: r.QualifiedVisits, Signups: r.Signups, Status: r.Status, LedgerSeq: rep.LastSeq}))
			}
		}
		if s, ok := rep.Statements[id]; ok {
			evs = append(evs, webhook.PayableEvent(webhook.Payable{Campaign: id, Statement: s.Statement, Currency: s.Currency,
				TotalCents: s.TotalCents, Creators: len(s.Rows), LedgerHead: s.LedgerHead}))
		}
	}
	return evs
}

func init() {
	subcommands["webhooks"] = [][2]string{
		{"add --url URL [--events T,T] [--description D] [--secret S]", "a new endpoint; its secret is printed once"},
		{"list", "the endpoints, their pending deliveries and last errors"},
		{"get ID", "one endpoint"},
		{"remove ID", "remove an endpoint and drop its pending deliveries"},
	}
}

// webhooksCmd is `clickgate webhooks add|list|get|remove`, through a
// node's admin API: with Redis any node's, the endpoints being shared.
func webhooksCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand("webhooks", args, stdout)
	if err != nil {
		return err
	}
	fs := newFlagSet("webhooks "+sub, stderr)
	adminURL, token, dataDir := addClientFlags(fs)
	var u, events, desc, secret *string
	if sub == "add" {
		u = fs.String("url", "", "URL the events are POSTed to: http or https (required)")
		events = fs.String("events", "", "comma-separated event types it receives: "+strings.Join(webhook.Types, ", ")+" (default: all)")
		desc = fs.String("description", "", "for operators")
		secret = fs.String("secret", "", "signing secret, 32 to 256 characters, to give an endpoint a secret of one's own (default: generated)")
	}
	id, args := splitID(args)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var spec webhook.Spec
	if sub == "add" {
		spec = webhook.Spec{URL: *u, Description: *desc, Secret: *secret}
		for _, t := range strings.Split(*events, ",") {
			if t = strings.TrimSpace(t); t != "" {
				spec.Events = append(spec.Events, t)
			}
		}
	}
	switch sub {
	case "add", "list":
		if id != "" {
			return usageError("webhooks %s: unexpected argument %q", sub, id)
		}
		if err := noArgs(fs); err != nil {
			return err
		}
	case "get", "remove":
		if id, err = requireID(fs, id, "endpoint id"); err != nil {
			return err
		}
	}
	c, err := newAdminClient(*adminURL, *token, *dataDir)
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		return printAnswer(stdout)(c.AddWebhook(ctx, spec))
	case "list":
		list, err := c.Webhooks(ctx)
		return printAnswer(stdout)(map[string]any{"webhooks": list}, err)
	case "get":
		return printAnswer(stdout)(c.Webhook(ctx, id))
	default:
		return printAnswer(stdout)(c.RemoveWebhook(ctx, id))
	}
}

package redisstore

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/counter/storetest"
	"github.com/clickgate/clickgate/counter/webhook"
)

// TestWebhookRegistry: the endpoints and claims of webhook.Registry, on
// one server and on a 3-master cluster (where every key of one call must
// be in one slot, or Redis refuses it).
func TestWebhookRegistry(t *testing.T) {
	t.Run("Single", func(t *testing.T) {
		testWebhookRegistry(t, Options{URL: redistest.Start(t).URL(0)})
	})
	t.Run("Cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
		testWebhookRegistry(t, Options{URL: c.URL(), Cluster: true})
	})
}

func testWebhookRegistry(t *testing.T, o Options) {
	ctx := context.Background()
	o.Params = storetest.Params(t)
	s, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if eps, err := s.Webhooks(ctx); err != nil || len(eps) != 0 {
		t.Fatalf("unexpected endpoints of a new store; got %v, %v; want none", eps, err)
	}
	a, _ := webhook.Spec{URL: "https://a.example.com/hooks", Description: "a"}.Endpoint(time.Now())
	b, _ := webhook.Spec{URL: "https://b.example.com/hooks", Events: []string{webhook.CampaignPayable}}.Endpoint(time.Now())
	for _, ep := range []webhook.Endpoint{a, b} {
		if err := s.AddWebhook(ctx, ep); err != nil {
			t.Fatalf("cannot add endpoint %s: %s", ep.ID, err)
		}
	}
	if err := s.AddWebhook(ctx, a); !errors.Is(err, webhook.ErrExists) || !strings.Contains(err.Error(), a.ID) {
		t.Fatalf("unexpected error adding %s again; got %v; want webhook.ErrExists naming it", a.ID, err)
	}
	eps, err := s.Webhooks(ctx)
	if err != nil || len(eps) != 2 {
		t.Fatalf("unexpected endpoints; got %v, %v; want 2", eps, err)
	}
	for _, ep := range eps {
		want := a
		if ep.ID == b.ID {
			want = b
		}
		if ep.ID != want.ID || ep.URL != want.URL || ep.Secret != want.Secret || !ep.CreatedAt.Equal(want.CreatedAt) ||
			strings.Join(ep.Events, ",") != strings.Join(want.Events, ",") || ep.Description != want.Description {
			t.Fatalf("unexpected endpoint read back; got %+v; want %+v", ep, want)
		}
	}

	// The first holder to claim an event for an endpoint delivers it there,
	// as often as it asks; the others never. Another endpoint is another
	// claim: the first holder may not know it yet.
	claim := func(event, endpoint, holder string, want bool) {
		t.Helper()
		if got, err := s.ClaimDelivery(ctx, event, endpoint, holder); got != want || err != nil {
			t.Fatalf("unexpected claim of %s to %s by %s; got %v, %v; want %v", event, endpoint, holder, got, err, want)
		}
	}
	claim("evt_1", a.ID, "ob_a", true)
	claim("evt_1", a.ID, "ob_b", false)
	claim("evt_1", b.ID, "ob_b", true)
	claim("evt_1", b.ID, "ob_a", false)
	claim("evt_1", a.ID, "ob_a", true)
	claim("evt_2", a.ID, "ob_b", true)
	// An unknown endpoint claims nothing, and leaves the event to others.
	claim("evt_3", "wh_gone", "ob_a", false)
	claim("evt_3", a.ID, "ob_b", true)
	// A claim of the whole event, as nodes wrote before claims were per
	// endpoint, holds it for its holder at every endpoint.
	if err := s.rdb.HSet(ctx, s.webhookKey("events"), "evt_4", "ob_old").Err(); err != nil {
		t.Fatal(err)
	}
	claim("evt_4", a.ID, "ob_b", false)
	claim("evt_4", b.ID, "ob_old", true)
	claim("evt_4", b.ID, "ob_b", false)

	if err := s.RemoveWebhook(ctx, a.ID); err != nil {
		t.Fatalf("cannot remove %s: %s", a.ID, err)
	}
	if err := s.RemoveWebhook(ctx, a.ID); !errors.Is(err, webhook.ErrNotFound) || !strings.Contains(err.Error(), a.ID) {
		t.Fatalf("unexpected error removing %s again; got %v; want webhook.ErrNotFound naming it", a.ID, err)
	}
	claim("evt_1", a.ID, "ob_a", false) // removed: no more deliveries to it
	claim("evt_1", b.ID, "ob_b", true)
	if eps, err := s.Webhooks(ctx); err != nil || len(eps) != 1 || eps[0].ID != b.ID {
		t.Fatalf("unexpected endpoints after removing %s; got %v, %v; want %s alone", a.ID, eps, err, b.ID)
	}

	// Another prefix is another registry.
	o.Prefix = "other"
	other, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if eps, err := other.Webhooks(ctx); err != nil || len(eps) != 0 {
		t.Fatalf("unexpected endpoints under another prefix; got %v, %v; want none", eps, err)
	}
}

// hookSink counts the deliveries it verified, by event id.
type hookSink struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	got    map[string]int
	from   map[string]string // event id → user agent
	hit    chan struct{}
}

func (s *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := webhook.Verify(s.secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), webhook.Tolerance); err != nil {
		s.t.Errorf("a delivery failed its signature: %s", err)
		http.Error(w, err.Error(), 401)
		return
	}
	s.mu.Lock()
	s.got[r.Header.Get(webhook.IDHeader)]++
	s.from[r.Header.Get(webhook.IDHeader)] = r.UserAgent()
	s.mu.Unlock()
	select {
	case s.hit <- struct{}{}:
	default:
	}
}

func (s *hookSink) deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

// hookNode is a node's outbox, sharing the store's endpoints.
type hookNode struct {
	o      *webhook.Outbox
	shared *webhook.Shared
	d      *webhook.Deliverer
}

func newHookNode(t *testing.T, s *Store, name string, poll time.Duration, start bool) *hookNode {
	t.Helper()
	o, err := webhook.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := &hookNode{o: o, shared: webhook.NewShared(o, s, webhook.SharedOptions{Poll: poll})}
	n.d = webhook.NewDeliverer(o, webhook.DelivererOptions{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Claimer: n.shared, UserAgent: name})
	if start {
		n.shared.Start()
	}
	n.d.Start()
	t.Cleanup(func() {
		n.d.Stop()
		if start {
			n.shared.Stop()
		}
		o.Close()
	})
	return n
}

// waitFor polls cond, which reads state another goroutine changes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharedWebhooks: two nodes' outboxes on one Redis. An endpoint added
// through one is the other's at once when listed, and by its next poll
// otherwise; an event both nodes emit is delivered once per endpoint, by
// the node that claimed it; an endpoint removed through one node gets
// nothing more from the other, even before the other polls.
func TestSharedWebhooks(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := Open(ctx, Options{URL: srv.URL(0), Params: storetest.Params(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sink := &hookSink{t: t, got: map[string]int{}, from: map[string]string{}, hit: make(chan struct{}, 1)}
	rcv := httptest.NewServer(sink)
	defer rcv.Close()

	a := newHookNode(t, s, "node-a", 20*time.Millisecond, true)
	// b reads the registry when it is listed, and never on its own.
	b := newHookNode(t, s, "node-b", time.Hour, false)
	if a.o.Node() == b.o.Node() || !strings.HasPrefix(a.o.Node(), "ob_") {
		t.Fatalf("unexpected outbox ids %q and %q", a.o.Node(), b.o.Node())
	}
	ep, _ := webhook.Spec{URL: rcv.URL + "/hooks"}.Endpoint(time.Now())
	sink.secret = []byte(ep.Secret)
	if err := a.shared.Add(ep); err != nil {
		t.Fatal(err)
	}
	list, err := b.shared.Endpoints()
	if err != nil || len(list) != 1 || list[0].ID != ep.ID || list[0].Secret != "" {
		t.Fatalf("unexpected endpoints listed on the other node; got %+v, %v; want %s without its secret", list, err, ep.ID)
	}

	// b attributes the signup; a, sent the same conversion again,
	// emits it too: one delivery.
	signup := webhook.SignupEvent(webhook.Signup{Campaign: "c", Creator: "x", UserID: "u"})
	if ok, err := b.shared.Emit(signup, time.Now()); !ok || err != nil {
		t.Fatalf("unexpected Emit on b; got %v, %v", ok, err)
	}
	waitFor(t, "the signup delivered", func() bool { return sink.deliveries()[signup.ID] == 1 })
	if ok, err := a.shared.Emit(signup, time.Now()); !ok || err != nil {
		t.Fatalf("unexpected Emit on a; got %v, %v", ok, err)
	}
	waitFor(t, "a's copy of the signup dropped", func() bool { return a.o.Pending() == 0 })
	// The flusher's event comes from a (b does not flush).
	payable := webhook.PayableEvent(webhook.Payable{Campaign: "c"})
	a.shared.Emit(payable, time.Now())
	waitFor(t, "the payable event delivered", func() bool { return sink.deliveries()[payable.ID] == 1 })
	got := sink.deliveries()
	sink.mu.Lock()
	from := sink.from[signup.ID] + " " + sink.from[payable.ID]
	sink.mu.Unlock()
	if len(got) != 2 || got[signup.ID] != 1 || from != "node-b node-a" {
		t.Fatalf("unexpected deliveries; got %v from %q; want each event once, the signup from node-b, the payable from node-a", got, from)
	}

	// Removed through a (which polls): b, which has not read the
	// registry since, delivers nothing more to it.
	waitFor(t, "a's 2xx recorded", func() bool { return a.o.Pending() == 0 })
	if n, err := a.shared.Remove(ep.ID); n != 0 || err != nil {
		t.Fatalf("unexpected Remove; got %d, %v; want 0 dropped", n, err)
	}
	if _, err := a.shared.Remove(ep.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("unexpected second Remove; got %v; want webhook.ErrNotFound", err)
	}
	capped := webhook.CapEvent(webhook.Cap{Campaign: "c", Creator: "x", CapCents: 100})
	if ok, err := b.shared.Emit(capped, time.Now()); !ok || err != nil || b.o.Pending() != 1 {
		t.Fatalf("unexpected Emit on b before it read the removal; got %v, %v, %d pending; want a delivery queued", ok, err, b.o.Pending())
	}
	waitFor(t, "b's delivery to the removed endpoint dropped", func() bool { return b.o.Pending() == 0 })
	if list, err := b.shared.Endpoints(); err != nil || len(list) != 0 {
		t.Fatalf("unexpected endpoints on b after the removal; got %+v, %v; want none", list, err)
	}
	if got := sink.deliveries(); len(got) != 2 {
		t.Fatalf("unexpected deliveries after the removal; got %v; want the 2 before it", got)
	}
}

// TestSharedWebhooksAdoptOwn: an outbox that had endpoints of its own
// before it shared them (a node upgraded) puts them into the registry
// once, with their pending deliveries kept; after that, an endpoint
// missing from the registry is one removed by another node, and goes.
func TestSharedWebhooksAdoptOwn(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{URL: redistest.Start(t).URL(0), Params: storetest.Params(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := webhook.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ep, _ := webhook.Spec{URL: "http://127.0.0.1:1/"}.Endpoint(time.Now())
	o.Add(ep)
	o.Emit(webhook.PayableEvent(webhook.Payable{Campaign: "c"}), time.Now())

	sh := webhook.NewShared(o, s, webhook.SharedOptions{Poll: time.Hour})
	// Before its endpoints are in the registry, an outbox claims nothing:
	// its deliveries wait, rather than go as those of a removed endpoint.
	if ok, err := sh.ClaimDelivery(ctx, "evt_1", ep.ID, o.Node()); ok || err == nil || !strings.Contains(err.Error(), "not in the shared ones yet") {
		t.Fatalf("unexpected claim before the first sync; got %v, %v; want an error", ok, err)
	}
	sh.Start()
	if ok, err := sh.ClaimDelivery(ctx, "evt_1", ep.ID, o.Node()); !ok || err != nil {
		t.Fatalf("unexpected claim after the first sync; got %v, %v; want true", ok, err)
	}
	defer sh.Stop()
	if eps, err := s.Webhooks(ctx); err != nil || len(eps) != 1 || eps[0].ID != ep.ID || eps[0].Secret != ep.Secret {
		t.Fatalf("unexpected registry after the first start; got %+v, %v; want %s with its secret", eps, err, ep.ID)
	}
	if o.Pending() != 1 {
		t.Fatalf("unexpected pending; got %d; want the 1 from before", o.Pending())
	}
	if err := s.RemoveWebhook(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if list, err := sh.Endpoints(); err != nil || len(list) != 0 || o.Pending() != 0 {
		t.Fatalf("unexpected endpoints after a removal elsewhere; got %+v, %v, %d pending; want none", list, err, o.Pending())
	}
}

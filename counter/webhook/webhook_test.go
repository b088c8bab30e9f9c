package webhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret, body := []byte("whsec_0123456789abcdef0123456789abcdef"), []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, body, now)
	if err := Verify(secret, h, body, now.Add(Tolerance), Tolerance); err != nil {
		t.Fatalf("unexpected error for %q; got %v; want nil", h, err)
	}
	f := func(secret []byte, header string, body []byte, now time.Time, want error) {
		t.Helper()
		if err := Verify(secret, header, body, now, Tolerance); err != want {
			t.Fatalf("unexpected error for %q over %q; got %v; want %v", header, body, err, want)
		}
	}
	f(secret, h, []byte(`{"id":"evt_2"}`), now, ErrSignature)
	f([]byte("another secret"), h, body, now, ErrSignature)
	f(secret, h, body, now.Add(Tolerance+time.Second), ErrSignatureAge)
	f(secret, h, body, now.Add(-Tolerance-time.Second), ErrSignatureAge)
	f(secret, "", body, now, ErrSignatureHeader)
	f(secret, "v1="+strings.Split(h, "v1=")[1], body, now, ErrSignatureHeader)
	f(secret, strings.Split(h, ",")[0], body, now, ErrSignatureHeader)
	f(secret, "t=-1,"+strings.Split(h, ",")[1], body, now, ErrSignatureHeader)
	f(secret, strings.Replace(h, "t=", "t=0", 1), body, now, ErrSignature) // t is signed as written
	f(secret, h+",v1=00", body, now, nil)                                  // a second, unknown signature is allowed (rotation)
}

func TestSpecValidate(t *testing.T) {
	f := func(s Spec, want string) {
		t.Helper()
		err := s.Validate()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("unexpected error for %+v; got %v; want %q", s, err, want)
		}
	}
	f(Spec{URL: "https://example.com/hooks"}, "")
	f(Spec{URL: "http://127.0.0.1:8080/hooks?x=1", Events: []string{CapReached}}, "")
	f(Spec{}, "url is required")
	f(Spec{URL: "https://example.com:port/"}, "does not parse")
	f(Spec{URL: "mailto:a@example.com"}, "http or https")
	f(Spec{URL: "https://example.com/", Events: []string{"x"}}, `unknown type "x"`)
	f(Spec{URL: "https://example.com/", Secret: strings.Repeat("x", 31)}, "secret")
	f(Spec{URL: "https://example.com/", Secret: strings.Repeat("x", 31) + " "}, "secret")
	f(Spec{URL: "https://example.com/", Description: "a\nb"}, "description")

	ep, err := Spec{URL: "https://example.com/", Events: []string{CampaignPayable, CapReached, CampaignPayable}}.Endpoint(time.Now())
	if err != nil || len(ep.Events) != 2 || !strings.HasPrefix(ep.Secret, "whsec_") || len(ep.Secret) != 70 || !strings.HasPrefix(ep.ID, "wh_") {
		t.Fatalf("unexpected endpoint %+v, %v", ep, err)
	}
}

func TestEventIDs(t *testing.T) {
	a := SignupEvent(Signup{Campaign: "c", Creator: "x", UserID: "u", OccurredAt: time.Now()})
	b := SignupEvent(Signup{Campaign: "c", Creator: "y", UserID: "u"})
	if a.ID != b.ID {
		t.Fatalf("unexpected ids of one user's signup; got %s and %s; want equal", a.ID, b.ID)
	}
	for _, other := range []Event{
		SignupEvent(Signup{Campaign: "cu", UserID: ""}), SignupEvent(Signup{Campaign: "c", UserID: "v"}),
		CapEvent(Cap{Campaign: "c", Creator: "u", CapCents: 1}), PayableEvent(Payable{Campaign: "c"}),
	} {
		if other.ID == a.ID {
			t.Fatalf("unexpected id %s shared by %s and %s", a.ID, a.Type, other.Type)
		}
	}
	if c1, c2 := CapEvent(Cap{Campaign: "c", Creator: "x", CapCents: 100}), CapEvent(Cap{Campaign: "c", Creator: "x", CapCents: 200}); c1.ID == c2.ID {
		t.Fatalf("unexpected equal ids of caps 100 and 200: %s", c1.ID)
	}
}

func TestBackoff(t *testing.T) {
	f := func(d *Deliverer, n uint32, want time.Duration) {
		t.Helper()
		for range 100 {
			if got := d.Backoff(n); got < want/2 || got > want {
				t.Fatalf("unexpected backoff after attempt %d; got %s; want %s to %s", n, got, want/2, want)
			}
		}
	}
	d := NewDeliverer(nil, DelivererOptions{RetryMin: time.Second, RetryMax: time.Minute})
	for n, want := range map[uint32]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 7: time.Minute, 100: time.Minute, 1 << 31: time.Minute} {
		f(d, n, want)
	}
	// Doubling a long backoff must not wrap around.
	d = NewDeliverer(nil, DelivererOptions{RetryMin: time.Hour, RetryMax: 100 * 365 * 24 * time.Hour})
	f(d, 40, 100*365*24*time.Hour)
	f(d, 3, 4*time.Hour)
}

// sink is a receiver over real HTTP that fails its first deliveries.
type sink struct {
	mu       sync.Mutex
	fail     int
	got      map[string]int
	secret   []byte
	delivery chan struct{}
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		select {
		case s.delivery <- struct{}{}:
		default:
		}
	}()
	if err := Verify(s.secret, r.Header.Get(SignatureHeader), body, time.Now(), Tolerance); err != nil {
		http.Error(w, err.Error(), 401)
		return
	}
	var ev Event
	json.Unmarshal(body, &ev)
	if ev.ID != r.Header.Get(IDHeader) {
		http.Error(w, "id", 400)
		return
	}
	if s.fail > 0 {
		s.fail--
		http.Error(w, "later", 503)
		return
	}
	s.got[ev.ID]++
}

// TestOutboxRestart emits into an outbox whose receiver fails the first 3
// deliveries, closes it and opens it again from its file: every event is
// delivered, none emitted twice, and only subscribers get an event.
func TestOutboxRestart(t *testing.T) {
	dir := t.TempDir()
	s := &sink{fail: 3, got: map[string]int{}, delivery: make(chan struct{}, 1)}
	srv := httptest.NewServer(s)
	defer srv.Close()

	o, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := Spec{URL: srv.URL}.Endpoint(time.Now())
	caps, _ := Spec{URL: srv.URL + "/caps", Events: []string{CapReached}, Secret: all.Secret}.Endpoint(time.Now())
	s.secret = []byte(all.Secret)
	for _, ep := range []Endpoint{all, caps} {
		if err := o.Add(ep); err != nil {
			t.Fatal(err)
		}
	}
	signup := SignupEvent(Signup{Campaign: "c", Creator: "x", UserID: "u"})
	capped := CapEvent(Cap{Campaign: "c", Creator: "x", CapCents: 100})
	f := func(ev Event, want bool) {
		t.Helper()
		if got, err := o.Emit(ev, time.Now()); got != want || err != nil {
			t.Fatalf("unexpected Emit of %s; got %v, %v; want %v", ev.Type, got, err, want)
		}
	}
	f(signup, true)
	f(signup, false)
	if n, err := o.EmitAll([]Event{capped, signup}, time.Now()); n != 1 || err != nil {
		t.Fatalf("unexpected EmitAll; got %d, %v; want 1", n, err)
	}
	if o.Pending() != 3 {
		t.Fatalf("unexpected pending; got %d; want 3 (signup to one endpoint, cap to two)", o.Pending())
	}
	// Deliveries fail until the outbox is closed; then it is opened
	// again, with what was pending.
	d := NewDeliverer(o, DelivererOptions{RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, Workers: 1})
	d.Start()
	for s.mu.Lock(); s.fail > 1; s.mu.Lock() {
		s.mu.Unlock()
		<-s.delivery
	}
	s.mu.Unlock()
	d.Stop()
	node := o.Node()
	o.Close()

	if o, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	// Its claims (Claimer) are its own after a restart too.
	if o.Node() != node || !strings.HasPrefix(node, "ob_") {
		t.Fatalf("unexpected outbox id after the reopen; got %q; want %q", o.Node(), node)
	}
	if o.Pending() == 0 {
		t.Fatalf("unexpected pending after the reopen: 0")
	}
	f(signup, false)
	d = NewDeliverer(o, DelivererOptions{RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	d.Start()
	defer d.Stop()
	// Pending drops just after the receiver answers: polled.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for o.Pending() > 0 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("deliveries still pending after 10s: %d", o.Pending())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) != 2 || s.got[signup.ID] != 1 || s.got[capped.ID] != 2 {
		t.Fatalf("unexpected deliveries; got %v; want %s once, %s twice (two endpoints)", s.got, signup.ID, capped.ID)
	}
	st, err := o.Endpoints()
	if err != nil || len(st) != 2 || st[0].Pending != 0 || st[0].Secret != "" {
		t.Fatalf("unexpected endpoints; got %+v, %v", st, err)
	}
}

func TestRemoveDropsPending(t *testing.T) {
	o, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ep, _ := Spec{URL: "http://127.0.0.1:1/"}.Endpoint(time.Now())
	o.Add(ep)
	o.Emit(PayableEvent(Payable{Campaign: "c"}), time.Now())
	o.Emit(PayableEvent(Payable{Campaign: "d"}), time.Now())
	if n, err := o.Remove(ep.ID); n != 2 || err != nil || o.Pending() != 0 {
		t.Fatalf("unexpected Remove; got %d, %v, %d pending; want 2 dropped, 0 pending", n, err, o.Pending())
	}
	if _, err := o.Remove(ep.ID); err == nil || !strings.Contains(err.Error(), ep.ID) {
		t.Fatalf("unexpected second Remove; got %v; want an error naming %s", err, ep.ID)
	}
	// Emitted before: not again, whoever subscribes.
	if ok, _ := o.Emit(PayableEvent(Payable{Campaign: "c"}), time.Now()); ok {
		t.Fatalf("unexpected second emission of an id")
	}
}

// TestRedirectIsFailure: a receiver that answers a redirect has not taken
// the event: the delivery stays pending with the status as its error, and
// the redirect is not followed.
func TestRedirectIsFailure(t *testing.T) {
	var followed atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Add(1) }))
	defer target.Close()
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer moved.Close()
	o, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ep, _ := Spec{URL: moved.URL}.Endpoint(time.Now())
	if err := o.Add(ep); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Emit(SignupEvent(Signup{Campaign: "c", Creator: "x", UserID: "u"}), time.Now()); err != nil {
		t.Fatal(err)
	}
	d := NewDeliverer(o, DelivererOptions{RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, Workers: 1})
	d.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := o.Endpoints()
		if err != nil {
			t.Fatal(err)
		}
		if len(st) == 1 && strings.Contains(st[0].LastError, "302") {
			if st[0].Pending != 1 || !st[0].LastSuccessAt.IsZero() {
				t.Fatalf("unexpected endpoint after a redirect: %+v; want the delivery pending", st[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt with the redirect's status within 10s: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.Stop()
	if n := followed.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times; want never", n)
	}
}

package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter/webhook"
)

// TestConversionEmitsSignup: a signup whose event the outbox cannot take
// is recorded and answered 503; the same conversion sent again is a
// duplicate that emits the event, once.
func TestConversionEmitsSignup(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC()
	h.call(t, "PUT", "/v1/campaigns/spring", `{"starts_at":"`+now.Add(-time.Hour).Format(time.RFC3339)+`","ends_at":"`+
		now.Add(time.Hour).Format(time.RFC3339)+`"}`, 201)
	h.call(t, "PUT", "/v1/creators/alice", `{"campaign":"spring","country":"US"}`, 201)
	dir := t.TempDir()
	broken, err := webhook.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	broken.Close() // its writes fail
	h.api.o.Webhooks = broken
	body := conversionBody(clickID("spring", "alice", now.Add(-time.Minute), true), "user-1", now)
	bearer := []string{"Authorization", "Bearer " + appKey}
	f := func(status int, msg string) {
		t.Helper()
		if got, out := h.convert(t, body, bearer...); got != status || !strings.Contains(toString(out), msg) {
			t.Fatalf("unexpected answer; got %d %v; want %d containing %q", got, out, status, msg)
		}
	}
	f(503, "send the same conversion again")

	o, err := webhook.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	h.api.o.Webhooks = o
	h.call(t, "POST", "/v1/webhooks", `{"url":"https://app.example.com/hooks","events":["signup.attributed"]}`, 201)
	f(200, `"duplicate":true`)
	f(200, `"duplicate":true`)
	if o.Pending() != 1 {
		t.Fatalf("unexpected pending deliveries; got %d; want 1: the signup's event, emitted once", o.Pending())
	}
}

package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

func testSignups(t *testing.T, open Opener) {
	ctx := context.Background()
	s := mustOpen(t, open, Params(t))
	d := counter.DayOf(time.Now())
	f := func(user, creator string, wantCreated bool, wantOwner string) {
		t.Helper()
		// A new click each time: one user, one reward, whatever the click.
		click := fmt.Sprintf("click-of-%s-via-%s", user, creator)
		created, owner, err := s.AttributeSignup(ctx, counter.Conversion{Campaign: "c1", Creator: creator, UserID: user, Click: click, Day: d})
		if err != nil {
			t.Fatalf("cannot attribute %q: %s", user, err)
		}
		if created != wantCreated || owner != wantOwner {
			t.Fatalf("unexpected attribution of %q to %q; got %v, %q; want %v, %q", user, creator, created, owner, wantCreated, wantOwner)
		}
	}
	f("u1", "alice", true, "alice")
	f("u2", "alice", true, "alice")
	f("u1", "alice", false, "alice") // the same user again
	f("u1", "bob", false, "alice")   // one new user, one reward, whoever the creator
	f("u3", "bob", true, "bob")
	// The same user in another campaign is another signup.
	if created, _, err := s.AttributeSignup(ctx, counter.Conversion{Campaign: "c2", Creator: "bob", UserID: "u1", Click: "k", Day: d}); err != nil || !created {
		t.Fatalf("unexpected attribution in another campaign; got %v, %v; want created", created, err)
	}
	if got := total(t, s, "c1", "alice"); got[counter.Signup] != 2 || got.Clicks() != 0 {
		t.Fatalf("unexpected counts for alice; got %+v; want signups=2 and no clicks", got)
	}
	if got := total(t, s, "c1", "bob"); got[counter.Signup] != 1 {
		t.Fatalf("unexpected counts for bob; got %+v; want signups=1", got)
	}
	// No click key, no signup.
	if _, _, err := s.AttributeSignup(ctx, counter.Conversion{Campaign: "c1", Creator: "bob", UserID: "u9", Day: d}); err == nil {
		t.Fatalf("unexpected success of a conversion without a click key")
	}
}

// testSignupClicks: a click id is used by at most one user. A second user
// on it changes nothing and gets ErrClickUsed; the same user again is a
// duplicate.
func testSignupClicks(t *testing.T, open Opener) {
	ctx := context.Background()
	p := Params(t)
	s := mustOpen(t, open, p)
	d := counter.DayOf(time.Now())
	type want int
	const (
		created want = iota
		duplicate
		used
	)
	f := func(s counter.Store, campaign, click, user, creator string, w want, wantOwner string) {
		t.Helper()
		c := counter.Conversion{Campaign: campaign, Creator: creator, UserID: user, Click: click, Day: d}
		ok, owner, err := s.AttributeSignup(ctx, c)
		switch {
		case w == used:
			if !errors.Is(err, counter.ErrClickUsed) || ok {
				t.Fatalf("unexpected attribution of %+v; got %v, %q, %v; want %v", c, ok, owner, err, counter.ErrClickUsed)
			}
		case err != nil || ok != (w == created) || owner != wantOwner:
			t.Fatalf("unexpected attribution of %+v; got %v, %q, %v; want created=%v, %q", c, ok, owner, err, w == created, wantOwner)
		}
	}
	f(s, "c1", "k1", "u1", "alice", created, "alice")
	f(s, "c1", "k1", "u1", "alice", duplicate, "alice") // the app retries
	f(s, "c1", "k1", "u2", "alice", used, "")           // a second user on the click
	f(s, "c1", "k1", "u2", "bob", used, "")             // whatever the creator
	// The refused user was not recorded: on a click of its own it is new.
	f(s, "c1", "k2", "u2", "alice", created, "alice")
	// A known user's new click is the user's: no one else can use it.
	f(s, "c1", "k3", "u1", "bob", duplicate, "alice")
	f(s, "c1", "k3", "u3", "bob", used, "")
	// Keys are per campaign.
	f(s, "c2", "k1", "u2", "bob", created, "bob")
	if got := total(t, s, "c1", "alice"); got[counter.Signup] != 2 {
		t.Fatalf("unexpected counts for alice; got %+v; want signups=2", got)
	}
	if got := total(t, s, "c1", "bob"); got[counter.Signup] != 0 {
		t.Fatalf("unexpected counts for bob; got %+v; want no signups", got)
	}

	// Many users race for one click: one wins, the others are refused.
	const racers = 16
	var wg sync.WaitGroup
	results := make([]error, racers)
	wins := make([]bool, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wins[i], _, results[i] = s.AttributeSignup(ctx, counter.Conversion{Campaign: "c3", Creator: "alice", UserID: fmt.Sprintf("racer-%d", i), Click: "hot", Day: d})
		}()
	}
	wg.Wait()
	n := 0
	for i := range racers {
		switch {
		case wins[i] && results[i] == nil:
			n++
		case !errors.Is(results[i], counter.ErrClickUsed):
			t.Fatalf("unexpected result for racer %d; got %v, %v; want a win or %v", i, wins[i], results[i], counter.ErrClickUsed)
		}
	}
	if got := total(t, s, "c3", "alice"); n != 1 || got[counter.Signup] != 1 {
		t.Fatalf("unexpected race for one click; got %d winners and %+v; want 1 and signups=1", n, got)
	}

	// Used clicks survive a restart.
	s.Close()
	s = mustOpen(t, open, p)
	f(s, "c1", "k1", "u4", "alice", used, "")
	f(s, "c1", "k1", "u1", "alice", duplicate, "alice")
}

package redistest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("unexpected address; got %q; want 127.0.0.1:port", s.Addr())
	}
	if got, want := s.URL(3), "redis://"+s.Addr()+"/3"; got != want {
		t.Fatalf("unexpected URL; got %q; want %q", got, want)
	}
	opt, err := redis.ParseURL(s.URL(1))
	if err != nil {
		t.Fatalf("cannot parse URL %q: %s", s.URL(1), err)
	}
	opt.MaxRetries = -1
	opt.DialTimeout = 200 * time.Millisecond
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("cannot set: %s", err)
	}

	s.Stop()
	s.Stop() // idempotent
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatalf("unexpected success of GET on a stopped server")
	}

	s.Restart(t)
	// The append-only file outlives the kill: redis writes it before it
	// answers.
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("unexpected value after restart; got %q, %v; want %q", got, err, "v")
	}
	// Restart of a running server stops it first.
	s.Restart(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("cannot ping after a second restart: %s", err)
	}
}

func TestServersAreSeparate(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() || a.Dir() == b.Dir() {
		t.Fatalf("unexpected shared server; got %q in %q and %q in %q", a.Addr(), a.Dir(), b.Addr(), b.Dir())
	}
	ctx := context.Background()
	ca := redis.NewClient(&redis.Options{Addr: a.Addr()})
	defer ca.Close()
	cb := redis.NewClient(&redis.Options{Addr: b.Addr()})
	defer cb.Close()
	if err := ca.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatalf("cannot set: %s", err)
	}
	if err := cb.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("unexpected error reading another server's key; got %v; want redis.Nil", err)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	a := Start(t)
	b := &Server{bin: a.bin, dir: t.TempDir(), port: a.port}
	b.log = b.dir + "/redis.log"
	err := b.start()
	if !errors.Is(err, errBind) {
		b.Stop()
		t.Fatalf("unexpected error starting on a taken port; got %v; want errBind", err)
	}
}

package redistest

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
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
	// A cluster node whose bus port is taken.
	port, err := freePort()
	if err != nil {
		t.Fatalf("cannot find a free port: %s", err)
	}
	c := &Server{bin: a.bin, dir: t.TempDir(), port: port, cluster: &clusterNode{busPort: a.port, nodeTimeout: time.Second}}
	c.log = c.dir + "/redis.log"
	if err := c.start(); !errors.Is(err, errBind) {
		c.Stop()
		t.Fatalf("unexpected error starting a cluster node on a taken bus port; got %v; want errBind", err)
	}
}

func TestPasswordAndTLS(t *testing.T) {
	s := StartWith(t, Options{Password: "s3cret", TLS: true, Args: []string{"--user", "edge", "on", ">edgepw", "~e:*", "+get", "+set"}})
	if got, want := s.URL(2), "rediss://default:s3cret@"+s.Addr()+"/2"; got != want {
		t.Fatalf("unexpected URL; got %q; want %q", got, want)
	}
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(s.CAFile())
	if err != nil || !roots.AppendCertsFromPEM(ca) {
		t.Fatalf("cannot read the CA certificate %s: %v", s.CAFile(), err)
	}
	client := func(url string) *redis.Client {
		t.Helper()
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("cannot parse URL %q: %s", url, err)
		}
		if opt.TLSConfig == nil {
			t.Fatalf("no TLS for %q", url)
		}
		opt.TLSConfig.RootCAs = roots
		opt.MaxRetries = -1
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx := context.Background()
	if err := client(s.URL(0)).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("cannot set as the default user: %s", err)
	}
	edge := client(s.UserURL("edge", "edgepw", 0))
	if err := edge.Set(ctx, "e:k", "v", 0).Err(); err != nil {
		t.Fatalf("cannot set as the ACL user: %s", err)
	}
	if err := edge.Get(ctx, "k").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("unexpected answer to a key outside the ACL user's; got %v; want NOPERM", err)
	}
	if err := client(s.UserURL("", "", 0)).Get(ctx, "k").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("unexpected answer without a password; got %v; want NOAUTH", err)
	}
	// Restart keeps the options.
	s.Restart(t)
	if got, err := client(s.URL(0)).Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("unexpected GET after a restart; got %q, %v; want \"v\"", got, err)
	}
}

func TestPauseResume(t *testing.T) {
	s := Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	ctx := context.Background()
	s.Pause(t)
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.Ping(tctx).Err(); err == nil {
		t.Fatalf("unexpected answer from a paused server")
	}
	s.Resume(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("cannot ping a resumed server: %s", err)
	}
	// A paused server is killed at cleanup like a running one.
	s.Pause(t)
}

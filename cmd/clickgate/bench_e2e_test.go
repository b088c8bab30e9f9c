package main

import (
	"context"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/bench"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// auditRun seeds p with a small model, sends n requests from many loopback
// addresses and audits p's counters against what was sent.
func auditRun(t *testing.T, p *proc, n int64) *bench.Audit {
	t.Helper()
	m := bench.DefaultModel()
	m.CreatorsPerCampaign, m.AddressBase = 10, 4000
	admin := &adminclient.Client{URL: "http://" + p.admin, Token: p.token}
	ctx := context.Background()
	if err := bench.Seed(ctx, admin, m, "https://app.example.com/join"); err != nil {
		t.Fatal(err)
	}
	// Seeding twice is harmless.
	if err := bench.Seed(ctx, admin, m, "https://app.example.com/join"); err != nil {
		t.Fatalf("seeding again: %s", err)
	}
	g, err := bench.NewGenerator(m)
	if err != nil {
		t.Fatal(err)
	}
	before, err := bench.Stats(ctx, admin, m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := bench.Run(ctx, bench.LoadOptions{Target: p.public, Generator: g, Connections: 32, Requests: n})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != n {
		t.Fatalf("%d of %d requests answered:\n%s", res.Requests, n, p.logs())
	}
	after, err := bench.Stats(ctx, admin, m)
	if err != nil {
		t.Fatal(err)
	}
	return bench.NewAudit(m, 0.001, res, before, after)
}

// TestAuditOnRealServer runs clickbench's traffic through the real binary
// on both stores: every qualified visit it caused is counted exactly once,
// and a server that counts differently fails the audit. The model puts
// about a thousand people in each loopback /24, more than an honest /24
// brings one campaign in a day, so the block budget is off.
func TestAuditOnRealServer(t *testing.T) {
	srv := redistest.Start(t)
	for name, args := range map[string][]string{
		"embedded": {"--budget-block", "0"},
		"redis":    {"--redis", srv.URL(0), "--click-secret", e2eSecret, "--budget-block", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			a := auditRun(t, startServe(t, t.TempDir(), args...), 4000)
			if !a.OK() || a.Got.Qualified != a.Expected.Qualified || a.Expected.Qualified == 0 {
				var b strings.Builder
				a.Write(&b, false)
				t.Fatalf("audit:\n%s", b.String())
			}
		})
	}
	// Four people per address: a velocity limit of 3 leaves some of them
	// unpaid (and the edge's guard, at 12, some of their clicks), and the
	// audit says so.
	a := auditRun(t, startServe(t, t.TempDir(), "--velocity-max", "3", "--budget-block", "0"), 2000)
	if a.OK() || !strings.Contains(strings.Join(a.Problems, "\n"), "velocity") {
		t.Fatalf("audit passed against a server that flags people as velocity: %v", a.Problems)
	}
	// At the default block budget, the audit says what it cost.
	a = auditRun(t, startServe(t, t.TempDir()), 4000)
	if a.OK() || a.Got.Budget == 0 || !strings.Contains(strings.Join(a.Problems, "\n"), "budget") {
		t.Fatalf("audit passed against a server that refused %d visits over budget: %v", a.Got.Budget, a.Problems)
	}
}

package dashboard

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// pageSink keeps the pages read, so that the reads are not optimized away.
var pageSink int

// BenchmarkCampaignPage is the cost of one view of a campaign's page (its
// totals, and the leaderboard's first page of creators with their
// counts) and of the campaigns' list (each campaign's totals), for a
// campaign of creators creators with counts each.
//
//	go test ./dashboard -run '^$' -bench CampaignPage -benchtime 20x
func BenchmarkCampaignPage(b *testing.B) {
	for _, creators := range []int{100, 1_000} {
		h := newHarness(b)
		op := h.browser(b)
		op.login()
		seedCreators(b, h, creators)
		// The leaderboard shows a page of the creators: one stats read
		// each per view, whatever the campaign's size.
		p := op.get("/campaigns/spring")
		p.want(b, 200, fmt.Sprintf(`id="creator-count">%d<`, creators), `id="next-creators"`)
		if n := strings.Count(p.body, `<tr data-creator=`); n != creatorsPerPage {
			b.Fatalf("unexpected creators on the leaderboard; got %d; want %d", n, creatorsPerPage)
		}
		for _, path := range []string{"/campaigns/spring", "/"} {
			b.Run(fmt.Sprintf("creators=%d/page=%s", creators, path), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p := op.get(path)
					if p.status != 200 {
						b.Fatalf("unexpected status of %s; got %d; want 200", path, p.status)
					}
					pageSink += len(p.body)
				}
			})
		}
	}
}

// seedCreators creates campaign spring with n active creators, each with
// a few visits counted today.
func seedCreators(tb testing.TB, h *harness, n int) {
	tb.Helper()
	a := NewAdmin(h.api.Handle, token)
	ctx := context.Background()
	now := time.Now().UTC()
	start, end := now.Add(-48*time.Hour), now.Add(30*24*time.Hour)
	if err := a.call(ctx, "PUT", "/v1/campaigns/spring", adminclient.CampaignPut{StartsAt: &start, EndsAt: &end}, nil); err != nil {
		tb.Fatal(err)
	}
	country, status := "US", counter.StatusActive
	var visits []counter.Visit
	for i := range n {
		id := fmt.Sprintf("c%04d", i)
		if err := a.call(ctx, "PUT", "/v1/creators/"+id, adminclient.CreatorPut{Campaign: "spring", Country: &country, Status: &status}, nil); err != nil {
			tb.Fatal(err)
		}
		for j := range 1 + i%4 {
			v := counter.Visit{Campaign: "spring", Creator: id}
			v.Key[0], v.Key[1], v.Key[2] = byte(i), byte(i>>8), byte(j)
			v.SetWindow(now, 24*time.Hour)
			visits = append(visits, v)
		}
	}
	if err := h.store.Commit(ctx, visits, make([]counter.Reason, len(visits))); err != nil {
		tb.Fatal(err)
	}
}

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// Seed creates the campaigns, creators and links of m through the admin
// API of a, running from an hour ago for six weeks. It is idempotent:
// campaigns that exist are kept as they are, links that exist with the
// same owner are kept, and a code owned by someone else is an error.
func Seed(ctx context.Context, a *adminclient.Client, m Model, destination string) error {
	if err := m.Validate(); err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	for c := range m.Campaigns {
		// A campaign that exists has started: its dates are fixed.
		if _, err := a.Campaign(ctx, CampaignID(c)); err == nil {
			continue
		}
		name, starts, ends := fmt.Sprintf("clickbench campaign %d", c), now.Add(-time.Hour), now.Add(6*7*24*time.Hour)
		if _, err := a.PutCampaign(ctx, CampaignID(c), adminclient.CampaignPut{Name: &name, StartsAt: &starts, EndsAt: &ends}); err != nil {
			return err
		}
	}
	// Creators, then links, on a few connections at once.
	err := parallel(ctx, m.Creators(), func(k int) error {
		c, local := k/m.perCampaign(), k%m.perCampaign()
		return putCreator(ctx, a, CampaignID(c), m.CreatorID(k), fmt.Sprintf("@bench%d_%d", c, local))
	})
	if err != nil {
		return err
	}
	return parallel(ctx, m.Links(), func(i int) error {
		c, k := m.LinkOwner(i)
		campaign, creator := CampaignID(c), m.CreatorID(k)
		_, err := a.CreateLink(ctx, adminclient.NewLink{Campaign: campaign, Creator: creator, Code: LinkCode(i),
			Destinations: counter.Destinations{Default: fmt.Sprintf("%s?l=%d", destination, i)}})
		if !errors.Is(err, adminclient.ErrConflict) {
			return err
		}
		l, err := a.Link(ctx, LinkCode(i))
		if err != nil {
			return err
		}
		if l.Campaign != campaign || l.Creator != creator {
			return fmt.Errorf("code %s belongs to %s/%s, not %s/%s", LinkCode(i), l.Campaign, l.Creator, campaign, creator)
		}
		return nil
	})
}

// putCreator creates or replaces an active creator of campaign, in the
// US.
func putCreator(ctx context.Context, a *adminclient.Client, campaign, id, handle string) error {
	country, status := "US", counter.StatusActive
	_, err := a.PutCreator(ctx, id, adminclient.CreatorPut{Campaign: campaign, Handle: &handle, Country: &country, Status: &status})
	return err
}

// parallel runs f(0..n-1) on 8 goroutines and returns the first error.
func parallel(ctx context.Context, n int, f func(int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// Counts are a creator's counters as clickgate reports them.
type Counts struct {
	Clicks      int64 `json:"clicks"`
	Qualified   int64 `json:"qualified"`
	Duplicates  int64 `json:"duplicates"`
	Bots        int64 `json:"bots"`
	Previews    int64 `json:"previews"`
	Prefetches  int64 `json:"prefetches"`
	Velocity    int64 `json:"velocity"`
	OutOfWindow int64 `json:"out_of_window"`
	Inactive    int64 `json:"inactive"`
	Uncounted   int64 `json:"uncounted"`
	Budget      int64 `json:"budget"`
}

func (c Counts) sub(o Counts) Counts {
	return Counts{c.Clicks - o.Clicks, c.Qualified - o.Qualified, c.Duplicates - o.Duplicates, c.Bots - o.Bots,
		c.Previews - o.Previews, c.Prefetches - o.Prefetches, c.Velocity - o.Velocity, c.OutOfWindow - o.OutOfWindow,
		c.Inactive - o.Inactive, c.Uncounted - o.Uncounted, c.Budget - o.Budget}
}

// countsOf is the counters of s.
func countsOf(s adminclient.Stats) Counts {
	c := &s.Counts
	return Counts{Clicks: s.Clicks, Qualified: c[counter.Qualified], Duplicates: c[counter.Duplicate], Bots: c[counter.Bot],
		Previews: c[counter.Preview], Prefetches: c[counter.Prefetch], Velocity: c[counter.Velocity], OutOfWindow: c[counter.OutOfWindow],
		Inactive: c[counter.Inactive], Uncounted: c[counter.Uncounted], Budget: c[counter.Budget]}
}

// Stats returns the counters of every creator of m, by creator index.
func Stats(ctx context.Context, a *adminclient.Client, m Model) ([]Counts, error) {
	out := make([]Counts, m.Creators())
	err := parallel(ctx, len(out), func(k int) error {
		s, err := a.Stats(ctx, CampaignID(k/m.perCampaign()), m.CreatorID(k), "")
		out[k] = countsOf(s)
		return err
	})
	return out, err
}

// ImportLinks creates n links of creator of campaign, to destination, in
// one bulk import with codes drawn by clickgate, and returns their codes
// in the order of the lines.
func ImportLinks(ctx context.Context, a *adminclient.Client, campaign, creator, destination string, n int) ([]string, error) {
	line, err := adminclient.JSONLines(adminclient.NewLink{Campaign: campaign, Creator: creator,
		Destinations: counter.Destinations{Default: destination}})
	if err != nil {
		return nil, err
	}
	body := bytes.Repeat(line, n)
	res, err := a.ImportLinks(ctx, body, false)
	if err != nil {
		return nil, fmt.Errorf("bulk import of %d links (%d bytes): %w", n, len(body), err)
	}
	if res.Created != n || len(res.Links) != n {
		return nil, fmt.Errorf("bulk import of %d links created %d (%d listed)", n, res.Created, len(res.Links))
	}
	codes := make([]string, n)
	for i, l := range res.Links {
		codes[i] = l.Code
	}
	return codes, nil
}

// PutCreator creates or replaces an active creator of campaign, in the US.
func PutCreator(ctx context.Context, a *adminclient.Client, campaign, id string) error {
	return putCreator(ctx, a, campaign, id, "@"+id)
}

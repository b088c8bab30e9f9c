package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Admin is a client of clickgate's admin API.
type Admin struct {
	URL   string // e.g. http://127.0.0.1:8081
	Token string
	HTTP  *http.Client // default: one with a 30s timeout
}

// ErrConflict is a 409 answer.
var ErrConflict = errors.New("conflict")

func (a *Admin) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.URL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Content-Type", "application/json")
	c := a.HTTP
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		err = fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
		if resp.StatusCode == http.StatusConflict {
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		}
		return err
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Seed creates the campaigns, creators and links of m, running from an
// hour ago for six weeks. It is idempotent: campaigns that exist are kept
// as they are, links that exist with the same owner are kept, and a code
// owned by someone else is an error.
func (a *Admin) Seed(ctx context.Context, m Model, destination string) error {
	if err := m.Validate(); err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	for c := range m.Campaigns {
		path := "/v1/campaigns/" + CampaignID(c)
		// A campaign that exists has started: its dates are fixed.
		if a.do(ctx, "GET", path, nil, nil) == nil {
			continue
		}
		body := map[string]any{
			"name":      fmt.Sprintf("clickbench campaign %d", c),
			"starts_at": now.Add(-time.Hour), "ends_at": now.Add(6 * 7 * 24 * time.Hour),
		}
		if err := a.do(ctx, "PUT", path, body, nil); err != nil {
			return err
		}
	}
	// Creators, then links, on a few connections at once.
	err := parallel(ctx, m.Creators(), func(k int) error {
		c, local := k/m.perCampaign(), k%m.perCampaign()
		return a.do(ctx, "PUT", "/v1/creators/"+m.CreatorID(k), map[string]any{
			"campaign": CampaignID(c), "handle": fmt.Sprintf("@bench%d_%d", c, local), "country": "US", "status": "active",
		}, nil)
	})
	if err != nil {
		return err
	}
	return parallel(ctx, m.Links(), func(i int) error {
		c, k := m.LinkOwner(i)
		campaign, creator := CampaignID(c), m.CreatorID(k)
		err := a.do(ctx, "POST", "/v1/links", map[string]any{
			"campaign": campaign, "creator": creator, "code": LinkCode(i),
			"destinations": map[string]string{"default": fmt.Sprintf("%s?l=%d", destination, i)},
		}, nil)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		var l struct{ Campaign, Creator string }
		if err := a.do(ctx, "GET", "/v1/links/"+LinkCode(i), nil, &l); err != nil {
			return err
		}
		if l.Campaign != campaign || l.Creator != creator {
			return fmt.Errorf("code %s belongs to %s/%s, not %s/%s", LinkCode(i), l.Campaign, l.Creator, campaign, creator)
		}
		return nil
	})
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

// Stats returns the counters of every creator of m, by creator index.
func (a *Admin) Stats(ctx context.Context, m Model) ([]Counts, error) {
	out := make([]Counts, m.Creators())
	err := parallel(ctx, len(out), func(k int) error {
		return a.do(ctx, "GET", fmt.Sprintf("/v1/creators/%s/stats?campaign=%s", m.CreatorID(k), CampaignID(k/m.perCampaign())), nil, &out[k])
	})
	return out, err
}

// ImportLinks creates n links of creator of campaign, to destination, in
// one POST /v1/links:bulk with codes drawn by clickgate, and returns their
// codes in the order of the lines.
func (a *Admin) ImportLinks(ctx context.Context, campaign, creator, destination string, n int) ([]string, error) {
	line, err := json.Marshal(map[string]any{"campaign": campaign, "creator": creator, "destinations": map[string]string{"default": destination}})
	if err != nil {
		return nil, err
	}
	body := bytes.Repeat(append(line, '\n'), n)
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(a.URL, "/")+"/v1/links:bulk", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	c := a.HTTP
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("POST /v1/links:bulk of %d links (%d bytes): %s: %s", n, len(body), resp.Status, bytes.TrimSpace(b[:min(len(b), 1000)]))
	}
	var out struct {
		Created int `json:"created"`
		Links   []struct {
			Code string `json:"code"`
		} `json:"links"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("POST /v1/links:bulk: %w", err)
	}
	if out.Created != n || len(out.Links) != n {
		return nil, fmt.Errorf("POST /v1/links:bulk of %d links created %d (%d listed)", n, out.Created, len(out.Links))
	}
	codes := make([]string, n)
	for i, l := range out.Links {
		codes[i] = l.Code
	}
	return codes, nil
}

// PutCreator creates or replaces an active creator of campaign, in the US.
func (a *Admin) PutCreator(ctx context.Context, campaign, id string) error {
	return a.do(ctx, "PUT", "/v1/creators/"+id, map[string]any{
		"campaign": campaign, "handle": "@" + id, "country": "US", "status": "active",
	}, nil)
}

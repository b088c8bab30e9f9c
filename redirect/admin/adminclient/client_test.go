package adminclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/clickgate/clickgate/counter"
)

func TestPartialPutsAndErrors(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = r.Method + " " + r.URL.RequestURI() + " " + string(b)
		switch {
		case r.Header.Get("Authorization") != "Bearer t":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/v1/links/NOPE1234":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error": "link \"NOPE1234\" does not exist"}`))
		default:
			w.Write([]byte(`{}`))
		}
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL + "/", Token: "t"}
	ctx := context.Background()

	f := func(call func() error, want string) {
		t.Helper()
		if err := call(); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("unexpected request; got %s; want %s", got, want)
		}
	}
	status, empty := "suspended", ""
	f(func() error {
		_, err := c.PutCreator(ctx, "alice", CreatorPut{Campaign: "spring", Status: &status})
		return err
	},
		`PUT /v1/creators/alice {"campaign":"spring","status":"suspended"}`)
	f(func() error {
		_, err := c.PatchLink(ctx, "AB3KX9QZ", LinkPatch{Destinations: &DestinationsPatch{IOS: &empty}})
		return err
	}, `PATCH /v1/links/AB3KX9QZ {"destinations":{"ios":""}}`)
	none := []string{}
	f(func() error {
		_, err := c.PutCampaign(ctx, "spring", CampaignPut{EligibleCountries: &none})
		return err
	},
		`PUT /v1/campaigns/spring {"eligible_countries":[]}`)
	f(func() error { _, err := c.RotateCreatorPage(ctx, "spring", "alice"); return err },
		`POST /v1/creators/alice/dashboard?campaign=spring `)
	yes := true
	f(func() error { _, err := c.Links(ctx, ListQuery{Campaign: "spring", Disabled: &yes}); return err },
		`GET /v1/links?campaign=spring&disabled=true `)

	_, err := c.Link(ctx, "NOPE1234")
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || err.Error() != `404 Not Found: link "NOPE1234" does not exist` {
		t.Fatalf("unexpected error for a missing link; got %v", err)
	}
	c.Token = "wrong"
	if _, err := c.Campaign(ctx, "spring"); err == nil || err.Error() != "401 Unauthorized" {
		t.Fatalf("unexpected error for a wrong token; got %v", err)
	}
}

func TestStatsRoundTrip(t *testing.T) {
	// As the admin API writes them: an open object of counts by reason.
	in := `{"bots":2,"budget":0,"campaign":"spring","clicks":7,"creator":"alice","days":[{"bots":2,"budget":0,"clicks":7,"day":"2026-05-11",` +
		`"duplicates":1,"inactive":0,"out_of_window":0,"prefetches":0,"previews":0,"qualified":4,"signups":1,"uncounted":0,"velocity":0}],` +
		`"duplicates":1,"inactive":0,"out_of_window":0,"prefetches":0,"previews":0,"qualified":4,"signups":1,"uncounted":0,"velocity":0}`
	var s Stats
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.Clicks != 7 || s.Counts[counter.Qualified] != 4 || s.Counts[counter.Signup] != 1 || len(s.Days) != 1 || s.Days[0].Counts[counter.Bot] != 2 {
		t.Fatalf("unexpected stats for %s; got %+v", in, s)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("unexpected JSON of stats; got %s; want %s", out, in)
	}
}

package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

func testCatalog(t *testing.T, open Opener) {
	ctx := context.Background()
	s := mustOpen(t, open, Params(t))
	v0, err := s.Version(ctx)
	if err != nil {
		t.Fatalf("cannot read version: %s", err)
	}
	if _, err := s.Campaign(ctx, "nope"); !errors.Is(err, counter.ErrNotFound) {
		t.Fatalf("unexpected error for unknown campaign; got %v; want ErrNotFound", err)
	}
	c := counter.Campaign{
		ID: "spring", Name: "Spring", StartsAt: time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC),
		EndsAt: time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC), SignupRewardCents: 10000,
		VisitBlockSize: 1000, VisitBlockRewardCents: 10000, CapCents: 2000000,
		DedupeWindow: counter.Duration(24 * time.Hour), EligibleCountries: []string{"US"},
	}
	if err := s.PutCampaign(ctx, c); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	got, err := s.Campaign(ctx, "spring")
	if err != nil {
		t.Fatalf("cannot get campaign: %s", err)
	}
	if got.Name != c.Name || !got.StartsAt.Equal(c.StartsAt) || !got.EndsAt.Equal(c.EndsAt) ||
		got.CapCents != c.CapCents || got.DedupeWindow != c.DedupeWindow || len(got.EligibleCountries) != 1 {
		t.Fatalf("unexpected campaign; got %+v; want %+v", got, c)
	}
	v1, _ := s.Version(ctx)
	if v1 == v0 {
		t.Fatalf("version did not change after PutCampaign: %d", v1)
	}
	c.Name = "Spring 2026"
	if err := s.PutCampaign(ctx, c); err != nil {
		t.Fatalf("cannot replace campaign: %s", err)
	}
	if got, _ := s.Campaign(ctx, "spring"); got.Name != c.Name {
		t.Fatalf("unexpected name after replace; got %q; want %q", got.Name, c.Name)
	}

	cr := counter.Creator{ID: "alice", Campaign: "spring", Handle: "@alice", Country: "US", Status: counter.StatusActive,
		AcceptedAt: time.Date(2026, 5, 2, 9, 30, 15, 250000000, time.UTC)}
	if err := s.PutCreator(ctx, cr); err != nil {
		t.Fatalf("cannot put creator: %s", err)
	}
	if got, err := s.Creator(ctx, "spring", "alice"); err != nil || got != cr {
		t.Fatalf("unexpected creator; got %+v, %v; want %+v", got, err, cr)
	}
	if _, err := s.Creator(ctx, "other", "alice"); !errors.Is(err, counter.ErrNotFound) {
		t.Fatalf("unexpected error for creator in another campaign; got %v; want ErrNotFound", err)
	}

	l := counter.Link{Code: "AB3KX9QZ", Campaign: "spring", Creator: "alice",
		Destinations: counter.Destinations{Default: "https://app.example.com/join", IOS: "https://apps.apple.com/app/id1"},
		CreatedAt:    time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	v2, _ := s.Version(ctx)
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatalf("cannot create link: %s", err)
	}
	v3, _ := s.Version(ctx)
	if v3 == v2 {
		t.Fatalf("version did not change after CreateLink: %d", v3)
	}
	dup := l
	dup.Creator = "mallory"
	if err := s.CreateLink(ctx, dup); !errors.Is(err, counter.ErrExists) {
		t.Fatalf("unexpected error for a taken code; got %v; want ErrExists", err)
	}
	got2, err := s.Link(ctx, l.Code)
	if err != nil || got2.Creator != "alice" || got2.Destinations != l.Destinations || !got2.CreatedAt.Equal(l.CreatedAt) {
		t.Fatalf("unexpected link; got %+v, %v; want %+v", got2, err, l)
	}
	if _, err := s.Link(ctx, "ZZZZZZZZ"); !errors.Is(err, counter.ErrNotFound) {
		t.Fatalf("unexpected error for unknown code; got %v; want ErrNotFound", err)
	}

	cat, err := s.Catalog(ctx)
	if err != nil {
		t.Fatalf("cannot read catalog: %s", err)
	}
	if cat.Version != v3 || len(cat.Campaigns) != 1 || len(cat.Creators) != 1 || len(cat.Links) != 1 {
		t.Fatalf("unexpected catalog; got version %d, %d campaigns, %d creators, %d links; want %d, 1, 1, 1",
			cat.Version, len(cat.Campaigns), len(cat.Creators), len(cat.Links), v3)
	}
	if cat.Links[0].Code != l.Code || cat.Creators[0] != cr || cat.Campaigns[0].Name != "Spring 2026" {
		t.Fatalf("unexpected catalog contents: %+v", cat)
	}
	roster, err := s.Roster(ctx)
	if err != nil {
		t.Fatalf("cannot read roster: %s", err)
	}
	if roster.Version != cat.Version || roster.Epoch != cat.Epoch || roster.Links != nil ||
		!reflect.DeepEqual(roster.Campaigns, cat.Campaigns) || !reflect.DeepEqual(roster.Creators, cat.Creators) {
		t.Fatalf("unexpected roster; got %+v; want the catalog without links, %+v", roster, cat)
	}
}

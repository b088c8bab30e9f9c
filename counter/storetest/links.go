package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// LinkUpdater is a store that changes links (both stores are).
type LinkUpdater interface {
	UpdateLink(ctx context.Context, code string, update func(*counter.Link) error) (counter.Link, error)
}

// changeFeed is a store with a catalog change feed (both stores are).
type changeFeed interface {
	CatalogChanges(ctx context.Context, since uint64, limit int) (*counter.CatalogChanges, error)
}

func testUpdateLink(t *testing.T, open Opener) {
	ctx := context.Background()
	s := mustOpen(t, open, Params(t))
	u, ok := s.(LinkUpdater)
	if !ok {
		t.Skip("the store does not update links")
	}
	if _, err := u.UpdateLink(ctx, "NOSUCHCODE", func(*counter.Link) error { return nil }); !errors.Is(err, counter.ErrNotFound) {
		t.Fatalf("unexpected error for an unknown code; got %v; want ErrNotFound", err)
	}
	c := counter.Campaign{ID: "spring", Name: "Spring", StartsAt: time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC),
		EndsAt: time.Date(2026, 6, 22, 0, 0, 0, 0, time.UTC), VisitBlockSize: 1000,
		DedupeWindow: counter.Duration(24 * time.Hour), QueryPassthrough: false}
	if err := s.PutCampaign(ctx, c); err != nil {
		t.Fatalf("cannot put campaign: %s", err)
	}
	if got, err := s.Campaign(ctx, "spring"); err != nil || got.QueryPassthrough {
		t.Fatalf("unexpected campaign; got %+v, %v; want query_passthrough false kept", got, err)
	}
	l := counter.Link{Code: "UPD8CODE", Campaign: "spring", Creator: "alice",
		Destinations: counter.Destinations{Default: "https://app.example.com/a"}, CreatedAt: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatalf("cannot create link: %s", err)
	}
	v0, _ := s.Version(ctx)

	// A failing update changes nothing, not even the version.
	boom := errors.New("refused")
	if _, err := u.UpdateLink(ctx, l.Code, func(l *counter.Link) error { l.Disabled = true; return boom }); !errors.Is(err, boom) {
		t.Fatalf("unexpected error of a refused update; got %v; want %v", err, boom)
	}
	if _, err := u.UpdateLink(ctx, l.Code, func(l *counter.Link) error { l.Creator = "mallory"; return nil }); err == nil {
		t.Fatalf("an update that changes the creator was taken")
	}
	if got, _ := s.Link(ctx, l.Code); got.Disabled || got.Creator != "alice" {
		t.Fatalf("a refused update changed the link: %+v", got)
	}
	if v, _ := s.Version(ctx); v != v0 {
		t.Fatalf("a refused update changed the version; got %d; want %d", v, v0)
	}

	got, err := u.UpdateLink(ctx, l.Code, func(l *counter.Link) error {
		l.Disabled = true
		l.Destinations.IOS = "https://apps.apple.com/app/id1"
		return nil
	})
	if err != nil || !got.Disabled || got.Destinations.IOS == "" || got.Destinations.Default != l.Destinations.Default {
		t.Fatalf("unexpected updated link; got %+v, %v", got, err)
	}
	stored, err := s.Link(ctx, l.Code)
	if err != nil || stored != got {
		t.Fatalf("unexpected stored link; got %+v, %v; want %+v", stored, err, got)
	}
	v1, _ := s.Version(ctx)
	if v1 != v0+1 {
		t.Fatalf("unexpected version after an update; got %d; want %d", v1, v0+1)
	}
	if f, ok := s.(changeFeed); ok {
		ch, err := f.CatalogChanges(ctx, v0, 0)
		if err != nil || ch.Version != v1 || len(ch.Links) != 1 || ch.Links[0] != got {
			t.Fatalf("unexpected changes after an update; got %+v, %v; want the link as updated at version %d", ch, err, v1)
		}
	}
}

package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/clickgate/clickgate/counter"
)

// TestLinksOfEarlierVersionMoved: a data directory whose links are keyed
// by code (bucket links, as earlier versions kept them), some of them
// already moved (a crash between two moves), opens with every link found
// by its code, listed, in the change feed, taken, and changeable, and the
// old bucket gone.
func TestLinksOfEarlierVersionMoved(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpen(t, dir)
	if err := s.PutCampaign(ctx, counter.Campaign{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCreator(ctx, counter.Creator{Campaign: "c1", ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	link := func(i int) counter.Link {
		return counter.Link{Code: fmt.Sprintf("old%05d", i), Campaign: "c1", Creator: "alice",
			Destinations: counter.Destinations{Default: fmt.Sprintf("https://app.example/%d", i)}}
	}
	if err := s.CreateLink(ctx, counter.Link{Code: "new00001", Campaign: "c1", Creator: "alice"}); err != nil {
		t.Fatal(err)
	}
	since, err := s.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	// More than one move's worth, written as an earlier version did.
	n := linksPerMove + 5
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		old, err := tx.CreateBucket(bucketLinks)
		if err != nil {
			return err
		}
		for i := range n {
			l := link(i)
			b, _ := json.Marshal(&l)
			if err := old.Put([]byte(l.Code), b); err != nil {
				return err
			}
			if err := recordChange(tx, changeLink, []byte(l.Code)); err != nil {
				return err
			}
		}
		return nil
	})
	if e := db.Close(); err == nil {
		err = e
	}
	if err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, dir)
	for _, i := range []int{0, 1, linksPerMove - 1, linksPerMove, n - 1} {
		got, err := s.Link(ctx, link(i).Code)
		if err != nil || got.Destinations != link(i).Destinations {
			t.Fatalf("link %d after the move: got %+v, %v; want %+v", i, got, err, link(i))
		}
	}
	cat, err := s.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Links) != n+1 || !slices.IsSortedFunc(cat.Links, func(a, b counter.Link) int { return strings.Compare(a.Code, b.Code) }) {
		t.Fatalf("catalog after the move: %d links (sorted: %v); want %d sorted by code", len(cat.Links),
			slices.IsSortedFunc(cat.Links, func(a, b counter.Link) int { return strings.Compare(a.Code, b.Code) }), n+1)
	}
	ch, err := s.CatalogChanges(ctx, since, 0)
	if err != nil || ch.Trimmed || len(ch.Links) != n || ch.Links[n-1].Code != link(n-1).Code {
		t.Fatalf("changes after the move: %v (trimmed %v, %d links); want the %d links moved", err, ch != nil && ch.Trimmed, len(ch.Links), n)
	}
	if err := s.CreateLink(ctx, link(7)); !errors.Is(err, counter.ErrExists) {
		t.Fatalf("creating a moved link's code again: got %v; want ErrExists", err)
	}
	var taken *counter.CodesTakenError
	if err := s.CreateLinks(ctx, []counter.Link{{Code: "new00002", Campaign: "c1", Creator: "alice"}, link(3)}); !errors.As(err, &taken) ||
		!slices.Equal(taken.Codes, []string{link(3).Code}) {
		t.Fatalf("creating links with a moved link's code: got %v; want the code taken", err)
	}
	if _, err := s.Link(ctx, "new00002"); !errors.Is(err, counter.ErrNotFound) {
		t.Fatalf("a link of a refused bulk: got %v; want ErrNotFound", err)
	}
	if _, err := s.UpdateLink(ctx, link(9).Code, func(l *counter.Link) error { l.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	s = mustOpen(t, dir)
	defer mustClose(t, s)
	if got, err := s.Link(ctx, link(9).Code); err != nil || !got.Disabled {
		t.Fatalf("a moved link changed, after another open: got %+v, %v; want it disabled", got, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketLinks) != nil {
			return errors.New("bucket links is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCreateLinksFailedLeavesNoCode: links whose transaction fails (here
// bbolt refuses a key too large) are not taken afterwards.
func TestCreateLinksFailedLeavesNoCode(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	defer mustClose(t, s)
	ok := counter.Link{Code: "fine0001", Campaign: "c1", Creator: "alice"}
	huge := counter.Link{Code: strings.Repeat("x", bolt.MaxKeySize), Campaign: "c1", Creator: "alice"}
	if err := s.CreateLinks(ctx, []counter.Link{ok, huge}); err == nil {
		t.Fatal("a link with a code of MaxKeySize bytes was stored")
	}
	if _, err := s.Link(ctx, ok.Code); !errors.Is(err, counter.ErrNotFound) {
		t.Fatalf("a link of the failed transaction: got %v; want ErrNotFound", err)
	}
	if err := s.CreateLink(ctx, ok); err != nil {
		t.Fatalf("cannot create the link of the failed transaction again: %s", err)
	}
}

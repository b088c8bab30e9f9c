package boltstore

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/clickgate/clickgate/counter"
)

// TestRecentLinksReadAsDecoded: the change feed returns the links just
// written as decoding their JSON would, from recentLinks for those that
// decode to themselves, and decoded for the others (a time with a
// monotonic reading or a zone, invalid UTF-8), which are not kept.
func TestRecentLinksReadAsDecoded(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	defer mustClose(t, s)
	now := time.Now()
	link := func(code string, at time.Time, title string) counter.Link {
		return counter.Link{Code: code, Campaign: "c1", Creator: "alice", CreatedAt: at,
			Destinations: counter.Destinations{Default: "https://a.example/" + code}, Preview: counter.Card{Title: title}}
	}
	links := []counter.Link{
		link("kept0001", now.UTC(), "Tïtle <&> \u2028"),
		link("kept0002", time.Time{}, ""),
		link("updated1", now.UTC(), ""),
		link("monotone", now, ""),
		link("zoned001", now.In(time.FixedZone("", 3600)), ""),
		link("badutf81", now.UTC(), "bad \xff"),
	}
	kept := map[string]bool{"kept0001": true, "kept0002": true, "updated1": true}
	if err := s.CreateLinks(ctx, links); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateLink(ctx, "updated1", func(l *counter.Link) error { l.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	ch, err := s.CatalogChanges(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Links) != len(links) {
		t.Fatalf("unexpected links in the feed; got %d; want %d", len(ch.Links), len(links))
	}
	for _, got := range ch.Links {
		seq, _ := s.links.get(got.Code)
		var stored []byte
		if err := s.db.View(func(tx *bolt.Tx) error {
			stored = append(stored, tx.Bucket(bucketLinkSeq).Get(linkKey(seq, got.Code))...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var want counter.Link
		if err := json.Unmarshal(stored, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("link %q from the feed is not as decoded:\ngot  %#v\nwant %#v", got.Code, got, want)
		}
		var l counter.Link
		if s.recent.get(seq, stored, &l) != kept[got.Code] {
			t.Errorf("link %q kept among the recent links: %t; want %t", got.Code, !kept[got.Code], kept[got.Code])
		}
	}
}

// TestRoundTripsFields fails when counter.Link, or a struct in it, gains a
// field: roundTrips must then check it.
func TestRoundTripsFields(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int
	}{{counter.Link{}, 7}, {counter.Destinations{}, 3}, {counter.Card{}, 3}} {
		if n := reflect.TypeOf(tc.v).NumField(); n != tc.want {
			t.Errorf("%T has %d fields, roundTrips knows %d: check the new ones there", tc.v, n, tc.want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// catalogCmd is `clickgate catalog export|import`: the campaigns, creators
// and links of a store as one JSON document, and back. Import goes through
// the admin API, so every object is validated as if it were new, and it
// is idempotent: what exists with the same values is left as it is.
func catalogCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "import") {
		return usageError("catalog: want the subcommand export or import")
	}
	sub := args[0]
	fs := newFlagSet("catalog "+sub, stderr)
	adminURL, token, dataDir := addClientFlags(fs)
	file := fs.String("file", "-", "the catalog document: - for standard output (export) or input (import)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	c, err := newAdminClient(*adminURL, *token, *dataDir)
	if err != nil {
		return err
	}
	if sub == "export" {
		w := stdout
		if *file != "-" {
			f, err := os.Create(*file)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		return c.do(ctx, "GET", "/v1/catalog", nil, w)
	}
	r := io.Reader(os.Stdin)
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var cat struct {
		Version   uint64             `json:"version"`
		Campaigns []counter.Campaign `json:"campaigns"`
		Creators  []counter.Creator  `json:"creators"`
		Links     []counter.Link     `json:"links"`
	}
	if err := dec.Decode(&cat); err != nil {
		return fmt.Errorf("cannot read the catalog document: %w", err)
	}
	var done [3]int
	for _, cp := range cat.Campaigns {
		// The campaign as the API takes it: every field but the id,
		// which is in the path.
		var body map[string]any
		b, _ := json.Marshal(cp)
		json.Unmarshal(b, &body)
		delete(body, "id")
		if err := c.do(ctx, "PUT", "/v1/campaigns/"+url.PathEscape(cp.ID), body, io.Discard); err != nil {
			return fmt.Errorf("campaign %q: %w", cp.ID, err)
		}
		done[0]++
	}
	for _, cr := range cat.Creators {
		body := map[string]any{"campaign": cr.Campaign, "handle": cr.Handle, "country": cr.Country, "status": cr.Status}
		if err := c.do(ctx, "PUT", "/v1/creators/"+url.PathEscape(cr.ID), body, io.Discard); err != nil {
			return fmt.Errorf("creator %q of campaign %q: %w", cr.ID, cr.Campaign, err)
		}
		done[1]++
	}
	for _, l := range cat.Links {
		body := map[string]any{"campaign": l.Campaign, "creator": l.Creator, "code": l.Code, "destinations": l.Destinations, "preview": l.Preview}
		err := c.do(ctx, "POST", "/v1/links", body, io.Discard)
		if err != nil && strings.Contains(err.Error(), "is taken") {
			err = sameLink(ctx, c, l)
		}
		if err != nil {
			return fmt.Errorf("link %q: %w", l.Code, err)
		}
		done[2]++
	}
	return writeJSONOut(stdout, map[string]int{"campaigns": done[0], "creators": done[1], "links": done[2]})
}

// sameLink checks that the store's link l.Code is l: a taken code is fine
// when it is the same link, and an error when it is another.
func sameLink(ctx context.Context, c *adminClient, l counter.Link) error {
	var b bytes.Buffer
	if err := c.do(ctx, "GET", "/v1/links/"+url.PathEscape(l.Code), nil, &b); err != nil {
		return err
	}
	var got counter.Link
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		return err
	}
	if got.Campaign != l.Campaign || got.Creator != l.Creator || got.Destinations != l.Destinations || got.Preview != l.Preview {
		return fmt.Errorf("code %q is taken by another link (campaign %q, creator %q)", l.Code, got.Campaign, got.Creator)
	}
	return nil
}

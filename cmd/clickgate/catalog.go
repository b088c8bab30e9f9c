package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// catalogCmd is `clickgate catalog export|import`: the campaigns, creators
// and links of a store as one JSON document, and back. Import goes through
// the admin API, so every object is validated as if it were new, and it
// is idempotent: campaigns and creators are put as the document has them,
// and a link that exists with the same values is left as it is.
func catalogCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand("catalog", args, stdout)
	if err != nil {
		return err
	}
	fs := newFlagSet("catalog "+sub, stderr)
	adminURL, token, dataDir := addClientFlags(fs)
	file := fs.String("file", "-", "the catalog document: - for standard output (export) or input (import)")
	if err := parseFlags(fs, args); err != nil {
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
		return printAnswer(w)(c.Catalog(ctx))
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
	var cat adminclient.Catalog
	if err := dec.Decode(&cat); err != nil {
		return fmt.Errorf("cannot read the catalog document: %w", err)
	}
	var done [3]int
	for _, cp := range cat.Campaigns {
		if _, err := c.PutCampaign(ctx, cp.ID, adminclient.CampaignPutOf(cp)); err != nil {
			return fmt.Errorf("campaign %q: %w", cp.ID, err)
		}
		done[0]++
	}
	for _, cr := range cat.Creators {
		if _, err := c.PutCreator(ctx, cr.ID, adminclient.CreatorPutOf(cr)); err != nil {
			return fmt.Errorf("creator %q of campaign %q: %w", cr.ID, cr.Campaign, err)
		}
		done[1]++
	}
	for _, l := range cat.Links {
		_, err := c.CreateLink(ctx, adminclient.NewLink{Campaign: l.Campaign, Creator: l.Creator, Code: l.Code,
			Destinations: l.Destinations, Preview: &l.Preview})
		if errors.Is(err, adminclient.ErrConflict) {
			err = sameLink(ctx, c, l)
		}
		if err == nil && l.Disabled {
			// A link is created enabled: disabled, it is disabled again.
			disabled := true
			_, err = c.PatchLink(ctx, l.Code, adminclient.LinkPatch{Disabled: &disabled})
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
func sameLink(ctx context.Context, c *adminclient.Client, l counter.Link) error {
	got, err := c.Link(ctx, l.Code)
	if err != nil {
		return err
	}
	if got.Campaign != l.Campaign || got.Creator != l.Creator || got.Destinations != l.Destinations || got.Preview != l.Preview {
		return fmt.Errorf("code %q is taken by another link (campaign %q, creator %q)", l.Code, got.Campaign, got.Creator)
	}
	return nil
}

// importLinks is `clickgate links import FILE`: the links of FILE, JSON
// lines (each a POST /v1/links body) or CSV with a header row naming
// columns of csvColumns, created through POST /v1/links:bulk. Every line
// is validated before any link is created; line numbers are FILE's. A
// file over what one call takes (the admin listener's 1 MiB) is sent in
// parts, each validated first (?dry_run=1), then created in turn.
func importLinks(ctx context.Context, c *adminclient.Client, file string, stdout io.Writer) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var lines []int // FILE's line of each line sent; nil: the same
	if strings.EqualFold(filepath.Ext(file), ".csv") {
		if data, lines, err = csvToJSONLines(data); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	fileLine := func(n int) int {
		if lines == nil || n < 1 || n > len(lines) {
			return n
		}
		return lines[n-1]
	}
	parts := splitLines(data, importPartSize)
	var created []adminclient.ImportedLink
	send := func(p importPart, dry bool) error {
		res, err := c.ImportLinks(ctx, p.data, dry)
		if res == nil {
			return err
		}
		for _, l := range res.Links {
			l.Line = fileLine(p.first + l.Line)
			created = append(created, l)
		}
		if err == nil {
			return nil
		}
		if len(res.Errors) == 0 {
			return err
		}
		msg := make([]string, len(res.Errors))
		for i, e := range res.Errors {
			msg[i] = fmt.Sprintf("%s:%d: %s", file, fileLine(p.first+e.Line), e.Error)
		}
		what := "no link created"
		if len(created) > 0 {
			what = fmt.Sprintf("%d links created (listed on standard output), the rest not", len(created))
		}
		return fmt.Errorf("%d lines refused, %s:\n%s", len(res.Errors), what, strings.Join(msg, "\n"))
	}
	if len(parts) > 1 {
		// Each part is checked alone: a code given in two parts is not.
		if msg := repeatedCodes(data, file, fileLine); len(msg) > 0 {
			return fmt.Errorf("%d lines refused, no link created:\n%s", len(msg), strings.Join(msg, "\n"))
		}
		for _, p := range parts {
			if err := send(p, true); err != nil {
				return err
			}
		}
	}
	for _, p := range parts {
		if err := send(p, false); err != nil {
			if len(created) > 0 {
				writeJSONOut(stdout, map[string]any{"created": len(created), "links": created})
			}
			return err
		}
	}
	return writeJSONOut(stdout, map[string]any{"created": len(created), "links": created})
}

// repeatedCodes returns an error for each line of data, JSON lines, whose
// custom code an earlier line gives, as the server words it for a part
// (lines that are not JSON are the server's to refuse).
func repeatedCodes(data []byte, file string, fileLine func(int) int) []string {
	var msg []string
	first := map[string]int{}
	for n, line := range bytes.Split(data, []byte("\n")) {
		var l struct{ Code string }
		if json.Unmarshal(line, &l) != nil || l.Code == "" {
			continue
		}
		if at, ok := first[l.Code]; ok {
			msg = append(msg, fmt.Sprintf("%s:%d: code %q is given on line %d too", file, fileLine(n+1), l.Code, fileLine(at)))
			continue
		}
		first[l.Code] = n + 1
	}
	return msg
}

// importPartSize is the most bytes sent in one call: the admin
// listener's body cap (1 MiB) with room for the request's headers.
var importPartSize = 1<<20 - 16<<10

type importPart struct {
	data  []byte
	first int // lines before it
}

// splitLines splits data at line ends into parts of at most size bytes
// (a longer line is a part of its own, which the server refuses).
func splitLines(data []byte, size int) []importPart {
	var parts []importPart
	first := 0
	for len(data) > 0 {
		n := len(data)
		if n > size {
			n = bytes.LastIndexByte(data[:size], '\n') + 1
			if n == 0 {
				n = bytes.IndexByte(data, '\n') + 1
				if n == 0 {
					n = len(data)
				}
			}
		}
		parts = append(parts, importPart{data: data[:n], first: first})
		first += bytes.Count(data[:n], []byte{'\n'})
		data = data[n:]
	}
	return parts
}

// csvColumns are the columns of a links CSV file, by header name, and
// where each goes in a POST /v1/links body.
var csvColumns = map[string][]string{
	"campaign": {"campaign"}, "creator": {"creator"}, "code": {"code"},
	"default": {"destinations", "default"}, "ios": {"destinations", "ios"}, "android": {"destinations", "android"},
	"title": {"preview", "title"}, "description": {"preview", "description"}, "image": {"preview", "image"},
}

// csvToJSONLines turns a links CSV file into JSON lines, and returns the
// file's line of each.
func csvToJSONLines(data []byte) ([]byte, []int, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = 0 // every record as long as the header
	header, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the header row: %w", err)
	}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if csvColumns[h] == nil {
			return nil, nil, fmt.Errorf("unknown column %q in the header row; want some of campaign, creator, code, default, ios, android, title, description, image", header[i])
		}
		header[i] = h
	}
	var out bytes.Buffer
	var lines []int
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		line, _ := r.FieldPos(0)
		obj := map[string]any{}
		for i, v := range rec {
			if v == "" {
				continue
			}
			path := csvColumns[header[i]]
			if len(path) == 1 {
				obj[path[0]] = v
				continue
			}
			sub, _ := obj[path[0]].(map[string]any)
			if sub == nil {
				sub = map[string]any{}
				obj[path[0]] = sub
			}
			sub[path[1]] = v
		}
		b, _ := json.Marshal(obj)
		out.Write(append(b, '\n'))
		lines = append(lines, line)
	}
	return out.Bytes(), lines, nil
}

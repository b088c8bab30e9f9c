package main

import (
	"context"
	"flag"
	"io"
	"os"
	"strconv"

	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// Catalog management commands: lists, a link's changes, stats and QR
// code, a campaign's totals. client calls manage for the commands it does
// not know; ok is false for those manage does not know either.
func manage(ctx context.Context, name string, fs *flag.FlagSet, id string, args []string, newClient func() (*adminclient.Client, error), stdout io.Writer) (ok bool, err error) {
	switch name {
	case "campaigns list", "creators list", "links list":
		return true, listCmd(ctx, name, fs, id, args, newClient, stdout)
	case "campaigns totals", "links stats":
		what, usage := "campaign id", `"creator" or "day" for one entry per creator or per UTC day`
		if name == "links stats" {
			what, usage = "code", `"day" for one entry per UTC day`
		}
		by := fs.String("by", "", usage)
		if err := parseFlags(fs, args); err != nil {
			return true, err
		}
		if id, err = requireID(fs, id, what); err != nil {
			return true, err
		}
		c, err := newClient()
		if err != nil {
			return true, err
		}
		if name == "links stats" {
			return true, printAnswer(stdout)(c.LinkStats(ctx, id, *by))
		}
		return true, printAnswer(stdout)(c.CampaignTotals(ctx, id, *by))
	case "links patch", "links disable", "links enable":
		return true, patchCmd(ctx, name, fs, id, args, newClient, stdout)
	case "links qr":
		return true, qrCmd(ctx, fs, id, args, newClient, stdout)
	}
	return false, nil
}

// listCmd is campaigns|creators|links list: one page, or with --all every
// page, as one JSON object.
func listCmd(ctx context.Context, name string, fs *flag.FlagSet, id string, args []string, newClient func() (*adminclient.Client, error), stdout io.Writer) error {
	var q adminclient.ListQuery
	fs.IntVar(&q.Limit, "limit", 0, "entries per page, 1 to 1000 (default 100)")
	fs.StringVar(&q.Cursor, "cursor", "", "where the page starts: the next_cursor of the page before")
	all := fs.Bool("all", false, "every page, as one list")
	var disabled string
	switch name {
	case "creators list":
		fs.StringVar(&q.Campaign, "campaign", "", "only the creators of this campaign")
		fs.StringVar(&q.Status, "status", "", "only creators of this status: invited, active or suspended")
	case "links list":
		fs.StringVar(&q.Campaign, "campaign", "", "only the links of this campaign")
		fs.StringVar(&q.Creator, "creator", "", "only the links of this creator")
		fs.StringVar(&disabled, "disabled", "", "true: only disabled links; false: only enabled ones")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if id != "" {
		return usageError("%s: unexpected argument %q", name, id)
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if givenFlags(fs)["disabled"] {
		b, err := strconv.ParseBool(disabled)
		if err != nil {
			return usageError("--disabled %q: want true or false", disabled)
		}
		q.Disabled = &b
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	switch name {
	case "campaigns list":
		return listPages(ctx, stdout, q, *all, "campaigns", func(q adminclient.ListQuery) (adminclient.CampaignPage, []any, string, error) {
			p, err := c.Campaigns(ctx, q)
			return p, anys(p.Campaigns), p.NextCursor, err
		})
	case "creators list":
		return listPages(ctx, stdout, q, *all, "creators", func(q adminclient.ListQuery) (adminclient.CreatorPage, []any, string, error) {
			p, err := c.Creators(ctx, q)
			return p, anys(p.Creators), p.NextCursor, err
		})
	default:
		return listPages(ctx, stdout, q, *all, "links", func(q adminclient.ListQuery) (adminclient.LinkPage, []any, string, error) {
			p, err := c.Links(ctx, q)
			return p, anys(p.Links), p.NextCursor, err
		})
	}
}

// listPages writes the page of q, or with all every page from q on, as
// {"<list>": [...]}.
func listPages[P any](ctx context.Context, stdout io.Writer, q adminclient.ListQuery, all bool, list string,
	page func(adminclient.ListQuery) (P, []any, string, error)) error {
	items := []any{}
	for {
		p, these, next, err := page(q)
		if err != nil {
			return err
		}
		if !all {
			return writeJSONOut(stdout, p)
		}
		items = append(items, these...)
		if next == "" {
			return writeJSONOut(stdout, map[string]any{list: items})
		}
		q.Cursor = next
	}
}

func anys[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// patchCmd is links patch CODE [flags]: only the fields given change. links
// disable and links enable are patches of disabled alone.
func patchCmd(ctx context.Context, name string, fs *flag.FlagSet, id string, args []string, newClient func() (*adminclient.Client, error), stdout io.Writer) error {
	var dest [3]*string // default, ios, android
	var disabled *string
	var preview previewFlags
	if name == "links patch" {
		dest[0] = fs.String("default", "", "destination for every platform without its own (https URL)")
		dest[1] = fs.String("ios", "", `destination for iPhone, iPad and iPod (https URL; "" removes it)`)
		dest[2] = fs.String("android", "", `destination for Android (https URL; "" removes it)`)
		disabled = fs.String("disabled", "", "true: the link answers like an unknown code and counts nothing; false: it is served again")
		preview = addPreviewFlags(fs, `this link ("" removes a field: the campaign's is shown)`)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if id, err = requireID(fs, id, "code"); err != nil {
		return err
	}
	if fs.NArg() > 0 && fs.Arg(0) != id {
		return usageError("%s: unexpected argument %q", name, fs.Arg(0))
	}
	var p adminclient.LinkPatch
	switch name {
	case "links disable", "links enable":
		b := name == "links disable"
		p.Disabled = &b
	default:
		given := givenFlags(fs)
		d := adminclient.DestinationsPatch{Default: ifGiven(given, "default", dest[0]),
			IOS: ifGiven(given, "ios", dest[1]), Android: ifGiven(given, "android", dest[2])}
		if d != (adminclient.DestinationsPatch{}) {
			p.Destinations = &d
		}
		p.Preview = preview.patch(given)
		if given["disabled"] {
			b, err := strconv.ParseBool(*disabled)
			if err != nil {
				return usageError("--disabled %q: want true or false", *disabled)
			}
			p.Disabled = &b
		}
		if p == (adminclient.LinkPatch{}) {
			return usageError("links patch: nothing to change; give --default, --ios, --android, --preview-title, --preview-description, --preview-image or --disabled")
		}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	return printAnswer(stdout)(c.PatchLink(ctx, id, p))
}

// qrCmd is links qr CODE [--format svg|png] [--size N] [--out FILE].
func qrCmd(ctx context.Context, fs *flag.FlagSet, id string, args []string, newClient func() (*adminclient.Client, error), stdout io.Writer) error {
	format := fs.String("format", "svg", "svg or png")
	size := fs.Int("size", 256, "width and height in pixels (64 to 2048)")
	out := fs.String("out", "-", "file to write the image to: - for standard output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if id, err = requireID(fs, id, "code"); err != nil {
		return err
	}
	if *format != "svg" && *format != "png" {
		return usageError("--format %q: want svg or png", *format)
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	b, err := c.LinkQR(ctx, id, *format, *size)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

func addClientFlags(fs *flag.FlagSet) (*string, *string, *string) {
	return fs.String("admin-url", "http://127.0.0.1:8081", "URL of the admin listener"),
		fs.String("admin-token", "", "bearer token of the admin API (default: the one in DATA/admin-token)"),
		fs.String("data", "./data", "data directory of a local clickgate, to read its admin-token")
}

// newAdminClient returns a client of the admin API at adminURL, with
// token, or else the one in dataDir.
func newAdminClient(adminURL, token, dataDir string) (*adminclient.Client, error) {
	if token == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
		if err != nil {
			return nil, usageError("no --admin-token given and none readable in %s: %s", dataDir, err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &adminclient.Client{URL: adminURL, Token: token}, nil
}

// printAnswer returns a function that writes an answer of the admin API
// to stdout, unless the call failed: printAnswer(stdout)(c.Link(ctx, code)).
func printAnswer(stdout io.Writer) func(v any, err error) error {
	return func(v any, err error) error {
		if err != nil {
			return err
		}
		return writeJSONOut(stdout, v)
	}
}

func client(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if cmd != "stats" {
		var err error
		if sub, args, err = subcommand(cmd, args, stdout); err != nil {
			return err
		}
	}
	name := strings.TrimSpace(cmd + " " + sub)
	fs := newFlagSet(name, stderr)
	adminURL, token, dataDir := addClientFlags(fs)
	newClient := func() (*adminclient.Client, error) { return newAdminClient(*adminURL, *token, *dataDir) }
	id, args := splitID(args)

	switch name {
	case "campaigns put":
		return putCampaignCmd(ctx, fs, id, args, newClient, stdout)
	case "campaigns get":
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		var err error
		if id, err = requireID(fs, id, "campaign id"); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return printAnswer(stdout)(c.Campaign(ctx, id))
	case "creators put":
		campaign := fs.String("campaign", "", "campaign the creator joins (required)")
		handle := fs.String("handle", "", "the creator's public handle")
		country := fs.String("country", "", "ISO 3166-1 alpha-2 country code, e.g. US (required for a new creator)")
		status := fs.String("status", "", "invited, active or suspended (default, for a new creator: active)")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		var err error
		if id, err = requireID(fs, id, "creator id"); err != nil {
			return err
		}
		if *campaign == "" {
			return usageError("creators put: --campaign is required")
		}
		// Only what was given is sent: a creator's other fields keep
		// their value.
		given := givenFlags(fs)
		p := adminclient.CreatorPut{Campaign: *campaign, Handle: ifGiven(given, "handle", handle),
			Country: ifGiven(given, "country", country), Status: ifGiven(given, "status", status)}
		c, err := newClient()
		if err != nil {
			return err
		}
		return printAnswer(stdout)(c.PutCreator(ctx, id, p))
	case "creators get":
		campaign := fs.String("campaign", "", "campaign of the creator (required)")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		var err error
		if id, err = requireID(fs, id, "creator id"); err != nil {
			return err
		}
		if *campaign == "" {
			return usageError("creators get: --campaign is required")
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return printAnswer(stdout)(c.Creator(ctx, *campaign, id))
	case "links create":
		campaign := fs.String("campaign", "", "campaign of the link (required)")
		creator := fs.String("creator", "", "creator the link belongs to (required)")
		code := fs.String("code", "", "custom code (default: 8 random characters)")
		def := fs.String("default", "", "destination for every platform without its own (https URL, required)")
		ios := fs.String("ios", "", "destination for iPhone, iPad and iPod (https URL)")
		android := fs.String("android", "", "destination for Android (https URL)")
		preview := addPreviewFlags(fs, "this link (default: the campaign's)")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if id != "" {
			return usageError("links create: unexpected argument %q", id)
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		l := adminclient.NewLink{Campaign: *campaign, Creator: *creator, Code: *code,
			Destinations: counter.Destinations{Default: *def, IOS: *ios, Android: *android}}
		if card := preview.patch(givenFlags(fs)); card != nil {
			l.Preview = &counter.Card{}
			card.Apply(l.Preview)
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return printAnswer(stdout)(c.CreateLink(ctx, l))
	case "links import":
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		file, err := requireID(fs, id, "file (.jsonl or .csv)")
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return importLinks(ctx, c, file, stdout)
	case "links get":
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		var err error
		if id, err = requireID(fs, id, "code"); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return printAnswer(stdout)(c.Link(ctx, id))
	case "stats":
		campaign := fs.String("campaign", "", "campaign (required)")
		creator := fs.String("creator", "", "creator (required)")
		by := fs.String("by", "", `"day" for one entry per UTC day`)
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if id != "" {
			return usageError("stats: unexpected argument %q", id)
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		if *campaign == "" || *creator == "" {
			return usageError("stats: --campaign and --creator are required")
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return printAnswer(stdout)(c.Stats(ctx, *campaign, *creator, *by))
	}
	if ok, err := manage(ctx, name, fs, id, args, newClient, stdout); ok {
		return err
	}
	return usageError("unknown command %q (see clickgate help)", name)
}

// putCampaignCmd is campaigns put ID [flags]: only the fields given are
// sent; the others keep their value, or take the server's defaults when
// the campaign is new.
func putCampaignCmd(ctx context.Context, fs *flag.FlagSet, id string, args []string, newClient func() (*adminclient.Client, error), stdout io.Writer) error {
	f := map[string]*string{}
	for _, n := range []string{"name", "starts-at", "ends-at", "dedupe-window", "eligible-countries", "signup-grace", "attribution-window", "query-passthrough"} {
		f[n] = fs.String(n, "", campaignFlagUsage[n])
	}
	ints := map[string]*int64{}
	for _, n := range []string{"signup-reward-cents", "visit-block-size", "visit-block-reward-cents", "cap-cents"} {
		ints[n] = fs.Int64(n, 0, campaignFlagUsage[n])
	}
	preview := addPreviewFlags(fs, "the campaign's links (a link's own preview wins)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if id, err = requireID(fs, id, "campaign id"); err != nil {
		return err
	}
	given := givenFlags(fs)
	p := adminclient.CampaignPut{Name: ifGiven(given, "name", f["name"]),
		SignupRewardCents:     ifGiven(given, "signup-reward-cents", ints["signup-reward-cents"]),
		VisitBlockSize:        ifGiven(given, "visit-block-size", ints["visit-block-size"]),
		VisitBlockRewardCents: ifGiven(given, "visit-block-reward-cents", ints["visit-block-reward-cents"]),
		CapCents:              ifGiven(given, "cap-cents", ints["cap-cents"])}
	if given["eligible-countries"] {
		list := []string{}
		for _, cc := range strings.Split(*f["eligible-countries"], ",") {
			if cc = strings.TrimSpace(cc); cc != "" {
				list = append(list, cc)
			}
		}
		p.EligibleCountries = &list
	}
	for n, dst := range map[string]**time.Time{"starts-at": &p.StartsAt, "ends-at": &p.EndsAt} {
		if given[n] {
			t, err := parseTime(n, *f[n])
			if err != nil {
				return err
			}
			*dst = &t
		}
	}
	for n, dst := range map[string]**counter.Duration{"dedupe-window": &p.DedupeWindow, "signup-grace": &p.SignupGrace, "attribution-window": &p.AttributionWindow} {
		if given[n] {
			d, err := parseDuration(n, *f[n])
			if err != nil {
				return err
			}
			*dst = &d
		}
	}
	if given["query-passthrough"] {
		b, err := strconv.ParseBool(*f["query-passthrough"])
		if err != nil {
			return usageError("--query-passthrough %q: want true or false", *f["query-passthrough"])
		}
		p.QueryPassthrough = &b
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	if card := preview.patch(given); card != nil {
		// The API replaces the whole card: keep the fields not given.
		cur, err := c.Campaign(ctx, id)
		if err != nil && !errors.Is(err, adminclient.ErrNotFound) {
			return err
		}
		card.Apply(&cur.Preview)
		p.Preview = &cur.Preview
	}
	return printAnswer(stdout)(c.PutCampaign(ctx, id, p))
}

// ifGiven is v when flag name was given, else nil.
func ifGiven[T any](given map[string]bool, name string, v *T) *T {
	if given[name] {
		return v
	}
	return nil
}

var campaignFlagUsage = map[string]string{
	"name":                     "display name (default: the id)",
	"starts-at":                "start of the campaign: a day, 2026-05-11 (midnight UTC), or an RFC 3339 time, 2026-05-11T09:00:00Z (required for a new campaign)",
	"ends-at":                  "end of the campaign, as --starts-at (required for a new campaign)",
	"dedupe-window":            "a visitor counts once per creator per window, e.g. 24h (default 24h)",
	"eligible-countries":       "comma-separated ISO country codes of eligible creators, e.g. US (default: any)",
	"signup-reward-cents":      "reward per referred signup, in cents (default 10000)",
	"visit-block-size":         "qualified visits per reward block (default 1000)",
	"visit-block-reward-cents": "reward per block of qualified visits, in cents (default 10000)",
	"cap-cents":                "cap per creator per campaign, in cents (default 2000000)",
	"signup-grace":             "how long after ends-at signups are still credited, e.g. 72h (default 0s)",
	"attribution-window":       "how long after a click a signup is credited, e.g. 720h (default 720h)",
	"query-passthrough":        "true or false: a short link's query parameters (but the click id) are merged into its destination's, whose own win (default true)",
}

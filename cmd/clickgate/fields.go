package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// subcommands are the subcommands of each command that has some, as
// "clickgate COMMAND -h" lists them.
var subcommands = map[string][][2]string{
	"campaigns": {
		{"put ID [flags]", "create a campaign, or change the fields given (the others keep their value)"},
		{"get ID", "the campaign"},
		{"list [--limit N] [--cursor C] [--all]", "the campaigns by id, a page at a time (--all: every page)"},
		{"totals ID [--by creator|day]", "the counts of every creator of the campaign, summed"},
	},
	"creators": {
		{"put ID --campaign C [flags]", "create a creator, or change the fields given (the others keep their value)"},
		{"get ID --campaign C", "the creator"},
		{"list [--campaign C] [--status S] [--limit N] [--cursor C] [--all]", "the creators by campaign and id, a page at a time"},
	},
	"links": {
		{"create --campaign C --creator ID --default URL [flags]", "a new link; its code is random unless --code"},
		{"get CODE", "the link"},
		{"import FILE.jsonl|FILE.csv", "many links in one call, all or none"},
		{"list [--campaign C] [--creator ID] [--disabled true|false] [--limit N] [--cursor C] [--all]", "the links by code, a page at a time"},
		{"patch CODE [--default URL] [--ios URL] [--android URL] [--preview-title T] [--disabled true|false]", "change the fields given (the others keep their value)"},
		{"disable CODE", "the code answers like an unknown one and counts nothing, on every node within its poll interval"},
		{"enable CODE", "serve a disabled link again"},
		{"stats CODE [--by day]", "the counts of the link: every click on it and every signup of its clicks"},
		{"qr CODE [--format svg|png] [--size N] [--out FILE]", "the QR code of the link's public URL"},
	},
	"catalog": {
		{"export [--file F]", "every campaign, creator and link as one JSON document"},
		{"import [--file F]", "put such a document back: campaigns and creators as it has them, the links the store lacks"},
	},
	"ledger": {
		{"verify [--ledger DIR] [--head HASH]", "check every record, the chain, the totals and the sealed statements"},
	},
	"store": {
		{"salvage [--data DIR] [--spool DIR]", "the node stopped: make a damaged visit log of the embedded store, or spool, open again, losing only the damaged visits"},
	},
}

// subcommand takes the subcommand of cmd off args. "-h" (or none) lists
// the subcommands: on stdout with flag.ErrHelp when asked for, else as a
// usage error.
func subcommand(cmd string, args []string, stdout io.Writer) (string, []string, error) {
	subs := subcommands[cmd]
	if len(args) > 0 {
		switch a := args[0]; a {
		case "-h", "-help", "--help", "help":
			writeSubcommands(stdout, cmd)
			return "", nil, flag.ErrHelp
		default:
			for _, s := range subs {
				if a == strings.Fields(s[0])[0] {
					return a, args[1:], nil
				}
			}
			if !strings.HasPrefix(a, "-") {
				var b strings.Builder
				writeSubcommands(&b, cmd)
				return "", nil, usageError("%s: unknown subcommand %q\n\n%s", cmd, a, b.String())
			}
		}
	}
	var b strings.Builder
	writeSubcommands(&b, cmd)
	return "", nil, usageError("%s: want a subcommand\n\n%s", cmd, b.String())
}

func writeSubcommands(w io.Writer, cmd string) {
	fmt.Fprintf(w, "Usage of clickgate %s:\n", cmd)
	for _, s := range subcommands[cmd] {
		fmt.Fprintf(w, "  clickgate %s %s\n  \t%s\n", cmd, s[0], s[1])
	}
	fmt.Fprintf(w, "Run \"clickgate %s SUBCOMMAND -h\" for its flags.\n", cmd)
}

// parseTime reads a date flag: a day (2026-05-11, midnight UTC) or an
// RFC 3339 time, returned in UTC.
func parseTime(flagName, v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageError("--%s %q: want a day (2026-05-11, midnight UTC) or an RFC 3339 time (2026-05-11T09:00:00Z, 2026-05-11T09:00:00-07:00)", flagName, v)
	}
	return t.UTC(), nil
}

// parseDuration reads a duration flag (24h, 90m, 0s).
func parseDuration(flagName, v string) (counter.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usageError("--%s %q: want a duration such as 24h, 90m or 0s", flagName, v)
	}
	return counter.Duration(d), nil
}

// previewFlags are a preview card's flags, as campaigns put, links create
// and links patch take them.
type previewFlags struct{ title, description, image *string }

func addPreviewFlags(fs *flag.FlagSet, of string) previewFlags {
	return previewFlags{
		title:       fs.String("preview-title", "", "title of the preview card that link-unfurl fetchers show of "+of),
		description: fs.String("preview-description", "", "description of that card"),
		image:       fs.String("preview-image", "", "image of that card (an https URL)"),
	}
}

// patch is the preview flags given, or nil when none was.
func (p previewFlags) patch(given map[string]bool) *adminclient.CardPatch {
	c := adminclient.CardPatch{Title: ifGiven(given, "preview-title", p.title),
		Description: ifGiven(given, "preview-description", p.description), Image: ifGiven(given, "preview-image", p.image)}
	if c == (adminclient.CardPatch{}) {
		return nil
	}
	return &c
}

// givenFlags returns the flags set on the command line or from the
// environment.
func givenFlags(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// Command clickgate is the referral link redirector and click counter: the
// service (serve) and a client of its admin API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `clickgate: referral link redirector and click counter

Usage:
  clickgate serve [flags]                      run the service
  clickgate campaigns put ID [flags]           create a campaign, or change the fields given
  clickgate campaigns get ID
  clickgate campaigns list [--limit N] [--cursor C] [--all]
  clickgate campaigns totals ID [--by creator|day]
  clickgate creators put ID --campaign C [flags]
  clickgate creators get ID --campaign C
  clickgate creators list [--campaign C] [--status S] [--limit N] [--cursor C] [--all]
  clickgate links create --campaign C --creator ID --default URL [flags]
  clickgate links get CODE
  clickgate links list [--campaign C] [--creator ID] [--disabled true|false] [--all]
  clickgate links patch CODE [flags]           change the fields given; links disable|enable CODE
  clickgate links stats CODE [--by day]        the link's own counts
  clickgate links qr CODE [--format svg|png] [--size N] [--out FILE]
  clickgate links import FILE.jsonl|FILE.csv   create many links in one call, all or none: JSON lines as
                                               for links create, or CSV with a header row (campaign,
                                               creator, code, default, ios, android, title, ...)
  clickgate stats --campaign C --creator ID [--by day]
  clickgate catalog export|import [--file F]   every campaign, creator and link as one JSON document, and
                                               back (to restore a store that was reset)
  clickgate flush [--admin-url URL | --redis URL --click-secret S] [--ledger DIR]
                                               flush the store into its ledger now: through the running
                                               node that holds the ledger, or directly when none does
  clickgate ledger verify [--ledger DIR] [--head HASH]
                                               check every record, its HMAC, the chain, the totals and
                                               the sealed statements; --head: the ledger still holds HASH
  clickgate payouts --campaign C [--ledger DIR] [--format csv|json]
                                               the campaign's sealed final statement, from the verified ledger
  clickgate webhooks add --url URL [--events T,T] | list | get ID | remove ID
                                               endpoints that receive signup.attributed, creator.cap_reached
                                               and campaign.payable events, signed, retried until a 2xx
  clickgate store salvage [--data DIR] [--spool DIR]
                                               the node stopped: make a damaged visit log of the embedded store,
                                               or spool, open again; the damaged visits are lost, and reported
  clickgate version

Every flag has an environment fallback: --admin-token is CLICKGATE_ADMIN_TOKEN.
Run "clickgate COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs one command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(ctx, rest, stderr)
	case "flush":
		err = flushCmd(ctx, rest, stdout, stderr)
	case "ledger":
		err = ledgerCmd(rest, stdout, stderr)
	case "payouts":
		err = payoutsCmd(rest, stdout, stderr)
	case "campaigns", "creators", "links", "stats":
		err = client(ctx, cmd, rest, stdout, stderr)
	case "catalog":
		err = catalogCmd(ctx, rest, stdout, stderr)
	case "webhooks":
		err = webhooksCmd(ctx, rest, stdout, stderr)
	case "store":
		err = storeCmd(rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "clickgate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "clickgate: %s\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "clickgate: %s\n", err)
		return 1
	}
}

var errUsage = errors.New("usage")

func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

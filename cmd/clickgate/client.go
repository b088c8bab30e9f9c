package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// adminClient talks to the admin API of a running clickgate.
type adminClient struct {
	url, token string
}

func addClientFlags(fs *flag.FlagSet) (*string, *string, *string) {
	return fs.String("admin-url", "http://127.0.0.1:8081", "URL of the admin listener"),
		fs.String("admin-token", "", "bearer token of the admin API (default: the one in DATA/admin-token)"),
		fs.String("data", "./data", "data directory of a local clickgate, to read its admin-token")
}

func newAdminClient(adminURL, token, dataDir string) (*adminClient, error) {
	if token == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
		if err != nil {
			return nil, usageError("no --admin-token given and none readable in %s: %s", dataDir, err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &adminClient{url: strings.TrimSuffix(adminURL, "/"), token: token}, nil
}

// do sends body (JSON-encoded unless nil) and writes the JSON answer to
// stdout; an error status becomes the API's error message.
func (c *adminClient) do(ctx context.Context, method, path string, body any, stdout io.Writer) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return fmt.Errorf("bad --admin-url %q: %w", c.url, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("cannot read the admin API's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	_, err = stdout.Write(b)
	return err
}

// get reads the JSON object at path into v, and reports whether it
// exists.
func (c *adminClient) get(ctx context.Context, path string, v any) (bool, error) {
	status, b, err := c.raw(ctx, "GET", path, "application/json", nil)
	switch {
	case err != nil:
		return false, err
	case status == http.StatusNotFound:
		return false, nil
	case status >= 300:
		var e struct{ Error string }
		json.Unmarshal(b, &e)
		return false, fmt.Errorf("%d %s: %s", status, http.StatusText(status), e.Error)
	}
	return true, json.Unmarshal(b, v)
}

// raw sends body as is and returns the answer's status and body,
// whatever the status.
func (c *adminClient) raw(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("bad --admin-url %q: %w", c.url, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot reach the admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read the admin API's answer: %w", err)
	}
	return resp.StatusCode, b, nil
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
	id, args := splitID(args)

	var method, path string
	var body map[string]any
	switch name {
	case "campaigns put":
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
		// Only what was given is sent: the other fields keep their
		// value, or take the server's defaults when the campaign is new.
		given := givenFlags(fs)
		body = map[string]any{}
		for n := range given {
			key := strings.ReplaceAll(n, "-", "_")
			switch n {
			case "signup-reward-cents", "visit-block-size", "visit-block-reward-cents", "cap-cents":
				body[key] = *ints[n]
			case "eligible-countries":
				list := []string{}
				for _, cc := range strings.Split(*f[n], ",") {
					if cc = strings.TrimSpace(cc); cc != "" {
						list = append(list, cc)
					}
				}
				body[key] = list
			case "starts-at", "ends-at":
				if body[key], err = parseTime(n, *f[n]); err != nil {
					return err
				}
			case "dedupe-window", "signup-grace", "attribution-window":
				if body[key], err = parseDuration(n, *f[n]); err != nil {
					return err
				}
			case "name":
				body[key] = *f[n]
			case "query-passthrough":
				if body[key], err = strconv.ParseBool(*f[n]); err != nil {
					return usageError("--query-passthrough %q: want true or false", *f[n])
				}
			}
		}
		c, err := newAdminClient(*adminURL, *token, *dataDir)
		if err != nil {
			return err
		}
		card := map[string]any{}
		if preview.set(given, card) {
			// The API replaces the whole card: keep the fields not given.
			var cur counter.Campaign
			found, err := c.get(ctx, "/v1/campaigns/"+url.PathEscape(id), &cur)
			if err != nil {
				return err
			}
			if found {
				old := map[string]any{"title": cur.Preview.Title, "description": cur.Preview.Description, "image": cur.Preview.Image}
				for k, v := range card {
					old[k] = v
				}
				card = old
			}
			body["preview"] = card
		}
		return c.do(ctx, "PUT", "/v1/campaigns/"+url.PathEscape(id), body, stdout)
	case "campaigns get":
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		var err error
		if id, err = requireID(fs, id, "campaign id"); err != nil {
			return err
		}
		method, path = "GET", "/v1/campaigns/"+url.PathEscape(id)
	case "creators put":
		campaign := fs.String("campaign", "", "campaign the creator joins (required)")
		fs.String("handle", "", "the creator's public handle")
		fs.String("country", "", "ISO 3166-1 alpha-2 country code, e.g. US (required for a new creator)")
		fs.String("status", "", "invited, active or suspended (default, for a new creator: active)")
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
		body = map[string]any{"campaign": *campaign}
		fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "handle", "country", "status":
				body[fl.Name] = fl.Value.String()
			}
		})
		method, path = "PUT", "/v1/creators/"+url.PathEscape(id)
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
		method, path = "GET", "/v1/creators/"+url.PathEscape(id)+"?campaign="+url.QueryEscape(*campaign)
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
		body = map[string]any{"campaign": *campaign, "creator": *creator, "code": *code,
			"destinations": map[string]string{"default": *def, "ios": *ios, "android": *android}}
		if card := map[string]any{}; preview.set(givenFlags(fs), card) {
			body["preview"] = card
		}
		method, path = "POST", "/v1/links"
	case "links import":
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		file, err := requireID(fs, id, "file (.jsonl or .csv)")
		if err != nil {
			return err
		}
		c, err := newAdminClient(*adminURL, *token, *dataDir)
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
		method, path = "GET", "/v1/links/"+url.PathEscape(id)
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
		q := url.Values{"campaign": {*campaign}}
		if *by != "" {
			q.Set("by", *by)
		}
		method, path = "GET", "/v1/creators/"+url.PathEscape(*creator)+"/stats?"+q.Encode()
	default:
		if ok, err := manage(ctx, name, fs, id, args, [3]*string{adminURL, token, dataDir}, stdout); ok {
			return err
		}
		return usageError("unknown command %q (see clickgate help)", name)
	}
	c, err := newAdminClient(*adminURL, *token, *dataDir)
	if err != nil {
		return err
	}
	var b any
	if body != nil {
		b = body
	}
	return c.do(ctx, method, path, b, stdout)
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

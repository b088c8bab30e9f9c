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
	"strconv"
)

// Catalog management commands: lists, a link's changes, stats and QR
// code, a campaign's totals. client calls manage for the commands it does
// not know; ok is false for those manage does not know either.
func manage(ctx context.Context, name string, fs *flag.FlagSet, id string, args []string, clientFlags [3]*string, stdout io.Writer) (ok bool, err error) {
	newClient := func() (*adminClient, error) {
		return newAdminClient(*clientFlags[0], *clientFlags[1], *clientFlags[2])
	}
	switch name {
	case "campaigns list", "creators list", "links list":
		return true, listCmd(ctx, name, fs, id, args, newClient, stdout)
	case "campaigns totals":
		by := fs.String("by", "", `"creator" or "day" for one entry per creator or per UTC day`)
		if err := parseFlags(fs, args); err != nil {
			return true, err
		}
		if id, err = requireID(fs, id, "campaign id"); err != nil {
			return true, err
		}
		path := "/v1/campaigns/" + url.PathEscape(id) + "/totals"
		if *by != "" {
			path += "?by=" + url.QueryEscape(*by)
		}
		return true, getTo(ctx, newClient, path, stdout)
	case "links stats":
		by := fs.String("by", "", `"day" for one entry per UTC day`)
		if err := parseFlags(fs, args); err != nil {
			return true, err
		}
		if id, err = requireID(fs, id, "code"); err != nil {
			return true, err
		}
		path := "/v1/links/" + url.PathEscape(id) + "/stats"
		if *by != "" {
			path += "?by=" + url.QueryEscape(*by)
		}
		return true, getTo(ctx, newClient, path, stdout)
	case "links patch", "links disable", "links enable":
		return true, patchCmd(ctx, name, fs, id, args, newClient, stdout)
	case "links qr":
		return true, qrCmd(ctx, fs, id, args, newClient, stdout)
	}
	return false, nil
}

func getTo(ctx context.Context, newClient func() (*adminClient, error), path string, stdout io.Writer) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	return c.do(ctx, "GET", path, nil, stdout)
}

// listCmd is campaigns|creators|links list: one page, or with --all every
// page, as one JSON object.
func listCmd(ctx context.Context, name string, fs *flag.FlagSet, id string, args []string, newClient func() (*adminClient, error), stdout io.Writer) error {
	list := map[string]string{"campaigns list": "campaigns", "creators list": "creators", "links list": "links"}[name]
	limit := fs.Int("limit", 0, "entries per page, 1 to 1000 (default 100)")
	cursor := fs.String("cursor", "", "where the page starts: the next_cursor of the page before")
	all := fs.Bool("all", false, "every page, as one list")
	filters := map[string]*string{}
	switch list {
	case "creators":
		filters["campaign"] = fs.String("campaign", "", "only the creators of this campaign")
		filters["status"] = fs.String("status", "", "only creators of this status: invited, active or suspended")
	case "links":
		filters["campaign"] = fs.String("campaign", "", "only the links of this campaign")
		filters["creator"] = fs.String("creator", "", "only the links of this creator")
		filters["disabled"] = fs.String("disabled", "", "true: only disabled links; false: only enabled ones")
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
	given := givenFlags(fs)
	q := url.Values{}
	for k, v := range filters {
		if given[k] {
			q.Set(k, *v)
		}
	}
	if given["limit"] {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if given["cursor"] {
		q.Set("cursor", *cursor)
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	if !*all {
		return c.do(ctx, "GET", "/v1/"+list+"?"+q.Encode(), nil, stdout)
	}
	items := []json.RawMessage{}
	for {
		var b bytes.Buffer
		if err := c.do(ctx, "GET", "/v1/"+list+"?"+q.Encode(), nil, &b); err != nil {
			return err
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(b.Bytes(), &page); err != nil {
			return fmt.Errorf("unexpected answer of the admin API: %w", err)
		}
		var these []json.RawMessage
		if err := json.Unmarshal(page[list], &these); err != nil {
			return fmt.Errorf("unexpected answer of the admin API: %w", err)
		}
		items = append(items, these...)
		var next string
		json.Unmarshal(page["next_cursor"], &next)
		if next == "" {
			return writeJSONOut(stdout, map[string]any{list: items})
		}
		q.Set("cursor", next)
	}
}

// patchCmd is links patch CODE [flags]: only the fields given change. links
// disable and links enable are patches of disabled alone.
func patchCmd(ctx context.Context, name string, fs *flag.FlagSet, id string, args []string, newClient func() (*adminClient, error), stdout io.Writer) error {
	dest := map[string]*string{}
	var disabled *string
	var preview previewFlags
	if name == "links patch" {
		dest["default"] = fs.String("default", "", "destination for every platform without its own (https URL)")
		dest["ios"] = fs.String("ios", "", `destination for iPhone, iPad and iPod (https URL; "" removes it)`)
		dest["android"] = fs.String("android", "", `destination for Android (https URL; "" removes it)`)
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
	body := map[string]any{}
	switch name {
	case "links disable":
		body["disabled"] = true
	case "links enable":
		body["disabled"] = false
	default:
		given := givenFlags(fs)
		d := map[string]any{}
		for k, v := range dest {
			if given[k] {
				d[k] = *v
			}
		}
		if len(d) > 0 {
			body["destinations"] = d
		}
		if card := map[string]any{}; preview.set(given, card) {
			body["preview"] = card
		}
		if given["disabled"] {
			b, err := strconv.ParseBool(*disabled)
			if err != nil {
				return usageError("--disabled %q: want true or false", *disabled)
			}
			body["disabled"] = b
		}
		if len(body) == 0 {
			return usageError("links patch: nothing to change; give --default, --ios, --android, --preview-title, --preview-description, --preview-image or --disabled")
		}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	return c.do(ctx, "PATCH", "/v1/links/"+url.PathEscape(id), body, stdout)
}

// qrCmd is links qr CODE [--format svg|png] [--size N] [--out FILE].
func qrCmd(ctx context.Context, fs *flag.FlagSet, id string, args []string, newClient func() (*adminClient, error), stdout io.Writer) error {
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
	path := fmt.Sprintf("/v1/links/%s/qr.%s?size=%d", url.PathEscape(id), *format, *size)
	status, b, err := c.raw(ctx, "GET", path, "application/json", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(b, &e)
		return fmt.Errorf("%d %s: %s", status, http.StatusText(status), e.Error)
	}
	if *out == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

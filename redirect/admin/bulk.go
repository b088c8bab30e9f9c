package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect"
)

// Bulk import limits.
const (
	// MaxBulkLinks is the most links one POST /v1/links:bulk creates.
	MaxBulkLinks = 100_000
	// bulkChunk is how many links one store call creates before the
	// import waits (redirect.Pacer). Redis runs nothing else while it
	// creates them: its script took 0.9 ms a call (p99 2.1 ms; 0.4 ms
	// with 64 links, for about the same CPU in all). The embedded store
	// commits each call in one transaction, with two fsyncs and a copy of
	// every page it touches: 40,000 links, from four bulk calls on an
	// idle node, took it 880-920 ms of CPU, against 1,360-1,410 ms with
	// 64 links a call.
	bulkChunk = 256
	// decodeChunk is how many lines are decoded before the import waits.
	// A step holds its core for its whole length, and the redirects queue
	// behind it: 1,024 lines took 5.6 ms a step on an idle node (9.4 ms at
	// most, 10,000 lines), 128 lines take about 0.7 ms. Alternating
	// import rounds at 6,000 req/s, two runs each, the median of the
	// redirects' p99s was about 7.2 ms during imports with 1,024 and 4.1
	// ms with 128; a call of 10,000 links took 3.7 s and 3.9 s in the
	// median (throwaway measurements).
	decodeChunk = 128
	// answerChunk is how many links of an import's answer are encoded
	// before the import waits: 1,024 take about 0.6-0.9 ms (the whole
	// answer of 10,000, 5.7-8.8 ms in a throwaway test).
	answerChunk = 1024
	// maxLineErrors is how many lines' errors a refused import reports.
	maxLineErrors = 100
)

// linkBatcher is a store that creates many links in one call, all or
// none, and tells which of many codes are taken, so that an import whose
// custom code is taken creates none of its links (both stores are).
type linkBatcher interface {
	CreateLinks(ctx context.Context, links []counter.Link) error
	TakenCodes(ctx context.Context, codes []string) ([]string, error)
}

// LineError is what was wrong with one line of a bulk import.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// bulkLink is one link created by a bulk import.
type bulkLink struct {
	Line int    `json:"line"`
	Code string `json:"code"`
	URL  string `json:"url"`
}

type bulkResponse struct {
	Created int         `json:"created"`
	Links   []bulkLink  `json:"links"`
	Error   string      `json:"error,omitempty"`
	Errors  []LineError `json:"errors,omitempty"`
}

// bulkLinks creates the links of a body of JSON lines, each a POST
// /v1/links body, validated alike. Every line is checked before any link
// is created: one bad line creates none (422, the first maxLineErrors bad
// lines listed), and a custom code taken already creates none (409, every
// taken code's line listed). The links are then created a chunk at a
// time: a custom code that another call takes meanwhile stops the import
// at its chunk (409), and the answer lists exactly the links created
// before. With ?dry_run=1 the lines and codes are only checked (200,
// nothing created).
func (a *API) bulkLinks(ctx context.Context, rc *fasthttp.RequestCtx) (int, any, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bulkTimeout)
	defer cancel()
	b, ok := a.o.Store.(linkBatcher)
	if !ok {
		return 0, nil, errorf(fasthttp.StatusNotImplemented, "this store cannot create links in bulk")
	}
	links, lines, errs := a.decodeBulk(ctx, rc.PostBody())
	if len(errs) > 0 {
		return fasthttp.StatusUnprocessableEntity, refused(0, nil, errs), nil
	}
	if len(links) == 0 {
		return 0, nil, errorf(fasthttp.StatusBadRequest, "request body has no links; want one JSON object per line")
	}
	generated := make([]bool, len(links))
	var custom []string
	for i := range links {
		if links[i].Code == "" {
			generated[i] = true
			links[i].Code = redirect.NewCode()
		} else {
			custom = append(custom, links[i].Code)
		}
	}
	if len(custom) > 0 {
		taken, err := b.TakenCodes(ctx, custom)
		if err != nil {
			return 0, nil, fmt.Errorf("cannot check the codes of %d links: %w", len(custom), err)
		}
		if len(taken) > 0 {
			return fasthttp.StatusConflict, refused(0, nil, takenLines(taken, links, lines)), nil
		}
	}
	if rc.QueryArgs().GetBool("dry_run") {
		// Checked, not created: what a client that splits a file over
		// several calls (the admin listener takes bodies of up to 1 MiB)
		// checks every part with first.
		return fasthttp.StatusOK, bulkResponse{Links: []bulkLink{}}, nil
	}
	created := 0
	defer func() {
		if created > 0 {
			a.refresh(ctx)
		}
	}()
	pace := redirect.NewPacer()
	for created < len(links) {
		end := min(created+bulkChunk, len(links))
		chunk := links[created:end]
		if err := createChunk(ctx, b, chunk, generated[created:end]); err != nil {
			var taken *counter.CodesTakenError
			if !errors.As(err, &taken) {
				return 0, nil, fmt.Errorf("cannot create links of lines %d to %d: %w", lines[created], lines[end-1], err)
			}
			errs := takenLines(taken.Codes, chunk, lines[created:end])
			return fasthttp.StatusConflict, refused(created, a.createdLinks(links[:created], lines), errs), nil
		}
		created = end
		if created < len(links) && !pace.Wait(ctx) {
			return 0, nil, fmt.Errorf("cannot create links of lines %d to %d: %w", lines[created], lines[len(lines)-1], ctx.Err())
		}
	}
	return fasthttp.StatusCreated, a.createdBody(ctx, pace, links, lines), nil
}

// createdBody is the answer of an import that created links: what
// writeJSON makes of a bulkResponse, but encoded answerChunk links at a
// time with pace's waits between. At once, the answer of 10,000 links held
// the core for 6-9 ms (throwaway measurement), and every redirect waited.
func (a *API) createdBody(ctx context.Context, pace *redirect.Pacer, links []counter.Link, lines []int) rawBody {
	b := fmt.Appendf(nil, "{\n  \"created\": %d,\n  \"links\": [\n", len(links))
	for i := 0; i < len(links); i += answerChunk {
		if i > 0 {
			pace.Wait(ctx) // the links are created: past the deadline, unpaced
			b = append(b, ",\n"...)
		}
		end := min(i+answerChunk, len(links))
		j, err := json.MarshalIndent(a.createdLinks(links[i:end], lines[i:end]), "  ", "  ")
		if err != nil {
			panic(fmt.Sprintf("BUG: cannot marshal response: %s", err))
		}
		j = j[len("[\n") : len(j)-len("\n  ]")] // the links, as inside the whole
		if i == 0 {
			// Room for the rest, as long a link as the first chunk's.
			b = slices.Grow(b, len(j)/(end-i)*(len(links)-end)+len(links)+64)
		}
		b = append(b, j...)
	}
	return rawBody{contentType: "application/json", data: append(b, "\n  ]\n}\n"...)}
}

// takenLines returns the error of each line of links (on lines) whose
// code is one of taken, in line order.
func takenLines(taken []string, links []counter.Link, lines []int) []LineError {
	is := make(map[string]bool, len(taken))
	for _, code := range taken {
		is[code] = true
	}
	var errs []LineError
	for i := range links {
		if is[links[i].Code] {
			errs = append(errs, LineError{lines[i], fmt.Sprintf("code %q is taken", links[i].Code)})
		}
	}
	return errs
}

// createChunk creates links, all or none, drawing generated codes again
// when one collides.
func createChunk(ctx context.Context, b linkBatcher, links []counter.Link, generated []bool) error {
	var err error
	for range 5 {
		err = b.CreateLinks(ctx, links)
		var taken *counter.CodesTakenError
		if !errors.As(err, &taken) {
			return err
		}
		for _, code := range taken.Codes {
			for i := range links {
				if links[i].Code == code && !generated[i] {
					return err
				}
				if links[i].Code == code {
					links[i].Code = redirect.NewCode()
				}
			}
		}
	}
	return err
}

func (a *API) createdLinks(links []counter.Link, lines []int) []bulkLink {
	out := make([]bulkLink, len(links))
	for i, l := range links {
		r := a.linkResponse(l.Code)
		out[i] = bulkLink{Line: lines[i], Code: r.Code, URL: r.URL}
	}
	return out
}

func refused(created int, links []bulkLink, errs []LineError) bulkResponse {
	if links == nil {
		links = []bulkLink{}
	}
	msg := make([]string, 0, len(errs))
	for _, e := range errs {
		msg = append(msg, fmt.Sprintf("line %d: %s", e.Line, e.Error))
	}
	what := "no link created"
	if created > 0 {
		what = fmt.Sprintf("only the links of the %d lines listed were created", created)
	}
	return bulkResponse{Created: created, Links: links, Errors: errs,
		Error: fmt.Sprintf("%d lines refused, %s:\n%s", len(errs), what, strings.Join(msg, "\n"))}
}

// decodeBulk reads and validates the lines of body. It returns the links
// and their line numbers, or the errors of the first maxLineErrors bad
// lines. Blank lines are skipped; a code given twice is an error.
func (a *API) decodeBulk(ctx context.Context, body []byte) ([]counter.Link, []int, []LineError) {
	// Sized once: grown line by line, the links were the import's
	// largest allocation (BenchmarkBulkImport). A line of a link takes
	// 32 bytes or more (fewer only make them grow again): a body of blank
	// lines sizes them little.
	most := min(bytes.Count(body, []byte{'\n'})+1, len(body)/32+1, MaxBulkLinks)
	links, lines := make([]counter.Link, 0, most), make([]int, 0, most)
	var errs []LineError
	cache := &refs{campaigns: map[string]error{}, creators: map[[2]string]error{}}
	codes := map[string]int{}
	pace := redirect.NewPacer()
	for n := 1; len(body) > 0 && len(errs) < maxLineErrors; n++ {
		if n%decodeChunk == 0 && !pace.Wait(ctx) {
			errs = append(errs, LineError{n, "the request ended: " + ctx.Err().Error()})
			break
		}
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(links) == MaxBulkLinks {
			errs = append(errs, LineError{n, fmt.Sprintf("more than %d links; split the file", MaxBulkLinks)})
			break
		}
		var req linkRequest
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		err := dec.Decode(&req)
		if err == nil {
			if _, e := dec.Token(); e != io.EOF {
				err = errors.New("data after the object")
			}
		}
		if err != nil {
			errs = append(errs, LineError{n, fmt.Sprintf("invalid JSON: %s", err)})
			continue
		}
		l, err := a.newLink(ctx, &req, cache)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				// The store failed: every line would.
				errs = append(errs, LineError{n, "store unavailable; try again"})
				a.o.Logger.Error("bulk import failed", "line", n, "err", err)
				break
			}
			errs = append(errs, LineError{n, ae.msg})
			continue
		}
		if l.Code != "" {
			if first, ok := codes[l.Code]; ok {
				errs = append(errs, LineError{n, fmt.Sprintf("code %q is given on line %d too", l.Code, first)})
				continue
			}
			codes[l.Code] = n
		}
		links = append(links, l)
		lines = append(lines, n)
	}
	return links, lines, errs
}

// bulkTimeout bounds a bulk import instead of requestTimeout: paced, it
// takes up to twenty times its work, and a node busy enough to need the
// pacing must not see the import fail for it. (10,000 links from the
// CLI, under the race detector beside the rest of the suite, once got
// the 503 of a request past its 10 s.)
const bulkTimeout = time.Minute

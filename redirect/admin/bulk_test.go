package admin

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect"
)

// bulkBody is n lines of links of spring's alice, with custom codes when
// prefix is not empty.
func bulkBody(n int, prefix string) string {
	var b strings.Builder
	for i := range n {
		code := ""
		if prefix != "" {
			code = fmt.Sprintf("%s%06d", prefix, i)
		}
		fmt.Fprintf(&b, `{"campaign":"spring","creator":"alice","code":%q,"destinations":{"default":"https://app.example.com/join"}}`+"\n", code)
	}
	return b.String()
}

func TestBulkLinks(t *testing.T) {
	for _, kind := range []string{"embedded", "redis"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarnessOf(t, openBenchStore(t, kind))
			h.seed(t)
			ctx := context.Background()
			body := `{"campaign":"spring","creator":"alice","code":"bulk-one","destinations":{"default":"https://app.example.com/a"}}

{"campaign":"spring","creator":"alice","destinations":{"default":"https://app.example.com/b","ios":"https://apps.apple.com/app/id1"},"preview":{"title":"Join"}}
  {"campaign":"spring","creator":"alice","destinations":{"default":"https://app.example.com/c"}}  `
			out := h.call(t, "POST", "/v1/links:bulk", body, 201)
			links := out["links"].([]any)
			if out["created"] != 3.0 || len(links) != 3 {
				t.Fatalf("unexpected answer %v; want 3 links created", out)
			}
			for i, want := range []float64{1, 3, 4} {
				l := links[i].(map[string]any)
				code := l["code"].(string)
				if l["line"] != want || l["url"] != "https://go.example.com/"+code {
					t.Fatalf("unexpected link %d %v; want line %v", i, l, want)
				}
				if lookup(h.table, code) == nil {
					t.Fatalf("link %q of line %v is not served", code, want)
				}
			}
			if e := lookup(h.table, links[1].(map[string]any)["code"].(string)); e.Link.Destinations.IOS == "" || e.Link.Preview.Title != "Join" {
				t.Fatalf("unexpected link of line 3; got %+v", e.Link)
			}

			// Bad lines: none created, each listed with its line.
			v0, _ := h.store.Version(ctx)
			bad := `{"campaign":"spring","creator":"alice","code":"good-one","destinations":{"default":"https://app.example.com/a"}}
{"campaign":"spring","creator":"alice","destinations":{"default":"https://app.example.com/a"},"bogus":1}
{"campaign":"spring","creator":"nobody","destinations":{"default":"https://app.example.com/a"}}
{"campaign":"spring","creator":"alice","destinations":{"default":"http://app.example.com/a"}}
{"campaign":"spring","creator":"alice","code":"good-one","destinations":{"default":"https://app.example.com/a"}}
{"campaign":"spring","creator":"alice","code":"a b","destinations":{"default":"https://app.example.com/a"}}
{"campaign":"autumn","creator":"alice","destinations":{"default":"https://app.example.com/a"}}
{"campaign":"spring"
{"campaign":"spring","creator":"alice","destinations":{"default":"https://go.example.com/x"}}`
			out = h.call(t, "POST", "/v1/links:bulk", bad, 422)
			want := map[float64]string{2: `unknown field "bogus"`, 3: `creator "nobody" does not exist`, 4: "https",
				5: `code "good-one" is given on line 1 too`, 6: `code "a b" must be`, 7: `campaign "autumn" does not exist`,
				8: "invalid JSON", 9: "must not point at this service"}
			errs := out["errors"].([]any)
			if out["created"] != 0.0 || len(errs) != len(want) {
				t.Fatalf("unexpected answer to bad lines; got %v; want %d errors, none created", out, len(want))
			}
			for _, e := range errs {
				e := e.(map[string]any)
				line := e["line"].(float64)
				if !strings.Contains(e["error"].(string), want[line]) {
					t.Fatalf("unexpected error of line %v; got %q; want it to contain %q", line, e["error"], want[line])
				}
			}
			if !strings.Contains(out["error"].(string), "8 lines refused, no link created:\nline 2: ") {
				t.Fatalf("unexpected error message %q", out["error"])
			}
			// A custom code taken: 409, none created.
			out = h.call(t, "POST", "/v1/links:bulk", bulkBody(3, "new")+`{"campaign":"spring","creator":"alice","code":"bulk-one","destinations":{"default":"https://app.example.com/a"}}`, 409)
			if errs := out["errors"].([]any); out["created"] != 0.0 || len(errs) != 1 || errs[0].(map[string]any)["line"] != 4.0 {
				t.Fatalf("unexpected answer to a taken code; got %v", out)
			}
			if v, _ := h.store.Version(ctx); v != v0 || h.table.Len() != 3 {
				t.Fatalf("refused imports changed the catalog; version %d, was %d; %d links served", v, v0, h.table.Len())
			}
			out = h.call(t, "POST", "/v1/links:bulk?dry_run=1", bulkBody(5, "dry"), 200)
			if out["created"] != 0.0 || lookup(h.table, "dry000000") != nil {
				t.Fatalf("unexpected answer to a dry run; got %v", out)
			}
			h.call(t, "POST", "/v1/links:bulk?dry_run=1", bad, 422)
			for _, body := range []string{"", "\n\n"} {
				h.call(t, "POST", "/v1/links:bulk", body, 400)
			}
			h.call(t, "GET", "/v1/links:bulk", "", 405)

			// Taken already, in a later chunk: 409, none created.
			const taken = 5*bulkChunk + 7
			code := func(i int) string { return fmt.Sprintf("late%06d", i) }
			if err := h.store.CreateLink(ctx, counter.Link{Code: code(taken), Campaign: "spring", Creator: "alice",
				Destinations: counter.Destinations{Default: "https://app.example.com/a"}}); err != nil {
				t.Fatal(err)
			}
			v0, _ = h.store.Version(ctx)
			served := h.table.Len()
			out = h.call(t, "POST", "/v1/links:bulk", bulkBody(7*bulkChunk, "late"), 409)
			errs = out["errors"].([]any)
			if out["created"] != 0.0 || len(out["links"].([]any)) != 0 || len(errs) != 1 || errs[0].(map[string]any)["line"] != float64(taken+1) {
				t.Fatalf("unexpected answer to a code taken in a later chunk; got created %v, errors %v", out["created"], errs)
			}
			if v, _ := h.store.Version(ctx); v != v0 || h.table.Len() != served || lookup(h.table, code(0)) != nil {
				t.Fatalf("an import with a taken code changed the catalog; version %d, was %d; %d links served, were %d", v, v0, h.table.Len(), served)
			}
		})
	}
}

// TestBulkLinksDeadline: a bulk import's store calls have bulkTimeout, not
// requestTimeout: paced to a tenth of the node's time, an import on a busy
// node takes longer than an ordinary request may.
func TestBulkLinksDeadline(t *testing.T) {
	s := &deadlineStore{Store: openBenchStore(t, "embedded")}
	h := newHarnessOf(t, s)
	h.seed(t)
	h.call(t, "POST", "/v1/links:bulk", bulkBody(3, "deadline"), 201)
	if s.left < bulkTimeout-time.Second {
		t.Fatalf("unexpected deadline of a bulk import's store call; got %v left; want about %v", s.left, bulkTimeout)
	}
}

// deadlineStore records the time left to the deadline of its last
// CreateLinks.
type deadlineStore struct {
	counter.Store
	left time.Duration
}

func (s *deadlineStore) CreateLinks(ctx context.Context, links []counter.Link) error {
	d, _ := ctx.Deadline()
	s.left = time.Until(d)
	return s.Store.(linkBatcher).CreateLinks(ctx, links)
}

func (s *deadlineStore) TakenCodes(ctx context.Context, codes []string) ([]string, error) {
	return s.Store.(linkBatcher).TakenCodes(ctx, codes)
}

// lateTaker is a store that creates link take right after TakenCodes has
// answered: another call that takes a code of an import meanwhile.
type lateTaker struct {
	counter.Store
	bulk linkBatcher
	take counter.Link
}

func (s *lateTaker) CreateLinks(ctx context.Context, links []counter.Link) error {
	return s.bulk.CreateLinks(ctx, links)
}

func (s *lateTaker) TakenCodes(ctx context.Context, codes []string) ([]string, error) {
	taken, err := s.bulk.TakenCodes(ctx, codes)
	if err == nil {
		err = s.Store.CreateLink(ctx, s.take)
	}
	return taken, err
}

// TestBulkLinksTakenMeanwhile: a custom code that another call takes
// while an import runs stops the import at its chunk, 409, and the
// answer lists exactly the links created before it, which are served.
func TestBulkLinksTakenMeanwhile(t *testing.T) {
	for _, kind := range []string{"embedded", "redis"} {
		t.Run(kind, func(t *testing.T) {
			store := openBenchStore(t, kind)
			const taken = 5*bulkChunk + 7
			code := func(i int) string { return fmt.Sprintf("late%06d", i) }
			h := newHarnessOf(t, &lateTaker{Store: store, bulk: store.(linkBatcher), take: counter.Link{Code: code(taken), Campaign: "spring", Creator: "alice",
				Destinations: counter.Destinations{Default: "https://app.example.com/a"}}})
			h.seed(t)
			out := h.call(t, "POST", "/v1/links:bulk", bulkBody(7*bulkChunk, "late"), 409)
			links := out["links"].([]any)
			errs := out["errors"].([]any)
			const created = 5 * bulkChunk
			if out["created"] != float64(created) || len(links) != created || len(errs) != 1 || errs[0].(map[string]any)["line"] != float64(taken+1) {
				t.Fatalf("unexpected answer to a code taken in a later chunk; got created %v, %d links, errors %v", out["created"], len(links), errs)
			}
			if last := links[created-1].(map[string]any); last["code"] != code(created-1) || lookup(h.table, code(created-1)) == nil || lookup(h.table, code(created)) != nil {
				t.Fatalf("unexpected last link created %v", last)
			}
		})
	}
}

// TestCreatedBody: the answer of an import, encoded a chunk at a time, is
// byte for byte what writeJSON makes of it at once.
func TestCreatedBody(t *testing.T) {
	a := &API{o: Options{PublicURL: "https://go.example.com/"}}
	for _, n := range []int{1, answerChunk, answerChunk + 1, 2*answerChunk + 3} {
		links := make([]counter.Link, n)
		lines := make([]int, n)
		for i := range links {
			links[i].Code = fmt.Sprintf("c%05d\"<", i) // escaped as in writeJSON
			lines[i] = 2*i + 1
		}
		got := a.createdBody(context.Background(), redirect.NewPacer(), links, lines)
		var rc fasthttp.RequestCtx
		writeJSON(&rc, 201, bulkResponse{Created: n, Links: a.createdLinks(links, lines)})
		if want := rc.Response.Body(); string(got.data) != string(want) || got.contentType != "application/json" {
			t.Fatalf("%d links: answer differs from writeJSON's:\n%.300s\nwant\n%.300s", n, got.data, want)
		}
	}
}

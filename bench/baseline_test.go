package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/clickgate/clickgate/counter/redisstore/redistest"
)

var links = map[string]string{"AB3KX9QZ": "https://app.example.com/join"}

// serve runs h on an in-memory listener and returns a client for it.
func serve(t *testing.T, h fasthttp.RequestHandler) *fasthttp.Client {
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

func get(t *testing.T, c *fasthttp.Client, method, path string) (int, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://bench" + path)
	if err := c.Do(req, resp); err != nil {
		t.Fatalf("cannot %s %s: %s", method, path, err)
	}
	return resp.StatusCode(), string(resp.Header.Peek("Location"))
}

func TestBare(t *testing.T) {
	c := serve(t, NewBare(links).Handle)
	if status, loc := get(t, c, "GET", "/AB3KX9QZ"); status != 302 || loc != links["AB3KX9QZ"] {
		t.Fatalf("unexpected answer; got %d %q; want 302 to the destination", status, loc)
	}
	for _, p := range []string{"/", "/nope", "/AB3KX9QZ/x"} {
		if status, _ := get(t, c, "GET", p); status != 404 {
			t.Fatalf("unexpected status for %q; got %d; want 404", p, status)
		}
	}
}

func TestNaiveCountsEveryGet(t *testing.T) {
	srv := redistest.Start(t)
	opt, err := redis.ParseURL(srv.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	c := serve(t, NewNaive(links, rdb, "naive").Handle)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if status, _ := get(t, c, "GET", "/AB3KX9QZ"); status != 302 {
					t.Errorf("unexpected status %d", status)
				}
			}
		})
	}
	wg.Wait()
	get(t, c, "HEAD", "/AB3KX9QZ") // not counted
	n, err := rdb.HGet(context.Background(), "naive", "AB3KX9QZ").Int()
	if err != nil || n != 200 {
		t.Fatalf("unexpected count; got %d, %v; want 200", n, err)
	}
	// Redis down: still redirected, marked uncounted.
	srv.Stop()
	status, loc := get(t, c, "GET", "/AB3KX9QZ")
	if status != 302 || loc == "" {
		t.Fatalf("unexpected answer with Redis down; got %d %q; want a redirect", status, loc)
	}
}

func TestFloorAppendsEveryGet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floor.log")
	b, err := NewFloor(links, path)
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, b.Handle)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if status, loc := get(t, c, "GET", "/AB3KX9QZ"); status != 302 || loc != links["AB3KX9QZ"] {
					t.Errorf("unexpected answer %d %q", status, loc)
				}
			}
		})
	}
	wg.Wait()
	get(t, c, "HEAD", "/AB3KX9QZ") // not appended
	get(t, c, "GET", "/nope")      // nor a 404
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Every 302 came after its record was written: the file holds them
	// all, then zeros.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; off+FloorRecordLen <= len(data); off += FloorRecordLen {
		rec := data[off : off+FloorRecordLen]
		if binary.LittleEndian.Uint64(rec) == 0 {
			break
		}
		if code := string(bytes.TrimRight(rec[8:], "\x00")); code != "AB3KX9QZ" {
			t.Fatalf("record %d holds code %q", n, code)
		}
		n++
	}
	if n != 200 {
		t.Fatalf("unexpected records; got %d; want 200", n)
	}
}

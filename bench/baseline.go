// Package bench measures clickgate: traffic models, load generation,
// latency histograms, the post-run audit, and the baselines that clickgate
// is compared with on the same machine.
package bench

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// Baseline is one of the designs clickgate is compared with, side by side
// in one run.
type Baseline struct {
	links map[string]string
	rdb   *redis.Client // nil for the bare ceiling
	key   string
	log   *floorLog // the floor's (NewFloor)
}

// NewBare returns the ceiling: a handler that only answers 302 from an
// in-memory map of code to destination. Nothing is counted.
func NewBare(links map[string]string) *Baseline {
	return &Baseline{links: links}
}

// NewNaive returns the naive design: the bare handler plus one Redis HINCRBY
// round trip per GET, before the redirect. It counts every click (no
// dedupe, no classification) into the hash key.
func NewNaive(links map[string]string, rdb *redis.Client, key string) *Baseline {
	return &Baseline{links: links, rdb: rdb, key: key}
}

// Handle serves GET|HEAD /{code}.
func (b *Baseline) Handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	if len(path) < 2 {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	dest, ok := b.links[string(path[1:])]
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	if b.log != nil && ctx.IsGet() {
		if err := b.log.append(path[1:]); err != nil {
			ctx.Response.Header.Set("X-Uncounted", "1")
		}
	}
	if b.rdb != nil && ctx.IsGet() {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		err := b.rdb.HIncrBy(c, b.key, string(path[1:]), 1).Err()
		cancel()
		if err != nil {
			// Fail open, like clickgate: the person is redirected.
			ctx.Response.Header.Set("X-Uncounted", "1")
		}
	}
	ctx.Response.Header.Set("Location", dest)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(fasthttp.StatusFound)
}

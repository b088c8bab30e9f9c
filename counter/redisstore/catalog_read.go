package redisstore

// The catalog as the nodes read it: the whole of it at one version, and
// the changes after a version from the change feed (catalog.go writes
// both).

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/encoding/json"

	"github.com/clickgate/clickgate/counter"
)

// Catalog reads the whole catalog, one version of it. Each of its hashes
// is read in chunks (HSCAN), so that no one command holds Redis, or waits
// past the client's read timeout, for the whole of a large catalog (a
// single HGETALL of a million links did); what changed meanwhile is then
// read from the change feed and applied on top, which gives the catalog
// at the version the feed reached. The catalog has no deletions: a change
// is a whole entry that replaces the one with its id. Entries are sorted
// by id (creators by campaign, then id; links by code).
func (s *Store) Catalog(ctx context.Context) (*counter.Catalog, error) {
	return s.catalogRetried(ctx, true)
}

// Roster is Catalog without the links.
func (s *Store) Roster(ctx context.Context) (*counter.Catalog, error) {
	return s.catalogRetried(ctx, false)
}

func (s *Store) catalogRetried(ctx context.Context, links bool) (*counter.Catalog, error) {
	for try := 1; ; try++ {
		cat, err := s.catalog(ctx, links)
		if !errors.Is(err, errCatalogMoved) || try == 3 {
			return cat, err
		}
	}
}

// errCatalogMoved is catalog's error when the feed no longer holds the
// changes made during the scan (it was trimmed, or the catalog reset).
var errCatalogMoved = errors.New("the catalog changed too much while it was read; try again")

func (s *Store) catalog(ctx context.Context, withLinks bool) (*counter.Catalog, error) {
	// One MGET, not a MULTI: a Redis that refuses writes (full, under
	// noeviction) refuses every command queued in a MULTI, and a node
	// must start on it.
	vals, err := s.rdb.MGet(ctx, s.versionKey, s.epochKey).Result()
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog: %w", storeErr(err))
	}
	version, epoch := redis.NewStringCmd(ctx), redis.NewStringCmd(ctx)
	for i, cmd := range []*redis.StringCmd{version, epoch} {
		if v, ok := vals[i].(string); ok {
			cmd.SetVal(v)
		} else {
			cmd.SetErr(redis.Nil)
		}
	}
	since, err := parseVersion(version)
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog version from %q: %w", s.versionKey, err)
	}
	campaigns, err := scanCatalog[counter.Campaign](ctx, s, s.campaignsKey)
	if err != nil {
		return nil, fmt.Errorf("cannot read campaigns of the catalog: %w", err)
	}
	creators, err := scanCatalog[counter.Creator](ctx, s, s.creatorsKey)
	if err != nil {
		return nil, fmt.Errorf("cannot read creators of the catalog: %w", err)
	}
	var links []counter.Link
	if withLinks {
		if links, err = scanCatalog[counter.Link](ctx, s, s.linksKey); err != nil {
			return nil, fmt.Errorf("cannot read links of the catalog: %w", err)
		}
	}
	ch, err := s.CatalogChanges(ctx, since, 0)
	if err != nil {
		return nil, err
	}
	if ch.Trimmed || ch.More || ch.Epoch != epoch.Val() {
		return nil, errCatalogMoved
	}
	cat := &counter.Catalog{
		Version:   ch.Version,
		Epoch:     ch.Epoch,
		Campaigns: merge(campaigns, ch.Campaigns, func(c *counter.Campaign) string { return c.ID }),
		// By campaign, then id: no id has a NUL byte (the admin API's
		// ids are letters, digits, '_', '-' and '.').
		Creators: merge(creators, ch.Creators, func(c *counter.Creator) string { return c.Campaign + "\x00" + c.ID }),
	}
	if withLinks {
		cat.Links = merge(links, ch.Links, func(l *counter.Link) string { return l.Code })
	}
	return cat, nil
}

// merge returns the entries scanned, each once, with those changed since
// in place of theirs, sorted by key: of an id scanned twice (HSCAN may)
// or changed, the last.
func merge[T any](scanned, changed []T, key func(*T) string) []T {
	all := counter.SortByKey(append(scanned, changed...), key) // a change after the entry it replaces
	n := 0
	for i := range all {
		if i+1 < len(all) && key(&all[i+1]) == key(&all[i]) {
			continue
		}
		if n != i {
			all[n] = all[i]
		}
		n++
	}
	return all[:n]
}

// catalogScanCount is the entries one HSCAN of a catalog hash asks for.
// Redis runs nothing else meanwhile, and spends about 1.4 µs an entry
// whatever the count: 10,000 held it 14 ms a call, which every node's
// appends waited for while one node read a catalog of a million links;
// 1,000 hold it 1.4 ms, for the same time in all (2.7-2.9 s of HSCAN for
// two reads of 1M links either way, a throwaway measurement).
const catalogScanCount = 1_000

// scanCatalog reads the catalog hash key in chunks. An entry may come
// twice (HSCAN's guarantee is at least once for what is there
// throughout); one added during the scan may not come, and is in the
// change feed. A start reads a million links through it: json in this
// file (the scans and the change feed) is segmentio's drop-in for
// encoding/json, whose decoder took 1.7-2.1 s of one core on 1M links,
// against 4.3-4.8 s (a throwaway measurement).
func scanCatalog[T any](ctx context.Context, s *Store, key string) ([]T, error) {
	n, err := s.rdb.HLen(ctx, key).Result()
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]T, 0, n+n/64)
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, key, cursor, "", catalogScanCount).Result()
		if err != nil {
			return nil, storeErr(err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			var v T
			if err := json.Unmarshal([]byte(kv[i+1]), &v); err != nil {
				return nil, fmt.Errorf("cannot decode %q: %w", kv[i], err)
			}
			out = append(out, v)
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// catalogChangesScript reads the changes after version ARGV[1], at most
// ARGV[2] of them, each entry once and as it is now. It returns the
// version reached, whether there are more, the epoch, whether the feed
// lacks a change after ARGV[1], the change at ARGV[1] and the last one
// read, then kind and value pairs.
//
// KEYS: version, changes, epoch, campaigns, creators, links.
var catalogChangesScript = redis.NewScript(`#!lua flags=no-writes
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[1])
local out = {v, 0, redis.call('GET', KEYS[3]) or '', 0, '', ''}
if since >= v then
	return out
end
local last = v
if v - since > tonumber(ARGV[2]) then
	last = since + tonumber(ARGV[2])
	out[2] = 1
end
local hashes = {c = KEYS[4], r = KEYS[5], l = KEYS[6]}
local seen = {}
local want = since + 1
-- From the entry that holds change since (or the first after it), each
-- under the version of its last change, a few entries at a time: an
-- entry may hold a thousand changes.
local from, stop = math.max(since, 1) .. '-1', false
while not stop and want <= last do
	local entries = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 8)
	if #entries == 0 then
		break
	end
	for _, e in ipairs(entries) do
		local f = e[2]
		local id = tonumber(string.match(e[1], '^(%d+)-')) - #f / 2 + 1
		for j = 2, #f, 2 do
			local ver = id + j / 2 - 1
			local rec = f[j]
			if ver == since then
				out[5] = rec
			elseif ver > since then
				if ver ~= want or ver > last then
					break
				end
				want = want + 1
				out[6] = rec
				if not seen[rec] then
					seen[rec] = true
					local kind = string.sub(rec, 1, 1)
					local val = redis.call('HGET', hashes[kind], string.sub(rec, 2))
					if val then
						out[#out + 1] = kind
						out[#out + 1] = val
					end
				end
			end
		end
		if want ~= id + #f / 2 then
			-- a gap, or last reached
			stop = true
			break
		end
		from = '(' .. e[1]
	end
end
if want ~= last + 1 then
	return {v, 0, out[3], 1, '', ''}
end
out[1] = last
return out
`)

// CatalogChanges returns the changes after version since, at most limit
// of them (counter.CatalogChanges), in one script.
func (s *Store) CatalogChanges(ctx context.Context, since uint64, limit int) (*counter.CatalogChanges, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	keys := []string{s.versionKey, s.changesKey, s.epochKey, s.campaignsKey, s.creatorsKey, s.linksKey}
	res, err := catalogChangesScript.Run(ctx, s.rdb, keys, since, limit).Slice()
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog changes after version %d: %w", since, storeErr(err))
	}
	ch, err := decodeChanges(res)
	if err != nil {
		return nil, fmt.Errorf("cannot read catalog changes after version %d: %w", since, err)
	}
	return ch, nil
}

func decodeChanges(res []any) (*counter.CatalogChanges, error) {
	if len(res) < 6 || len(res)%2 != 0 {
		return nil, fmt.Errorf("unexpected reply of %d values", len(res))
	}
	v, _ := res[0].(int64)
	more, _ := res[1].(int64)
	epoch, _ := res[2].(string)
	trimmed, _ := res[3].(int64)
	at, _ := res[4].(string)
	last, _ := res[5].(string)
	ch := &counter.CatalogChanges{Version: uint64(v), More: more == 1, Epoch: epoch, Trimmed: trimmed == 1, At: at, Last: last}
	for i := 6; i < len(res); i += 2 {
		if i%256 == 0 {
			// A read of a bulk import's changes decodes a thousand links,
			// milliseconds: the redirects need not wait for all of them.
			runtime.Gosched()
		}
		kind, _ := res[i].(string)
		val, _ := res[i+1].(string)
		var err error
		switch kind {
		case string(changeCampaign):
			ch.Campaigns, err = appendJSON(ch.Campaigns, val)
		case string(changeCreator):
			ch.Creators, err = appendJSON(ch.Creators, val)
		case string(changeLink):
			ch.Links, err = appendJSON(ch.Links, val)
		default:
			err = fmt.Errorf("unknown kind %q of a change", kind)
		}
		if err != nil {
			return nil, err
		}
	}
	return ch, nil
}

func appendJSON[T any](dst []T, js string) ([]T, error) {
	var v T
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		return dst, fmt.Errorf("cannot decode %q: %w", js, err)
	}
	return append(dst, v), nil
}

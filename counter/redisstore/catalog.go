package redisstore

// The catalog: campaigns, creators and links, each kind one hash under the
// {catalog} hash tag, its version, and the change feed that the nodes'
// link tables follow (counter.CatalogChanges).

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
)

// PutCampaign creates or replaces c.
func (s *Store) PutCampaign(ctx context.Context, c counter.Campaign) error {
	if err := s.putCatalog(ctx, changeCampaign, s.campaignsKey, c.ID, c); err != nil {
		return fmt.Errorf("cannot put campaign %q: %w", c.ID, err)
	}
	return nil
}

// Campaign returns the campaign id, or counter.ErrNotFound.
func (s *Store) Campaign(ctx context.Context, id string) (counter.Campaign, error) {
	var c counter.Campaign
	if err := s.getCatalog(ctx, s.campaignsKey, id, &c); err != nil {
		return c, fmt.Errorf("cannot read campaign %q: %w", id, err)
	}
	return c, nil
}

// PutCreator creates or replaces c.
func (s *Store) PutCreator(ctx context.Context, c counter.Creator) error {
	if err := s.putCatalog(ctx, changeCreator, s.creatorsKey, c.Campaign+":"+c.ID, c); err != nil {
		return fmt.Errorf("cannot put creator %q of campaign %q: %w", c.ID, c.Campaign, err)
	}
	return nil
}

// Creator returns creator id of campaign, or counter.ErrNotFound.
func (s *Store) Creator(ctx context.Context, campaign, id string) (counter.Creator, error) {
	var c counter.Creator
	if err := s.getCatalog(ctx, s.creatorsKey, campaign+":"+id, &c); err != nil {
		return c, fmt.Errorf("cannot read creator %q of campaign %q: %w", id, campaign, err)
	}
	return c, nil
}

// CreateLink adds l, or returns counter.ErrExists when its code is taken.
func (s *Store) CreateLink(ctx context.Context, l counter.Link) error {
	err := s.CreateLinks(ctx, []counter.Link{l})
	if errors.Is(err, counter.ErrExists) {
		return fmt.Errorf("cannot create link %q: %w", l.Code, counter.ErrExists)
	}
	return err
}

// CreateLinks adds links, all or none, in one script: when some of their
// codes are taken it adds none and returns a *counter.CodesTakenError.
// Redis runs nothing else meanwhile: a caller with thousands of links
// sends them a thousand or so at a time.
func (s *Store) CreateLinks(ctx context.Context, links []counter.Link) error {
	args := make([]any, 0, 4+2*len(links))
	args = append(args, "1", s.changesKept, newEpoch(), string(changeLink))
	seen := make(map[string]bool, len(links))
	for i := range links {
		l := &links[i]
		if seen[l.Code] {
			return fmt.Errorf("cannot create links: code %q is given twice", l.Code)
		}
		seen[l.Code] = true
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("cannot encode link %q: %w", l.Code, err)
		}
		args = append(args, l.Code, b)
	}
	taken, err := catalogWriteScript.Run(ctx, s.rdb, s.writeKeys(s.linksKey), args...).StringSlice()
	if err != nil {
		return fmt.Errorf("cannot create %d links: %w", len(links), storeErr(err))
	}
	if len(taken) > 0 {
		return fmt.Errorf("cannot create %d links: %w", len(links), &counter.CodesTakenError{Codes: taken})
	}
	return nil
}

// UpdateLink changes the link of code with update and returns it as
// stored: counter.ErrNotFound for an unknown code, or update's error, and
// then nothing changes. The write is a compare-and-set on the link as
// read, retried when another write came between. update may not change
// the code, the campaign or the creator.
func (s *Store) UpdateLink(ctx context.Context, code string, update func(*counter.Link) error) (counter.Link, error) {
	for range 10 {
		old, err := s.rdb.HGet(ctx, s.linksKey, code).Bytes()
		if err != nil {
			return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, storeErr(err))
		}
		var l counter.Link
		if err := json.Unmarshal(old, &l); err != nil {
			return counter.Link{}, fmt.Errorf("cannot decode link %q: %w", code, err)
		}
		was := l
		if err := update(&l); err != nil {
			return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, err)
		}
		if l.Code != was.Code || l.Campaign != was.Campaign || l.Creator != was.Creator {
			return counter.Link{}, fmt.Errorf("cannot update link %q: a link's code, campaign and creator cannot change", code)
		}
		b, err := json.Marshal(&l)
		if err != nil {
			return counter.Link{}, fmt.Errorf("cannot encode link %q: %w", code, err)
		}
		res, err := linkUpdateScript.Run(ctx, s.rdb, s.writeKeys(s.linksKey), s.changesKept, newEpoch(), string(changeLink), code, old, b).Int()
		if err != nil {
			return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, storeErr(err))
		}
		switch res {
		case 1:
			return l, nil
		case 0:
			return counter.Link{}, fmt.Errorf("cannot update link %q: %w", code, counter.ErrNotFound)
		}
		// Changed meanwhile: again, on what it is now.
	}
	return counter.Link{}, fmt.Errorf("cannot update link %q: it keeps changing; try again", code)
}

// linkUpdateScript sets field ARGV[4] of the catalog hash to ARGV[6] if
// it is ARGV[5], as a change of kind ARGV[3] (as catalogWriteScript). It
// returns 1 when set, 0 when the field does not exist, 2 when it holds
// another value.
//
// KEYS: hash, version, changes, epoch. ARGV: kept, epoch, kind, field,
// old value, new value.
var linkUpdateScript = redis.NewScript(`#!lua
local cur = redis.call('HGET', KEYS[1], ARGV[4])
if not cur then
	return 0
end
if cur ~= ARGV[5] then
	return 2
end
redis.call('SET', KEYS[4], ARGV[2], 'NX')
redis.call('HSET', KEYS[1], ARGV[4], ARGV[6])
local v = redis.call('INCR', KEYS[2])
redis.pcall('XADD', KEYS[3], 'MINID', math.max(v - tonumber(ARGV[1]) + 1, 0), v .. '-1', 'c', ARGV[3] .. ARGV[4])
return 1
`)

// Link returns the link of code, or counter.ErrNotFound.
func (s *Store) Link(ctx context.Context, code string) (counter.Link, error) {
	var l counter.Link
	if err := s.getCatalog(ctx, s.linksKey, code, &l); err != nil {
		return l, fmt.Errorf("cannot read link %q: %w", code, err)
	}
	return l, nil
}

// Version returns the catalog version: 0 before the first change, then one
// more after each.
func (s *Store) Version(ctx context.Context) (uint64, error) {
	v, err := parseVersion(s.rdb.Get(ctx, s.versionKey))
	if err != nil {
		return 0, fmt.Errorf("cannot read catalog version from %q: %w", s.versionKey, err)
	}
	return v, nil
}

// Catalog reads the whole catalog, one version of it. Each of its hashes
// is read in chunks (HSCAN), so that no one command holds Redis, or waits
// past the client's read timeout, for the whole of a large catalog (a
// single HGETALL of a million links did); what changed meanwhile is then
// read from the change feed and applied on top, which gives the catalog
// at the version the feed reached. The catalog has no deletions: a change
// is a whole entry that replaces the one with its id. Entries are sorted
// by id (creators by campaign, then id; links by code).
func (s *Store) Catalog(ctx context.Context) (*counter.Catalog, error) {
	for try := 1; ; try++ {
		cat, err := s.catalog(ctx)
		if !errors.Is(err, errCatalogMoved) || try == 3 {
			return cat, err
		}
	}
}

// errCatalogMoved is catalog's error when the feed no longer holds the
// changes made during the scan (it was trimmed, or the catalog reset).
var errCatalogMoved = errors.New("the catalog changed too much while it was read; try again")

func (s *Store) catalog(ctx context.Context) (*counter.Catalog, error) {
	tx := s.rdb.TxPipeline()
	version := tx.Get(ctx, s.versionKey)
	epoch := tx.Get(ctx, s.epochKey)
	if _, err := tx.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("cannot read catalog: %w", storeErr(err))
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
	links, err := scanCatalog[counter.Link](ctx, s, s.linksKey)
	if err != nil {
		return nil, fmt.Errorf("cannot read links of the catalog: %w", err)
	}
	ch, err := s.CatalogChanges(ctx, since, 0)
	if err != nil {
		return nil, err
	}
	if ch.Trimmed || ch.More || ch.Epoch != epoch.Val() {
		return nil, errCatalogMoved
	}
	return &counter.Catalog{
		Version:   ch.Version,
		Epoch:     ch.Epoch,
		Campaigns: merge(campaigns, ch.Campaigns, func(c *counter.Campaign) string { return c.ID }),
		// By campaign, then id: no id has a NUL byte (the admin API's
		// ids are letters, digits, '_', '-' and '.').
		Creators: merge(creators, ch.Creators, func(c *counter.Creator) string { return c.Campaign + "\x00" + c.ID }),
		Links:    merge(links, ch.Links, func(l *counter.Link) string { return l.Code }),
	}, nil
}

// merge returns the entries scanned, each once, with those changed since
// in place of theirs, sorted by key.
func merge[T any](scanned, changed []T, key func(*T) string) []T {
	all := append(scanned, changed...) // a change after the entry it replaces
	// Sort the keys with their indices, not the entries (a link is about
	// 200 bytes); of equal keys the later index sorts last, and is the one
	// kept: of an id scanned twice (HSCAN may) or changed, the last. A key's
	// first 8 bytes, big-endian, order most pairs without reading the
	// string. (Measured once under pprof, a node's load of 1M links from
	// Redis: a stable sort of pointers to the entries took 2 s of it, this
	// merge 0.6 s.)
	keys := make([]sortKey, len(all))
	for i := range all {
		keys[i] = newSortKey(key(&all[i]), i)
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if a.prefix != b.prefix { // cmp.Or would compare the strings too
			return cmp.Compare(a.prefix, b.prefix)
		}
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.i, b.i))
	})
	out := make([]T, 0, len(keys))
	for k, e := range keys {
		if k+1 == len(keys) || keys[k+1].key != e.key {
			out = append(out, all[e.i])
		}
	}
	return out
}

// sortKey is an entry's key and index for merge.
type sortKey struct {
	prefix uint64 // the key's first 8 bytes, big-endian, zero-padded
	key    string
	i      int
}

func newSortKey(key string, i int) sortKey {
	var b [8]byte
	copy(b[:], key)
	return sortKey{binary.BigEndian.Uint64(b[:]), key, i}
}

// catalogScanCount is the entries one HSCAN of a catalog hash asks for.
const catalogScanCount = 10_000

// scanCatalog reads the catalog hash key in chunks. An entry may come
// twice (HSCAN's guarantee is at least once for what is there
// throughout); one added during the scan may not come, and is in the
// change feed.
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

// putCatalog sets field of the catalog hash key to v as JSON, bumps the
// version and records the change of kind, in one script.
func (s *Store) putCatalog(ctx context.Context, kind byte, key, field string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = catalogWriteScript.Run(ctx, s.rdb, s.writeKeys(key), "0", s.changesKept, newEpoch(), string(kind), field, b).Err()
	return storeErr(err)
}

// Kinds of a catalog change, the first byte of its record in the feed.
const (
	changeCampaign = 'c'
	changeCreator  = 'r'
	changeLink     = 'l'
)

func (s *Store) writeKeys(hash string) []string {
	return []string{hash, s.versionKey, s.changesKey, s.epochKey}
}

// catalogWriteScript sets fields of a catalog hash, each a change of its
// own: the version is bumped by one for each, and the changes appended to
// the feed in entries of up to a thousand, each under the version of its
// last change; the feed keeps the entries that hold one of the last
// ARGV[2] versions. With ARGV[1] = "1" it
// sets none if some of them exist, and returns those. The first change of
// a catalog names its epoch (ARGV[3], new at every call, so that a catalog
// lost and written again is another epoch). An append the stream refuses
// (its last id above the version: the version key was restored alone)
// leaves a gap, which readers take for a trimmed feed.
//
// One entry for the changes of a call, not one each: each XADD costs
// Redis a few microseconds, and a bulk import's script of 64 links spent
// most of its time on them (measured once, a throwaway script: 4.9-7.3 us
// of Redis's CPU per link with an entry each, 2.6-2.7 with one per call).
//
// KEYS: hash, version, changes, epoch. ARGV: nx, kept, epoch, kind, then
// field and value pairs.
var catalogWriteScript = redis.NewScript(`#!lua
local fields = {}
for i = 5, #ARGV, 2 do
	fields[#fields + 1] = ARGV[i]
end
-- unpack takes a few thousand values at a time.
local step = 1000
if ARGV[1] == '1' then
	local taken = {}
	for i = 1, #fields, step do
		local got = redis.call('HMGET', KEYS[1], unpack(fields, i, math.min(i + step - 1, #fields)))
		for j = 1, #got do
			if got[j] then
				taken[#taken + 1] = fields[i + j - 1]
			end
		end
	end
	if #taken > 0 then
		return taken
	end
end
redis.call('SET', KEYS[4], ARGV[3], 'NX')
for i = 5, #ARGV, 2 * step do
	redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 2 * step - 1, #ARGV)))
end
local v = redis.call('INCRBY', KEYS[2], #fields) - #fields
local minid = math.max(v + #fields - tonumber(ARGV[2]) + 1, 0)
for i = 1, #fields, step do
	local j = math.min(i + step - 1, #fields)
	local add = {'XADD', KEYS[3], 'MINID', minid, (v + j) .. '-1'}
	for k = i, j do
		add[#add + 1] = 'c'
		add[#add + 1] = ARGV[4] .. fields[k]
	end
	redis.pcall(unpack(add))
end
return {}
`)

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

// newEpoch names a new history of the catalog.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// getCatalog decodes field of the catalog hash key into v.
func (s *Store) getCatalog(ctx context.Context, key, field string, v any) error {
	b, err := s.rdb.HGet(ctx, key, field).Bytes()
	if err != nil {
		return storeErr(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("cannot decode %q of %q: %w", field, key, err)
	}
	return nil
}

func parseVersion(cmd *redis.StringCmd) (uint64, error) {
	s, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, storeErr(err)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid version %q: %w", s, err)
	}
	return v, nil
}

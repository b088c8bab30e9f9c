package redisstore

// The catalog: campaigns, creators and links, each kind one hash under the
// {catalog} hash tag, its version, and the change feed that the nodes'
// link tables follow (counter.CatalogChanges). This file writes them;
// catalog_read.go reads them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

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

// TakenCodes returns those of codes that name a link, in their order:
// one round trip for each takenChunk codes.
func (s *Store) TakenCodes(ctx context.Context, codes []string) ([]string, error) {
	var taken []string
	for chunk := range slices.Chunk(codes, takenChunk) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.BoolCmd, len(chunk))
		for i, code := range chunk {
			cmds[i] = pipe.HExists(ctx, s.linksKey, code)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("cannot check %d link codes: %w", len(codes), storeErr(err))
		}
		for i, cmd := range cmds {
			if cmd.Val() {
				taken = append(taken, chunk[i])
			}
		}
	}
	return taken, nil
}

// takenChunk is how many codes TakenCodes checks in one round trip.
const takenChunk = 1000

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
// One entry for the changes of a call, not one each: a bulk import of
// 10,000 links, 64 a call, spent 55 ms in these scripts instead of 66-77
// ms (Redis's commandstats, an idle node, measured once).
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

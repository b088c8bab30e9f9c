package redisstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
)

// commitScript tests and sets the bits of a group of visits of one
// campaign window, in order, and counts them, as one atomic step. One
// script call per group, not per visit or per bitmap: Redis pays its
// per-call cost once for the whole group.
//
//	KEYS[1..B]  the Bloom bitmaps of the group's slots
//	KEYS[B+1..] the counter hashes of the group's creators and slots
//	ARGV[1]     when the bitmaps expire, Unix seconds
//	ARGV[2]     K, the number of bit positions per visit
//	ARGV[3]     the size of a bitmap in bytes (M bits rounded up)
//	ARGV[4]     B, the number of bitmaps
//	ARGV[5...]  two arguments per visit: its day (YYYY-MM-DD), then 4+4K
//	            bytes: the index into KEYS of its bitmap (uint8) and of its
//	            counter hash (uint16), 1 to only set the bits and count
//	            nothing (Visit.MarkOnly) else 0, and its K bit positions
//	            (uint32s), all big-endian
//
// A new bitmap is created at its full size: grown bit by bit, Redis would
// over-allocate it up to twice (strings grow greedily below 1 MB).
//
// It returns one integer per visit: 1 when the visitor was new (qualified),
// 0 when every bit was already set (duplicate). The arguments are checked
// before the first write, so a malformed call changes nothing; the shebang
// makes Redis 7 check for memory before the script runs, so it never stops
// between its writes.
var commitScript = redis.NewScript(`#!lua
local k, size, b = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if k == nil or k < 1 or k > 64 or size == nil or size < 1 or b == nil or b < 1 or b >= #KEYS or #ARGV % 2 ~= 0 then
	return redis.error_reply('ERR clickgate commit: malformed arguments')
end
local format = '>BI2B' .. string.rep('I4', k)
for i = 6, #ARGV, 2 do
	if #ARGV[i] ~= 4 + 4 * k then
		return redis.error_reply('ERR clickgate commit: malformed visit')
	end
	local bi, ci = struct.unpack('>BI2', ARGV[i])
	if bi < 1 or bi > b or ci <= b or ci > #KEYS then
		return redis.error_reply('ERR clickgate commit: malformed visit')
	end
end
for i = 1, b do
	if redis.call('EXISTS', KEYS[i]) == 0 then
		redis.call('SETRANGE', KEYS[i], size - 1, '\0')
	end
end
local set = {}
for j = 1, k do
	set[4 * j - 3], set[4 * j - 2], set[4 * j] = 'SET', 'u1', 1
end
local out, counts, new = {}, {}, {}
for i = 5, #ARGV, 2 do
	local v = {struct.unpack(format, ARGV[i + 1])}
	for j = 1, k do
		set[4 * j - 1] = v[3 + j]
	end
	local old = redis.call('BITFIELD', KEYS[v[1]], unpack(set))
	local q = 0
	for j = 1, k do
		if old[j] == 0 then
			q = 1
			break
		end
	end
	out[#out + 1] = q
	if q == 1 then
		new[v[1]] = true
	end
	if v[3] == 0 then
		local field = ARGV[i] .. (q == 1 and ':` + counter.Qualified.String() + `' or ':` + counter.Duplicate.String() + `')
		local c = counts[v[2]]
		if c == nil then
			c = {}
			counts[v[2]] = c
		end
		c[field] = (c[field] or 0) + 1
	end
end
for key, c in pairs(counts) do
	for field, n in pairs(c) do
		redis.call('HINCRBY', KEYS[key], field, n)
	end
end
for i in pairs(new) do
	redis.call('EXPIREAT', KEYS[i], ARGV[1])
end
return out
`)

// createLinkScript sets a link unless its code is taken, and bumps the
// catalog version when it did.
//
//	KEYS[1]  the links hash
//	KEYS[2]  the version
//	ARGV[1]  the code
//	ARGV[2]  the link as JSON
var createLinkScript = redis.NewScript(`#!lua
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
	redis.call('INCR', KEYS[2])
	return 1
end
return 0
`)

// noscriptAttempts bounds how often Commit reloads its script: a server that
// keeps forgetting it is broken.
const noscriptAttempts = 3

// Commit tests and sets each visit in its window's Bloom bitmap and counts
// it as qualified or duplicate: one script per group of visits of one
// campaign window, all groups in one pipeline. (A group spans the window's
// slots, which a single Redis allows; on a cluster it would be split by
// slot, the hash tag its keys already carry.) The visits of a group whose script
// failed are Uncounted in out; a group that failed because the connection
// broke may have run nevertheless (it is then counted in Redis, and
// committing it again makes its visits duplicates).
func (s *Store) Commit(ctx context.Context, visits []counter.Visit, out []counter.Reason) error {
	if len(out) < len(visits) {
		panic(fmt.Sprintf("BUG: redisstore: Commit of %d visits into %d results", len(visits), len(out)))
	}
	for i := range visits {
		out[i] = counter.Uncounted
	}
	if len(visits) == 0 {
		return nil
	}
	groups := s.commitGroups(visits)

	// pending are the groups to run: all, then those refused with NOSCRIPT
	// (Redis restarted or SCRIPT FLUSH). A refused script did not run, so
	// running it again counts it once.
	pending := make([]int, len(groups))
	for i := range pending {
		pending[i] = i
	}
	cmds := make([]*redis.Cmd, len(groups))
	var firstErr error
	failed := 0
	fail := func(g *commitGroup, err error) {
		if firstErr == nil {
			firstErr = err
		}
		failed += len(g.visits)
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if err := commitScript.Load(ctx, s.rdb).Err(); err != nil {
				for _, i := range pending {
					fail(&groups[i], err)
				}
				break
			}
		}
		pipe := s.rdb.Pipeline()
		for _, i := range pending {
			cmds[i] = pipe.Do(ctx, groups[i].args...)
		}
		pipe.Exec(ctx) // errors are read per command below

		retry := pending[:0]
		for _, i := range pending {
			g := &groups[i]
			res, err := cmds[i].Int64Slice()
			if err == nil && len(res) != len(g.visits) {
				err = fmt.Errorf("the commit script answered %d results for %d visits", len(res), len(g.visits))
			}
			if err != nil {
				if redis.HasErrorPrefix(err, "NOSCRIPT") && attempt+1 < noscriptAttempts {
					retry = append(retry, i)
				} else {
					fail(g, err)
				}
				continue
			}
			for j, q := range res {
				out[g.visits[j]] = counter.Duplicate
				if q == 1 {
					out[g.visits[j]] = counter.Qualified
				}
			}
		}
		pending = retry
	}
	if failed > 0 {
		return fmt.Errorf("cannot commit %d of %d visits: %w", failed, len(visits), storeErr(firstErr))
	}
	return nil
}

// commitGroup is one EVALSHA of commitScript: the visits (indices into the
// batch, in batch order) of one campaign window, and the command's
// arguments.
type commitGroup struct {
	visits []int
	args   []any
}

// Bounds of one script call: the keys are indexed by uint16, and a call
// blocks Redis while it runs (about 6 us a visit). More start another group.
const (
	maxKeysPerGroup   = 60000
	maxVisitsPerGroup = 4096
)

// commitGroups splits visits into groups by campaign window, keeping their
// order within each group (a visitor twice in one batch is a duplicate the
// second time), and builds each group's EVALSHA.
func (s *Store) commitGroups(visits []counter.Visit) []commitGroup {
	type window struct {
		campaign string
		start    int64
		part     int // past a bound of one call
	}
	type counterKey struct {
		slot    uint32
		creator string
	}
	type building struct {
		window
		expires  int64
		bitmaps  map[uint32]int // slot → index into KEYS (from 1)
		counters map[counterKey]int
		slots    []uint32     // KEYS[1..B]
		hashes   []counterKey // KEYS[B+1..], index minus B
		visits   []int
		spans    []int // where each visit's argument starts in buf
	}
	index := map[window]*building{}
	var groups []*building
	k := int(s.params.K)
	// Every visit's binary argument is cut from one buffer: one string
	// per batch, not one per visit.
	buf := make([]byte, 0, len(visits)*(4+4*k))
	var positions []uint64
	for i := range visits {
		v := &visits[i]
		slot := s.params.Slot(&v.Key)
		w := window{campaign: v.Campaign, start: v.Window}
		g := index[w]
		for g != nil && (len(g.visits) >= maxVisitsPerGroup || len(g.slots)+len(g.hashes) >= maxKeysPerGroup-2) {
			w.part++
			g = index[w]
		}
		if g == nil {
			g = &building{window: w, expires: v.Expires, bitmaps: map[uint32]int{}, counters: map[counterKey]int{}}
			index[w] = g
			groups = append(groups, g)
		}
		bi, ok := g.bitmaps[slot]
		if !ok {
			g.slots = append(g.slots, slot)
			bi = len(g.slots)
			g.bitmaps[slot] = bi
		}
		ck := counterKey{slot, v.Creator}
		ci, ok := g.counters[ck]
		if !ok {
			g.hashes = append(g.hashes, ck)
			ci = len(g.hashes)
			g.counters[ck] = ci
		}
		mark := byte(0)
		if v.MarkOnly {
			mark = 1
		}
		g.spans = append(g.spans, len(buf))
		g.visits = append(g.visits, i)
		// The counter's index is fixed below, once B is known.
		buf = append(buf, byte(bi))
		buf = binary.BigEndian.AppendUint16(buf, uint16(ci))
		buf = append(buf, mark)
		positions = s.params.AppendPositions(positions[:0], &v.Key)
		for _, p := range positions {
			buf = binary.BigEndian.AppendUint32(buf, uint32(p))
		}
	}
	for _, g := range groups {
		for _, at := range g.spans {
			ci := binary.BigEndian.Uint16(buf[at+1:])
			binary.BigEndian.PutUint16(buf[at+1:], ci+uint16(len(g.slots)))
		}
	}
	all := string(buf)
	out := make([]commitGroup, len(groups))
	var key []byte
	for gi, g := range groups {
		b := len(g.slots)
		args := make([]any, 0, 3+b+len(g.hashes)+4+2*len(g.visits))
		args = append(args, "evalsha", commitScript.Hash(), b+len(g.hashes))
		for _, slot := range g.slots {
			key = appendSlotKey(key[:0], s.prefix, g.campaign, slot)
			key = append(key, "bf:"...)
			args = append(args, string(strconv.AppendInt(key, g.start, 10)))
		}
		for _, h := range g.hashes {
			key = appendSlotKey(key[:0], s.prefix, g.campaign, h.slot)
			key = append(key, "n:"...)
			args = append(args, string(append(key, h.creator...)))
		}
		args = append(args, strconv.FormatInt(g.expires, 10), k, (s.params.M+7)/8, b)
		var day counter.Day
		var dayArg any
		for j, i := range g.visits {
			if v := &visits[i]; dayArg == nil || v.Day != day {
				day, dayArg = v.Day, v.Day.String()
			}
			args = append(args, dayArg, all[g.spans[j]:g.spans[j]+4+4*k])
		}
		out[gi] = commitGroup{visits: g.visits, args: args}
	}
	return out
}

// appendSlotKey appends "<prefix>:{<campaign>:<slot>}:", the start of every
// key of one campaign and slot.
func appendSlotKey(dst []byte, prefix, campaign string, slot uint32) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, ":{"...)
	dst = append(dst, campaign...)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(slot), 10)
	return append(dst, "}:"...)
}

func (s *Store) counterKey(campaign string, slot uint32, creator string) string {
	b := appendSlotKey(make([]byte, 0, 64), s.prefix, campaign, slot)
	b = append(b, "n:"...)
	return string(append(b, creator...))
}

// AddCounts adds counts to slot 0's counter hashes (any slot would do:
// stats sum over slots), in one transaction, so that a failed call added
// nothing and may be repeated.
func (s *Store) AddCounts(ctx context.Context, counts []counter.Count) error {
	tx := s.rdb.TxPipeline()
	queued := 0
	for i := range counts {
		c := &counts[i]
		if c.Reason >= counter.NumReasons {
			return fmt.Errorf("cannot add counts of %q/%q: unknown reason %d", c.Campaign, c.Creator, c.Reason)
		}
		if c.N == 0 {
			continue
		}
		tx.HIncrBy(ctx, s.counterKey(c.Campaign, 0, c.Creator), c.Day.String()+":"+c.Reason.String(), c.N)
		queued++
	}
	if queued == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx); err != nil {
		return fmt.Errorf("cannot add %d counts: %w", queued, storeErr(err))
	}
	return nil
}

// Stats sums the counter hashes of every slot of creator in campaign, per
// day, oldest first. Fields of reasons this version does not know are
// skipped: a newer version may have written them.
func (s *Store) Stats(ctx context.Context, campaign, creator string) ([]counter.DayCounts, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, s.params.Slots)
	for slot := range s.params.Slots {
		cmds[slot] = pipe.HGetAll(ctx, s.counterKey(campaign, slot, creator))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("cannot read stats of %q/%q: %w", campaign, creator, storeErr(err))
	}
	byDay := make(map[counter.Day]*counter.Counts)
	for slot, cmd := range cmds {
		for field, val := range cmd.Val() {
			dayStr, name, ok := strings.Cut(field, ":")
			if !ok {
				return nil, fmt.Errorf("cannot read stats of %q/%q: invalid field %q in slot %d", campaign, creator, field, slot)
			}
			r, ok := counter.ParseReason(name)
			if !ok {
				continue
			}
			d, err := counter.ParseDay(dayStr)
			if err != nil {
				return nil, fmt.Errorf("cannot read stats of %q/%q: invalid day in field %q in slot %d: %w", campaign, creator, field, slot, err)
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("cannot read stats of %q/%q: invalid count %q of field %q in slot %d: %w", campaign, creator, val, field, slot, err)
			}
			c := byDay[d]
			if c == nil {
				c = new(counter.Counts)
				byDay[d] = c
			}
			c[r] += n
		}
	}
	days := make([]counter.DayCounts, 0, len(byDay))
	for d, c := range byDay {
		if *c != (counter.Counts{}) {
			days = append(days, counter.DayCounts{Day: d, Counts: *c})
		}
	}
	slices.SortFunc(days, func(a, b counter.DayCounts) int { return cmp.Compare(a.Day, b.Day) })
	return days, nil
}

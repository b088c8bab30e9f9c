package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
)

// commitScript tests and sets one visitor's bits and counts the visit, as
// one atomic step.
//
//	KEYS[1]  the Bloom bitmap of the visit's campaign, slot and window
//	KEYS[2]  the counter hash of the visit's campaign, slot and creator
//	ARGV[1]  when the bitmap expires, Unix seconds
//	ARGV[2]  the visit's day, YYYY-MM-DD
//	ARGV[3]  the bit positions, decimal, separated by spaces
//	ARGV[4]  "1" to only set the bits and count nothing (Visit.MarkOnly)
//
// It returns 1 when the visitor is new (qualified), 0 when every bit was
// already set (duplicate). The shebang makes Redis 7 check for memory before
// the script runs, so it never stops between its writes.
var commitScript = redis.NewScript(`#!lua
local set = {}
for pos in string.gmatch(ARGV[3], '%d+') do
	local n = #set
	set[n + 1] = 'SET'
	set[n + 2] = 'u1'
	set[n + 3] = pos
	set[n + 4] = 1
end
if #set == 0 then
	return redis.error_reply('ERR clickgate commit: no bit positions')
end
local old = redis.call('BITFIELD', KEYS[1], unpack(set))
for i = 1, #old do
	if old[i] == 0 then
		if ARGV[4] ~= '1' then
			redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':` + counter.Qualified.String() + `', 1)
		end
		redis.call('EXPIREAT', KEYS[1], ARGV[1])
		return 1
	end
end
if ARGV[4] ~= '1' then
	redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':` + counter.Duplicate.String() + `', 1)
end
return 0
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

// argsPerVisit is the number of arguments of one EVALSHA of commitScript.
const argsPerVisit = 9

// Commit tests and sets each visit in its window's Bloom bitmap and counts
// it as qualified or duplicate, one script per visit, all visits in one
// pipeline. A visit whose script failed is Uncounted in out; one that failed
// because the connection broke may have run nevertheless (it is then counted
// in Redis, and committing it again makes it a duplicate).
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
	args := s.commitArgs(visits)

	// pending are the visits to run: all, then those refused with NOSCRIPT
	// (Redis restarted or SCRIPT FLUSH). A refused script did not run, so
	// running it again counts it once.
	pending := make([]int, len(visits))
	for i := range pending {
		pending[i] = i
	}
	cmds := make([]*redis.Cmd, len(visits))
	var firstErr error
	failed := 0
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if err := commitScript.Load(ctx, s.rdb).Err(); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				failed += len(pending)
				break
			}
		}
		pipe := s.rdb.Pipeline()
		for _, i := range pending {
			cmds[i] = pipe.Do(ctx, args[i*argsPerVisit:(i+1)*argsPerVisit]...)
		}
		pipe.Exec(ctx) // errors are read per command below

		retry := pending[:0]
		for _, i := range pending {
			n, err := cmds[i].Int64()
			switch {
			case err == nil && n == 1:
				out[i] = counter.Qualified
			case err == nil && n == 0:
				out[i] = counter.Duplicate
			case err == nil:
				err = fmt.Errorf("unexpected reply %d of the commit script", n)
				fallthrough
			default:
				if redis.HasErrorPrefix(err, "NOSCRIPT") && attempt+1 < noscriptAttempts {
					retry = append(retry, i)
					continue
				}
				if firstErr == nil {
					firstErr = err
				}
				failed++
			}
		}
		pending = retry
	}
	if failed > 0 {
		return fmt.Errorf("cannot commit %d of %d visits: %w", failed, len(visits), storeErr(firstErr))
	}
	return nil
}

// commitArgs returns the arguments of the EVALSHA of every visit,
// argsPerVisit per visit. The strings are cut from one buffer, so a batch
// costs a few allocations per visit, not per argument byte.
func (s *Store) commitArgs(visits []counter.Visit) []any {
	type span struct{ bf, n, exp, day, pos [2]int }
	spans := make([]span, len(visits))
	buf := make([]byte, 0, len(visits)*(2*len(s.prefix)+200))
	var positions []uint64
	var day counter.Day
	var dayStr string
	mark := func(start int) [2]int { return [2]int{start, len(buf)} }
	for i := range visits {
		v := &visits[i]
		slot := s.params.Slot(&v.Key)
		sp := &spans[i]

		start := len(buf)
		buf = appendSlotKey(buf, s.prefix, v.Campaign, slot)
		buf = append(buf, "bf:"...)
		buf = strconv.AppendInt(buf, v.Window, 10)
		sp.bf = mark(start)

		start = len(buf)
		buf = appendSlotKey(buf, s.prefix, v.Campaign, slot)
		buf = append(buf, "n:"...)
		buf = append(buf, v.Creator...)
		sp.n = mark(start)

		start = len(buf)
		buf = strconv.AppendInt(buf, v.Expires, 10)
		sp.exp = mark(start)

		if i == 0 || v.Day != day {
			day, dayStr = v.Day, v.Day.String()
		}
		start = len(buf)
		buf = append(buf, dayStr...)
		sp.day = mark(start)

		start = len(buf)
		positions = s.params.AppendPositions(positions[:0], &v.Key)
		for j, p := range positions {
			if j > 0 {
				buf = append(buf, ' ')
			}
			buf = strconv.AppendUint(buf, p, 10)
		}
		sp.pos = mark(start)
	}

	str := string(buf)
	cut := func(sp [2]int) string { return str[sp[0]:sp[1]] }
	sha := any(commitScript.Hash())
	args := make([]any, 0, len(visits)*argsPerVisit)
	for i := range spans {
		sp := &spans[i]
		mark := "0"
		if visits[i].MarkOnly {
			mark = "1"
		}
		args = append(args, "evalsha", sha, 2, cut(sp.bf), cut(sp.n), cut(sp.exp), cut(sp.day), cut(sp.pos), mark)
	}
	return args
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

// signupScript attributes a user once per campaign and counts the signup.
//
//	KEYS[1]  the users hash of the campaign and slot: user → creator
//	KEYS[2]  the counter hash of the campaign, slot and creator
//	ARGV[1]  the user id
//	ARGV[2]  the creator
//	ARGV[3]  the day, YYYY-MM-DD
//
// It returns the creator the user belongs to, and 1 when that is new.
var signupScript = redis.NewScript(`#!lua
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
	redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':` + counter.Signup.String() + `', 1)
	return {1, ARGV[2]}
end
return {0, redis.call('HGET', KEYS[1], ARGV[1])}
`)

// AttributeSignup records the user and counts the signup in one script. The
// users of a campaign are spread over its slots by a hash of the user id.
func (s *Store) AttributeSignup(ctx context.Context, su counter.Conversion) (bool, string, error) {
	h := fnv.New32a()
	h.Write([]byte(su.UserID))
	slot := h.Sum32() % s.params.Slots
	users := string(append(appendSlotKey(nil, s.prefix, su.Campaign, slot), 'u'))
	res, err := signupScript.Run(ctx, s.rdb, []string{users, s.counterKey(su.Campaign, slot, su.Creator)},
		su.UserID, su.Creator, su.Day.String()).Slice()
	if err != nil {
		return false, "", fmt.Errorf("cannot attribute signup of user %q: %w", su.UserID, storeErr(err))
	}
	if len(res) != 2 {
		return false, "", fmt.Errorf("cannot attribute signup of user %q: unexpected reply %v", su.UserID, res)
	}
	created, _ := res[0].(int64)
	owner, _ := res[1].(string)
	return created == 1, owner, nil
}

// Claim records value under name with SET NX, then reads what is recorded.
func (s *Store) Claim(ctx context.Context, name, value string) (string, error) {
	key := s.prefix + ":{catalog}:claim:" + name
	if err := s.rdb.SetNX(ctx, key, value, 0).Err(); err != nil {
		return "", fmt.Errorf("cannot claim %q: %w", name, storeErr(err))
	}
	owner, err := s.rdb.Get(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("cannot read claim %q: %w", name, storeErr(err))
	}
	return owner, nil
}

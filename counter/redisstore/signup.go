package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/clickgate/clickgate/counter"
)

// Signups attributed to creators, and the claims of the ledger and the
// store's id: what the app backend and the flusher write, at a low rate.

// signupScript attributes a user once per campaign and a click to one user,
// and counts the signup, as one atomic step.
//
//	KEYS[1]  the users hash of the campaign: user → creator
//	KEYS[2]  the clicks hash of the campaign: click key → user
//	KEYS[3]  the counter hash of the campaign and creator
//	KEYS[4]  the counter hash of the link clicked, if the click names one
//	ARGV[1]  the user id
//	ARGV[2]  the creator
//	ARGV[3]  the day, YYYY-MM-DD
//	ARGV[4]  the click key
//
// It returns {-1, the other user} when another user used the click, and
// changes nothing then; else the creator the user belongs to, and 1 when
// that is new.
var signupScript = redis.NewScript(`#!lua
local used = redis.call('HGET', KEYS[2], ARGV[4])
if used and used ~= ARGV[1] then
	return {-1, used}
end
if not used then
	redis.call('HSETNX', KEYS[2], ARGV[4], ARGV[1])
end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
	redis.call('HINCRBY', KEYS[3], ARGV[3] .. ':` + counter.Signup.String() + `', 1)
	if KEYS[4] then
		redis.call('HINCRBY', KEYS[4], ARGV[3] .. ':` + counter.Signup.String() + `', 1)
	end
	return {1, ARGV[2]}
end
return {0, redis.call('HGET', KEYS[1], ARGV[1])}
`)

// signupSlot is the slot whose hash tag the signup state of a campaign
// shares: its users, its used clicks and the signups counters. Any user may
// come with any click, so both checks need every user and every click of
// the campaign in one slot to be one script on a Redis Cluster. Signups come
// one per request of the app backend, far fewer than clicks: one slot takes
// them.
const signupSlot = 0

// AttributeSignup records the click and the user and counts the signup in
// one script, on the keys of the campaign's signupSlot.
func (s *Store) AttributeSignup(ctx context.Context, su counter.Conversion) (bool, string, error) {
	if su.Click == "" {
		return false, "", fmt.Errorf("cannot attribute signup of user %q: the click key is empty", su.UserID)
	}
	if strings.Contains(su.Link, ":") {
		return false, "", fmt.Errorf("cannot attribute signup of user %q: link %q: a code has no ':'", su.UserID, su.Link)
	}
	tag := appendSlotKey(nil, s.prefix, su.Campaign, signupSlot)
	users := string(append(tag, "users"...))
	clicks := string(append(tag, "clicks"...))
	keys := []string{users, clicks, s.counterKey(su.Campaign, signupSlot, su.Creator)}
	if su.Link != "" {
		// linkCounterKey is in slot 0, signupSlot's hash tag.
		keys = append(keys, s.linkCounterKey(su.Campaign, su.Creator, su.Link))
	}
	res, err := signupScript.Run(ctx, s.rdb, keys, su.UserID, su.Creator, su.Day.String(), su.Click).Slice()
	if err != nil {
		return false, "", fmt.Errorf("cannot attribute signup of user %q: %w", su.UserID, storeErr(err))
	}
	if len(res) != 2 {
		return false, "", fmt.Errorf("cannot attribute signup of user %q: unexpected reply %v", su.UserID, res)
	}
	created, _ := res[0].(int64)
	owner, _ := res[1].(string)
	if created == -1 {
		return false, "", fmt.Errorf("cannot attribute signup of user %q: click %q: %w", su.UserID, su.Click, counter.ErrClickUsed)
	}
	return created == 1, owner, nil
}

// Claim records value under name with SET NX, then reads what is recorded.
func (s *Store) Claim(ctx context.Context, name, value string) (string, error) {
	key := s.claimKey(name)
	owner, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		// Written only when missing: a node starts on a Redis that
		// refuses writes.
		if err := s.rdb.SetNX(ctx, key, value, 0).Err(); err != nil {
			return "", fmt.Errorf("cannot claim %q: %w", name, storeErr(err))
		}
		owner, err = s.rdb.Get(ctx, key).Result()
	}
	if err != nil {
		return "", fmt.Errorf("cannot read claim %q: %w", name, storeErr(err))
	}
	return owner, nil
}

func (s *Store) claimKey(name string) string { return s.prefix + ":{catalog}:claim:" + name }

// reclaimScript replaces KEYS[1] with ARGV[2] if it holds ARGV[1] (or
// nothing), and returns what it holds then.
var reclaimScript = redis.NewScript(`#!lua
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[2])
	return ARGV[2]
end
return v
`)

// Reclaim replaces the value under name if it is old, in one script.
func (s *Store) Reclaim(ctx context.Context, name, old, value string) (string, error) {
	owner, err := reclaimScript.Run(ctx, s.rdb, []string{s.claimKey(name)}, old, value).Text()
	if err != nil {
		return "", fmt.Errorf("cannot reclaim %q: %w", name, storeErr(err))
	}
	return owner, nil
}

#!/usr/bin/env python3
"""Check a clickgate ledger file with the Python standard library alone.

It checks the rules of the ledger's file format (counter/ledger/doc.go),
sharing no code with clickgate: the framing of each line (its '\\n', len,
crc32c and hmac), seq, the prev hash chain, the first record, ids, terms,
that no creator's totals decrease nor its acceptance time change, and each
sealed statement, which it computes again from the records before it with
the rules of package payout. It reads format versions 1 (no "format" in the
first record) and 2 (creators' "accepted_at" in entries).

    python3 check_ledger.py --key-file KEYFILE DIR/ledger.jsonl
    python3 check_ledger.py --click-secret-file SECRETFILE DIR/ledger.jsonl

KEYFILE is the file clickgate was given as --ledger-key-file: the key is its
bytes without the white space around them, as clickgate reads it. SECRETFILE
holds the click secret, for a ledger written with the default key
HMAC-SHA256(click secret, "clickgate/ledger-key/v1"); white space around the
secret is ignored too, as clickgate ignores it.

It prints one line per record, then the number of records and the head (the
SHA-256 of the last line, which a later check can compare with), and exits
0. At the first bad line it prints "FILE line N: reason" to stderr and exits
1; bad arguments or an unreadable file exit 2.
"""

import argparse
import base64
import calendar
import hashlib
import hmac
import json
import re
import sys
import time
import unicodedata

KEY_LABEL = b"clickgate/ledger-key/v1"
REFERENCE_DOMAIN = b"clickgate/payout-reference/v1"
MAX_ID_LEN = 256
MAX_INT64 = (1 << 63) - 1
ZERO_HEAD = "0" * 64
FORMAT = 2  # the newest format version this checker reads


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli): reflected 0x82F63B78, init and final XOR 0xFFFFFFFF."""
    c = 0xFFFFFFFF
    for b in data:
        c = CRC32C_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# A line is the body without its closing brace, then the trailer. The
# greedy prefix makes ,"len": the last one in the line, as the format says.
LINE = re.compile(
    rb'(.*),"len":(0|[1-9][0-9]{0,11}),"crc32c":"([0-9a-f]{8})","hmac":"([0-9a-f]{64})"\}\n\Z',
    re.S,
)
UTC_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d*[1-9]))?Z\Z")
ANY_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|([+-])(\d\d):(\d\d))\Z")

RECORD_KEYS = ["seq", "at", "ledger", "store", "format", "entries", "campaigns", "statements", "prev"]
FIRST_KEYS = ["seq", "at", "ledger", "store", "format", "prev"]
FIRST_REQUIRED = ["seq", "at", "ledger", "store", "prev"]
ENTRY_KEYS = ["campaign", "creator", "qualified", "signups", "handle", "country", "status", "accepted_at"]
ENTRY_REQUIRED = ENTRY_KEYS[:4]
TERMS_KEYS = ["id", "name", "signup_reward_cents", "visit_block_size", "visit_block_reward_cents",
              "cap_cents", "eligible_countries", "payable_after"]
TERMS_REQUIRED = ["id", "signup_reward_cents", "visit_block_size", "visit_block_reward_cents",
                  "cap_cents", "payable_after"]


class Bad(Exception):
    """A bad record: the message says why."""


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Bad("a member appears twice in an object")
    return dict(pairs)


def refuse_constant(name):
    raise Bad("not a JSON number: " + name)


def parse_time(s, utc_only):
    """Returns (Unix seconds, nanoseconds) of an RFC 3339 time."""
    m = (UTC_TIME if utc_only else ANY_TIME).match(s) if isinstance(s, str) else None
    if not m:
        raise Bad("time %r is not RFC 3339%s" % (s, " in UTC without trailing zeros" if utc_only else ""))
    year, month, day, hour, minute, second = (int(x) for x in m.group(1, 2, 3, 4, 5, 6))
    try:
        secs = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        # timegm does not check the fields: round-trip them.
        if tuple(time.gmtime(secs)[:6]) != (year, month, day, hour, minute, second):
            raise ValueError
    except (ValueError, OverflowError):
        raise Bad("time %r is not a valid date" % s)
    if not utc_only and m.group(8) != "Z":
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        secs -= offset if m.group(9) == "+" else -offset
    frac = m.group(7) or ""
    return secs, int((frac + "000000000")[:9])


def check_int(what, v, minimum=0):
    if type(v) is not int or v < minimum or v > MAX_INT64:
        raise Bad("%s %r is not an integer from %d to 2^63-1" % (what, v, minimum))
    return v


def check_id(what, v):
    if not isinstance(v, str) or v == "":
        raise Bad("%s id %r is empty or not a string" % (what, v))
    if len(v.encode("utf-8", "surrogatepass")) > MAX_ID_LEN:
        raise Bad("%s id %r is longer than %d bytes" % (what, v, MAX_ID_LEN))
    for ch in v:
        if unicodedata.category(ch) == "Cc":
            raise Bad("%s id %r contains a control character" % (what, v))
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise Bad("%s id %r is not valid UTF-8" % (what, v))
    return v


def check_keys(what, obj, allowed, required):
    if not isinstance(obj, dict):
        raise Bad("%s is not an object" % what)
    keys = list(obj)
    order = [k for k in allowed if k in obj]
    if keys != order:
        raise Bad("%s has members %s; want some of %s, in that order" % (what, keys, allowed))
    missing = [k for k in required if k not in obj]
    if missing:
        raise Bad("%s lacks %s" % (what, missing))


def utf8(s):
    return s.encode("utf-8", "surrogatepass")


def reference(campaign, creator, statement):
    h = hashlib.sha256(REFERENCE_DOMAIN)
    for part in (campaign, creator, statement):
        b = utf8(part)
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return "cg_" + base64.b32encode(h.digest()[:20]).decode("ascii").lower()


def compute_statement(campaign, terms, creators, head):
    """The final statement of campaign, as package payout computes it."""
    rows = []
    for creator in sorted(creators, key=utf8):
        e = creators[creator]
        q, s = e["qualified"], e["signups"]
        earned = s * terms["signup_reward_cents"] + (q // terms["visit_block_size"]) * terms["visit_block_reward_cents"]
        if earned > MAX_INT64:
            raise Bad("the earnings of creator %r in campaign %r overflow int64" % (creator, campaign))
        status = e.get("status", "")
        if status == "suspended":
            row_status = "suspended"
        elif status == "invited":
            row_status = "invited"
        elif status != "active":
            raise Bad("creator %r of campaign %r has unknown status %r" % (creator, campaign, status))
        elif terms.get("eligible_countries") and e.get("country", "") not in terms["eligible_countries"]:
            row_status = "ineligible_country"
        else:
            row_status = "payable"
        rows.append({
            "creator_id": creator,
            "handle": e.get("handle", ""),
            "country": e.get("country", ""),
            "qualified_visits": q,
            "signups": s,
            "earned_cents": earned,
            "capped_cents": min(earned, terms["cap_cents"]) if row_status == "payable" else 0,
            "currency": "USD",
            "status": row_status,
            "reference": reference(campaign, creator, "final"),
        })
    total = sum(r["capped_cents"] for r in rows)
    if total > MAX_INT64:
        raise Bad("the total of campaign %r overflows int64" % campaign)
    return {"campaign": campaign, "statement": "final", "currency": "USD", "total_cents": total,
            "rows": rows, "ledger_head": head}


class Ledger:
    def __init__(self, key):
        self.key = key
        self.seq = 0
        self.head = ZERO_HEAD
        self.ledger = self.store = None
        self.format = 0  # the format version as of the last record
        self.totals = {}  # (campaign, creator) -> the last entry
        self.terms = {}  # campaign -> the last terms
        self.sealed = {}  # campaign -> statement

    def check(self, line):
        """Checks line (with its '\\n') as the next record; returns a summary."""
        if not line.endswith(b"\n"):
            raise Bad("no newline at the end of the file")
        m = LINE.match(line)
        if not m:
            raise Bad('no well-formed "len", "crc32c" and "hmac" members at the end of the line')
        body = m.group(1) + b"}"
        if int(m.group(2)) != len(body):
            raise Bad("len is %s, the body is %d bytes" % (m.group(2).decode(), len(body)))
        if "%08x" % crc32c(body) != m.group(3).decode():
            raise Bad("crc32c mismatch: recorded %s, computed %08x" % (m.group(3).decode(), crc32c(body)))
        if not hmac.compare_digest(hmac.new(self.key, body, hashlib.sha256).hexdigest(), m.group(4).decode()):
            raise Bad("hmac mismatch: not written with this ledger key")
        try:
            r = json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=refuse_constant)
        except (UnicodeDecodeError, ValueError) as e:
            raise Bad("the body is not JSON: %s" % e)
        check_keys("the record", r, RECORD_KEYS, ["seq", "at", "prev"])
        seq = check_int("seq", r["seq"])
        if seq != self.seq + 1:
            raise Bad("seq %d follows seq %d" % (seq, self.seq))
        if r["prev"] != self.head:
            raise Bad("prev %r is not the hash of the previous line %s" % (r["prev"], self.head))
        at = parse_time(r["at"], utc_only=True)
        fmt = self.check_format(r, seq)
        if seq == 1:
            if list(r) != [k for k in FIRST_KEYS if k in FIRST_REQUIRED or k in r]:
                raise Bad("the first record has members %s; want exactly %s, format optional" % (list(r), FIRST_KEYS))
            self.ledger, self.store = check_id("ledger", r["ledger"]), check_id("store", r["store"])
            summary = "first record: ledger %s, store %s, format %d" % (self.ledger, self.store, fmt)
        else:
            summary = self.check_batch(r, at, fmt)
            if "format" in r:
                summary = "format %d from here on; %s" % (fmt, summary)
        self.format = fmt
        self.seq = seq
        self.head = hashlib.sha256(line).hexdigest()
        return "seq %d at %s: %s" % (seq, r["at"], summary)

    def check_format(self, r, seq):
        """The format version of record r: its "format", or the ledger's."""
        if "format" not in r:
            return 1 if seq == 1 else self.format
        v = r["format"]
        if type(v) is not int or v < 1:
            raise Bad("format %r is not a version number" % (v,))
        if v == 1:
            raise Bad("format 1 is written by leaving format out")
        if v > FORMAT:
            raise Bad("format %d is newer than this checker reads (1 to %d)" % (v, FORMAT))
        if seq > 1 and v <= self.format:
            raise Bad("format %d in a ledger of format %d: a format is only ever raised" % (v, self.format))
        return v

    def check_batch(self, r, at, fmt):
        if "ledger" in r or "store" in r:
            raise Bad("only the first record names the ledger and its store")
        entries, campaigns, statements = r.get("entries", []), r.get("campaigns", []), r.get("statements", [])
        for name, v in (("entries", entries), ("campaigns", campaigns), ("statements", statements)):
            if not isinstance(v, list) or (name in r and not v):
                raise Bad("%s is not a non-empty array" % name)
        if statements and (entries or campaigns):
            raise Bad("a record with statements holds no entries or terms")
        if not (entries or campaigns or statements):
            raise Bad("the record has no entries, terms or statements")
        last = None
        for t in campaigns:
            check_keys("terms", t, TERMS_KEYS, TERMS_REQUIRED)
            check_id("campaign", t["id"])
            if last is not None and utf8(t["id"]) <= utf8(last):
                raise Bad("terms are not sorted by id, each once, at %r" % t["id"])
            last = t["id"]
            check_int("visit_block_size of %r" % t["id"], t["visit_block_size"], 1)
            for k in ("signup_reward_cents", "visit_block_reward_cents", "cap_cents"):
                check_int("%s of %r" % (k, t["id"]), t[k])
            if "name" in t and (not isinstance(t["name"], str) or t["name"] == ""):
                raise Bad("the name of %r is not a non-empty string" % t["id"])
            countries = t.get("eligible_countries")
            if countries is not None and (not isinstance(countries, list) or not countries or
                                          not all(isinstance(c, str) for c in countries)):
                raise Bad("eligible_countries of %r is not a non-empty array of strings" % t["id"])
            parse_time(t["payable_after"], utc_only=False)
        last = None
        for e in entries:
            check_keys("an entry", e, ENTRY_KEYS, ENTRY_REQUIRED)
            k = (check_id("campaign", e["campaign"]), check_id("creator", e["creator"]))
            if last is not None and (utf8(k[0]), utf8(k[1])) <= (utf8(last[0]), utf8(last[1])):
                raise Bad("entries are not sorted by campaign and creator, each once, at %r" % (k,))
            last = k
            for f in ("handle", "country", "status"):
                if f in e and (not isinstance(e[f], str) or e[f] == ""):
                    raise Bad("%s of creator %r is not a non-empty string" % (f, e["creator"]))
            q, s = check_int("qualified", e["qualified"]), check_int("signups", e["signups"])
            old = self.totals.get(k)
            if old and (q < old["qualified"] or s < old["signups"]):
                raise Bad("totals of creator %r in campaign %r decrease: qualified %d -> %d, signups %d -> %d"
                          % (k[1], k[0], old["qualified"], q, old["signups"], s))
            if "accepted_at" in e:
                if fmt < 2:
                    raise Bad("accepted_at of creator %r in a ledger of format %d" % (e["creator"], fmt))
                parse_time(e["accepted_at"], utc_only=True)
                if e["accepted_at"] == "0001-01-01T00:00:00Z":
                    raise Bad("accepted_at of creator %r is the zero time: written by leaving it out" % e["creator"])
            # Both in UTC without trailing zeros: equal times are equal strings.
            if old and "accepted_at" in old and e.get("accepted_at") != old["accepted_at"]:
                raise Bad("accepted_at of creator %r in campaign %r changes: %s -> %s"
                          % (k[1], k[0], old["accepted_at"], e.get("accepted_at", "none")))
        sealed = []
        for st in statements:
            c = st.get("campaign") if isinstance(st, dict) else None
            if c not in self.terms:
                raise Bad("a statement of campaign %r, which has no terms" % (c,))
            if c in self.sealed or c in sealed:
                raise Bad("the statement of campaign %r is sealed already" % c)
            if at <= parse_time(self.terms[c]["payable_after"], utc_only=False):
                raise Bad("campaign %r is payable after %s, not at %s" % (c, self.terms[c]["payable_after"], r["at"]))
            creators = {cr: e for (camp, cr), e in self.totals.items() if camp == c}
            if st != compute_statement(c, self.terms[c], creators, self.head):
                raise Bad("the statement of campaign %r is not the one the records before it compute" % c)
            sealed.append(c)
        if [utf8(c) for c in sealed] != sorted(utf8(c) for c in sealed):
            raise Bad("statements are not sorted by campaign")
        for e in entries:
            self.totals[(e["campaign"], e["creator"])] = e
        for t in campaigns:
            self.terms[t["id"]] = t
        for st in statements:
            self.sealed[st["campaign"]] = st
        parts = []
        if entries:
            parts.append("%d entries" % len(entries))
        if campaigns:
            parts.append("terms of " + ", ".join(t["id"] for t in campaigns))
        for st in statements:
            parts.append("sealed %s: %d cents to %d creators" % (st["campaign"], st["total_cents"], len(st["rows"])))
        return "; ".join(parts)


# What Go's bytes.TrimSpace and strings.TrimSpace trim: unicode.IsSpace.
GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" +
                     "".join(chr(c) for c in range(0x2000, 0x200B)))


def trim_space(b):
    """Returns b without the white space around it, as Go's bytes.TrimSpace."""
    def space_at(b, i, n):
        try:
            return b[i:i + n].decode("utf-8") in GO_SPACE
        except UnicodeDecodeError:
            return False
    while b:
        n = next((n for n in range(1, 4) if space_at(b, 0, n)), 0)
        if not n:
            break
        b = b[n:]
    while b:
        n = next((n for n in range(1, 4) if len(b) >= n and space_at(b, len(b) - n, n)), 0)
        if not n:
            break
        b = b[:-n]
    return b


def read_key(args):
    """The ledger key as clickgate gets it from its flags."""
    if args.key_file:
        with open(args.key_file, "rb") as f:
            key = trim_space(f.read())
    else:
        with open(args.click_secret_file, "rb") as f:
            secret = trim_space(f.read())
        if not secret:
            raise SystemExit("check_ledger.py: %s is empty" % args.click_secret_file)
        key = hmac.new(secret, KEY_LABEL, hashlib.sha256).digest()
    if not key:
        raise SystemExit("check_ledger.py: the ledger key is empty")
    return key


def main(argv):
    p = argparse.ArgumentParser(description="Check a clickgate ledger file (see counter/ledger/doc.go).")
    k = p.add_mutually_exclusive_group(required=True)
    k.add_argument("--key-file", help="the file given to clickgate as --ledger-key-file")
    k.add_argument("--click-secret-file", help="file holding the click secret, for the default ledger key")
    p.add_argument("ledger", help="the ledger file, DIR/ledger.jsonl")
    args = p.parse_args(argv)
    try:
        key = read_key(args)
        f = open(args.ledger, "rb")
    except OSError as e:
        print("check_ledger.py: %s" % e, file=sys.stderr)
        return 2
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    ledger = Ledger(key)
    with f:
        for n, line in enumerate(f, 1):
            try:
                summary = ledger.check(line)
            except Bad as e:
                print("%s line %d: %s" % (args.ledger, n, e), file=sys.stderr)
                return 1
            print("line %d %s" % (n, summary))
    print("ok: %d records, ledger %s, store %s, head %s" % (ledger.seq, ledger.ledger or "-", ledger.store or "-", ledger.head))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

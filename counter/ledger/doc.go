// Package ledger is the append-only ledger that creators are paid from: one
// record per flush, each holding the cumulative totals of the creators whose
// totals changed, each checksummed and hash-chained to the one before.
//
// # File format
//
// A ledger is one file, <dir>/ledger.jsonl: UTF-8 JSON Lines, one record
// per line, each line ending with '\n' (0x0A), no blank lines. A line is one
// JSON object whose members come in this order:
//
//	seq      record number: 1 for the first record, then previous + 1
//	at       when the flush read the counters, RFC 3339 in UTC ("Z"),
//	         with up to nine fractional digits and no trailing zeros
//	entries  non-empty array of {"campaign","creator","qualified","signups"},
//	         sorted by campaign then creator (byte order), each creator at
//	         most once; qualified and signups are cumulative totals, ≥ 0
//	prev     lowercase hex SHA-256 of the previous record's line, including
//	         its '\n'; 64 zeros in the first record
//	len      byte length of the record's body (below)
//	crc32c   CRC-32C (Castagnoli, as in iSCSI and ext4: reflected polynomial
//	         0x82F63B78, initial value and final XOR 0xFFFFFFFF) of the
//	         body, as 8 lowercase hex digits
//
// Example, two records (the second chained to the first):
//
//	{"seq":1,"at":"2026-05-11T12:00:00Z","entries":[{"campaign":"spring26","creator":"leo","qualified":87,"signups":0},{"campaign":"spring26","creator":"maya","qualified":1200,"signups":3}],"prev":"0000000000000000000000000000000000000000000000000000000000000000","len":260,"crc32c":"259b8f5b"}
//	{"seq":2,"at":"2026-05-11T12:01:00Z","entries":[{"campaign":"spring26","creator":"leo","qualified":90,"signups":1}],"prev":"01732dd6b2b256e98ee9ef6c755a46a2454cdceb523d6760c0441fcecd1ca027","len":190,"crc32c":"cc6ee673"}
//
// The body is the JSON object {"seq","at","entries","prev"} alone, exactly
// as encoding/json writes it (no white space, HTML characters not escaped).
// The line is the body without its closing '}', followed by
//
//	,"len":<len in decimal>,"crc32c":"<8 hex digits>"}\n
//
// so that for a line L (without its '\n') the body is L[:len-1] + "}" and
// L[len-1:] is exactly `,"len":…,"crc32c":"…"}`. A reader needs no JSON
// canonicalisation: it checks len and crc32c on those bytes, then parses.
// Totals of one creator never decrease from one record to the next; a
// creator's totals are those of the last record that lists it.
//
// Checking a ledger in Python (the standard library has no CRC-32C):
//
//	import hashlib, json, sys
//	T = []
//	for i in range(256):
//	    for _ in range(8): i = (i >> 1) ^ (0x82F63B78 if i & 1 else 0)
//	    T.append(i)
//	def crc32c(b, c=0xFFFFFFFF):
//	    for x in b: c = T[(c ^ x) & 0xFF] ^ (c >> 8)
//	    return c ^ 0xFFFFFFFF
//	prev, seq, totals = "0" * 64, 0, {}
//	for n, line in enumerate(open(sys.argv[1], "rb"), 1):
//	    r = json.loads(line); k = r["len"]; body = line[:k - 1] + b"}"
//	    assert line.endswith(b"\n") and line[k - 1:] == b',"len":%d,"crc32c":"%s"}\n' % (k, r["crc32c"].encode()), n
//	    assert crc32c(body) == int(r["crc32c"], 16) and r["seq"] == seq + 1 and r["prev"] == prev, n
//	    for e in r["entries"]:
//	        old = totals.get((e["campaign"], e["creator"]), (0, 0))
//	        assert e["qualified"] >= old[0] and e["signups"] >= old[1], n
//	        totals[(e["campaign"], e["creator"])] = (e["qualified"], e["signups"])
//	    prev, seq = hashlib.sha256(line).hexdigest(), r["seq"]
//	print(seq, "records, head", prev)
//
// Verify checks the same and more: that each body is in the canonical form
// above (so that one batch has exactly one encoding), ids (1 to MaxIDLen
// bytes of UTF-8, no control characters), and no unknown members.
//
// # Writing and recovery
//
// Append writes one whole line with one write(2) and fsyncs the file before
// it returns; Open fsyncs the file and its directory when it creates them.
// A failed write or fsync breaks the Ledger (ErrBroken): it is never
// retried on the same file descriptor, since after a failed fsync Linux may
// have marked the unwritten pages clean.
//
// A crash during an append can leave a torn tail: a last line without its
// '\n', or lines that fail len, crc32c or JSON (pages written out of order)
// with no well-framed line after them. Open truncates a torn tail back to
// the end of the last good record and reports the bytes in Recovered; that
// batch was never acknowledged, so the flusher writes it again under the
// same seq. Any other bad record (a well-framed record with the wrong seq,
// prev, totals or form, or a bad line followed by a good one) is
// corruption: Open fails naming it and changes nothing. Verify never
// repairs: it reports a torn tail as an error too.
package ledger

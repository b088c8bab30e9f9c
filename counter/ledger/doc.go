// Package ledger is the append-only ledger that creators are paid from. Its
// first record binds it to one store; then each flush writes one record
// with the cumulative totals of the creators whose totals changed and the
// campaign terms that changed, and the flush after a campaign's end plus
// signup grace writes one that seals the campaign's final statement. Each
// record is checksummed, authenticated with the ledger key and
// hash-chained to the one before.
//
// # File format
//
// A ledger is one file, <dir>/ledger.jsonl: UTF-8 JSON Lines, one record
// per line, each line ending with '\n' (0x0A), no blank lines. A line is one
// JSON object whose members come in this order; those in brackets are left
// out when empty:
//
//	seq           record number: 1 for the first record, then previous + 1
//	at            when the flush read the counters, RFC 3339 in UTC ("Z"),
//	              with up to nine fractional digits and no trailing zeros
//	[ledger]      first record only: the ledger's id (Init writes 32
//	              random hex digits)
//	[store]       first record only: the id of the store the ledger flushes
//	[format]      the format version from this record on (see Versions):
//	              2 in the first record of a new ledger, or in the record
//	              that upgrades a version 1 ledger; absent elsewhere
//	[entries]     array of {"campaign","creator","qualified","signups",
//	              ["handle"],["country"],["status"],["accepted_at"]}, sorted
//	              by campaign then creator (byte order), each creator at most
//	              once; qualified and signups are cumulative totals, ≥ 0;
//	              handle, country and status are the creator's as of this
//	              flush (a statement knows the statuses active, invited and
//	              suspended); accepted_at (version 2 on) is when the creator
//	              accepted the campaign's terms on their dashboard page,
//	              RFC 3339 in UTC as at is
//	[campaigns]   array of campaign terms {"id",["name"],
//	              "signup_reward_cents","visit_block_size",
//	              "visit_block_reward_cents","cap_cents",
//	              ["eligible_countries"],"payable_after"}, sorted by id, each
//	              id at most once; amounts are cents ≥ 0, visit_block_size
//	              ≥ 1; payable_after is the campaign's end plus its signup
//	              grace, RFC 3339
//	[statements]  array of the final statements this record seals, as
//	              package payout writes them: {"campaign","statement":"final",
//	              "currency","total_cents","rows":[{"creator_id","handle",
//	              "country","qualified_visits","signups","earned_cents",
//	              "capped_cents","currency","status","reference"},…],
//	              "ledger_head"}
//	prev          lowercase hex SHA-256 of the previous record's line,
//	              including its '\n'; 64 zeros in the first record
//	len           byte length of the record's body (below)
//	crc32c        CRC-32C (Castagnoli, as in iSCSI and ext4: reflected
//	              polynomial 0x82F63B78, initial value and final XOR
//	              0xFFFFFFFF) of the body, as 8 lowercase hex digits
//	hmac          HMAC-SHA256 of the body with the ledger key, as 64
//	              lowercase hex digits
//
// Example, with the ledger key "example ledger key" (those 18 ASCII bytes):
// the first record, a flush with terms and entries (maya accepted the
// terms at 09:41:07, leo before acceptance times were recorded), a flush
// after the campaign's end plus grace, and the record that seals its
// statement:
//
//	{"seq":1,"at":"2026-05-11T12:00:00Z","ledger":"9f86d081884c7d659a2feaa0c55ad015","store":"store-7c2e91","format":2,"prev":"0000000000000000000000000000000000000000000000000000000000000000","len":189,"crc32c":"f9566380","hmac":"1c176e2e434775aa018c4ea54ebe0e3b88e864de22ad4915cedeb9022f9e3889"}
//	{"seq":2,"at":"2026-05-11T12:01:00Z","entries":[{"campaign":"spring26","creator":"leo","qualified":87,"signups":0,"handle":"@leo","country":"FR","status":"active"},{"campaign":"spring26","creator":"maya","qualified":1200,"signups":3,"handle":"@maya","country":"US","status":"active","accepted_at":"2026-05-11T09:41:07Z"}],"campaigns":[{"id":"spring26","name":"Spring 2026","signup_reward_cents":10000,"visit_block_size":1000,"visit_block_reward_cents":10000,"cap_cents":2000000,"eligible_countries":["US"],"payable_after":"2026-06-25T00:00:00Z"}],"prev":"b7aca1f54487dbfa24bb8aebecf6632c00942ec50a6534baf0375381a7067ec9","len":621,"crc32c":"b4a092cb","hmac":"9b66626f1228555242dc293cda9a56fc30455e76259f8eb6e2b5f28447f0f75d"}
//	{"seq":3,"at":"2026-06-25T00:01:00Z","entries":[{"campaign":"spring26","creator":"maya","qualified":2300,"signups":4,"handle":"@maya","country":"US","status":"active","accepted_at":"2026-05-11T09:41:07Z"}],"prev":"159313425886b9eafefd9448bd3357b89ddfe9c6f9cdfa0bc024fab1e5f9c03a","len":280,"crc32c":"93f7ed31","hmac":"67a68f2221e14e6f000e9eb909ca9a18b1cda0dd4401cba090bfbfc3a7229eb4"}
//	{"seq":4,"at":"2026-06-25T00:01:00Z","statements":[{"campaign":"spring26","statement":"final","currency":"USD","total_cents":60000,"rows":[{"creator_id":"leo","handle":"@leo","country":"FR","qualified_visits":87,"signups":0,"earned_cents":0,"capped_cents":0,"currency":"USD","status":"ineligible_country","reference":"cg_wsg7y7ssnljhh6jmaahzsfzrgj2mbiqu"},{"creator_id":"maya","handle":"@maya","country":"US","qualified_visits":2300,"signups":4,"earned_cents":60000,"capped_cents":60000,"currency":"USD","status":"payable","reference":"cg_z44d4qm4hlsme5ii6qyqny3a44y2hcho"}],"ledger_head":"bc0162e739ad774c73cb247f4f55458dee245cc060ef96144648879206d7b0d4"}],"prev":"bc0162e739ad774c73cb247f4f55458dee245cc060ef96144648879206d7b0d4","len":732,"crc32c":"a50a9162","hmac":"edf96b2d09b41e36459c7d8ae1b26c8139b654f2e6260d961fb8cd515e255cdc"}
//
// The body is the JSON object {"seq",…,"prev"} alone, exactly as
// encoding/json writes it (no white space, HTML characters not escaped).
// The line is the body without its closing '}', followed by
//
//	,"len":<len in decimal>,"crc32c":"<8 hex digits>","hmac":"<64 hex digits>"}\n
//
// so that for a line L (without its '\n') the body is L[:len-1] + "}" and
// L[len-1:] is exactly `,"len":…,"crc32c":"…","hmac":"…"}`. A reader needs
// no JSON canonicalisation: it checks len, crc32c and hmac on those bytes,
// then parses.
//
// # The ledger key
//
// The chain proves order, not authorship: anyone who edits a record can
// recompute its crc32c and every prev after it. The hmac proves that the
// record was written by a holder of the ledger key. The key is the
// operator's --ledger-key-file (its bytes without the white space around
// them), or by default HMAC-SHA256(click secret, "clickgate/ledger-key/v1")
// (DeriveKey): the click secret is the HMAC key, the 23 ASCII bytes of the
// label the message, and the 32 bytes of the result the ledger key. Whoever checks a ledger needs the key; whoever holds it can
// write records, so keep it from those the ledger must be proof against.
//
// # Rules
//
// Besides its framing (len, crc32c, hmac), a ledger is valid when:
//
//   - the first record has seq 1, prev 64 zeros, and exactly the members
//     seq, at, ledger, store, [format] and prev before its trailer; no
//     other record has ledger or store;
//   - format, when present, is 2 (version 1 is written by leaving format
//     out); in a record after the first only while the ledger is at
//     version 1: a format is raised once and never lowered. accepted_at
//     appears only in records of version 2 or later;
//   - every other record has seq = previous + 1, prev = the SHA-256 of the
//     previous line, and entries or campaigns or both, or statements alone;
//   - ids (ledger, store, campaign, creator) are 1 to MaxIDLen bytes of
//     UTF-8 without control characters;
//   - the totals of a creator never decrease from one record to the next.
//     A creator's totals and details are those of the last record that
//     lists it, and a campaign's terms those of the last record that lists
//     them;
//   - a creator's accepted_at, once in an entry, is in every later entry
//     of that creator, unchanged: the first acceptance is kept;
//   - a statement seals a campaign that has terms, at most once, in a
//     record whose at is after the campaign's payable_after; it is exactly
//     the statement package payout computes (payout.Compute, statement
//     "final") from the campaign's terms and its creators' entries as the
//     records before it left them, with ledger_head equal to the record's
//     prev. Records after it never change it: each creator is paid from it
//     once;
//   - the body is in the canonical form above (so that one batch has
//     exactly one encoding) and has no unknown members.
//
// Removing records from the end leaves a valid ledger: compare its head
// with one kept from before ([Report.Extends]).
//
// # Versions
//
// A ledger's format version is named by its first record: absent means 1,
// the format as it was before accepted_at. Version 2 adds one member,
// accepted_at in entries; nothing else changed, and statements are the
// same in both. A reader of version 2 reads version 1 ledgers unchanged.
//
// Init writes new ledgers as version 2. A version 1 ledger stays version 1
// until a flush first has an acceptance time to write: that record carries
// "format":2 with its entries, and the ledger is version 2 from it on
// (Report.Format says which). Its records before it stay as they were, and
// their chain and hmacs still verify.
//
// A reader of version 1 only (a clickgate or a check_ledger.py from before
// accepted_at) refuses a version 2 first record or upgrade record as an
// unknown member. Do not run an older clickgate on a version 2 ledger: it
// would take the version 2 records at the end of the file for a torn tail
// and truncate them (a version 1 record after them makes it refuse the
// ledger instead). Check a version 2 ledger with this package's Verify or
// its check_ledger.py.
//
// testdata/check_ledger.py checks a ledger against these rules with
// Python's standard library alone, sharing no code with this package (it
// computes the statements again with the rules of package payout):
//
//	python3 counter/ledger/testdata/check_ledger.py --key-file KEYFILE <dir>/ledger.jsonl
//
// where KEYFILE is the operator's --ledger-key-file; for the default key,
// give --click-secret-file with the file holding the click secret instead.
// It reads versions 1 and 2, prints each record and the head, or names the
// first bad line and exits 1. Verify checks the same, and the canonical
// form.
//
// # Writing and recovery
//
// Append writes one whole line with one write(2) and fsyncs the file before
// it returns; Open fsyncs the file and its directory when it creates them.
// A failed write or fsync breaks the Ledger (ErrBroken): the file is never
// fsynced again as it is, since after a failed fsync Linux may have marked
// the unwritten pages clean. The next Append or Init first cuts the file
// back to the end of its last good record and fsyncs that, and writes only
// once that worked.
//
// A crash during an append can leave a torn tail: a last line without its
// '\n', or lines that fail len, crc32c or JSON (pages written out of order)
// with no well-framed line after them. Open truncates a torn tail back to
// the end of the last good record and reports the bytes in Recovered; that
// batch was never acknowledged, so the flusher writes it again under the
// same seq (a torn first record is written again by Init). Any other bad
// record (a well-framed record whose hmac fails, or with the wrong seq,
// prev, totals, statement or form, or a bad line followed by a good one)
// is corruption: Open fails naming it and changes nothing. Verify never
// repairs: it reports a torn tail as an error too.
package ledger

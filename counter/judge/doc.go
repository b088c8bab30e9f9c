// Package judge decides the visits of one partition of the visit log:
// qualified, duplicate, over the velocity limit or over a daily budget.
// It is pure and
// deterministic: its decisions and its checkpoint depend only on the
// checkpoint it started from and the visits applied since, in order, never
// on wall time, map order or how the visits were batched. So a crash, a
// restart or a handover that replays the log from the last checkpoint
// reaches the same counts.
//
// # Partitions
//
// A partition is a campaign and a slot of its creators: Partition(campaign,
// creator, n), FNV-1a of campaign + "\x00" + creator mod n. Not a slot of
// the visitor key: a visitor has two keys (Visit.Key from the visitor
// cookie or the network, and Visit.Also, the other), both derived from
// campaign and creator but hashing to different slots; partitions by
// visitor key would judge the two in different partitions, each with its
// own filter, and count the visitor twice. By creator, every key of a
// creator's visitors is in one judge. The cost is skew: one creator's
// traffic cannot spread over several judges.
//
// # Rules
//
// Dedupe: per (campaign, dedupe window Visit.Window) the partition has one
// Bloom filter, sized for 2 × Params.Expected keys at Params.FP, since a
// new visitor inserts two (and every partition may have all of a
// campaign's visitors: see Params.Expected). A visit is Duplicate when its
// Key is in the filter, else Qualified; either way Key and Also (when
// HasAlso) are added. A window is dropped once the judge's clock, the
// largest Visit.At applied, passes its Visit.Expires; a visit that comes
// after its window was dropped is OutOfWindow (see Apply).
//
// The filter cannot be flooded: it is a scalable Bloom filter (Almeida et
// al., 2007) of up to MaxLayers layers. Keys go into its newest layer; once
// that one's rate, read from its fill, reaches its own, the next new key
// starts a layer twice as large at half the rate. A key is in the filter
// when it is in any layer, so the chance that a new visitor is a false
// duplicate stays below Params.FP while the window has the visitors it was
// sized for (one layer, a plain filter's memory), and below twice it
// (FP + FP/2 + FP/4 + ...) whatever the number of visitors, until the
// window has all its layers, about 31 times the keys it was sized for
// (WindowFill.Full).
//
// Velocity: person visits per network (Visit.Network) within
// Params.VelocityWindow, by the judge's clock, duplicates included (a farm
// repeating itself is still a farm) and over-the-limit visits included (a
// network that keeps clicking stays flagged). The visits past
// Params.VelocityMax are Velocity: not paid and not in the filter, so a
// visitor's later visit within limits still qualifies. The limit holds per
// partition: a network visiting creators of several partitions has
// VelocityMax in each. The window is approximated in time, not in count:
// each network has a count per granule of VelocityWindow/7 for the
// current granule and the 7 before it, so a visit counts for at least
// VelocityWindow and at most VelocityWindow + VelocityWindow/7. A network
// is forgotten once all 8 granules are past; until then it is never
// evicted, so memory is about 40 bytes per network seen in the last 8
// granules.
//
// Budgets: qualified visits per campaign per UTC day of the judge's clock,
// per network (Visit.Network, Params.BudgetNetwork) and per block of
// networks (Visit.Block, Params.BudgetBlock). A visit that would qualify
// (its Key is not in the filter) from a network or a block that has had
// its budget today is Budget: redirected, not paid, and not in the
// filter (see Apply). Only qualified visits count against budgets, so
// distinct visitor keys from one network (rotated User-Agents or cookie
// jars) spend them, and a duplicate is a duplicate whatever the budget.
// Budgets hold per partition, like velocity: all of one creator's visits
// are in one partition, but a network that visits creators of several
// partitions has the budgets of each. When the clock enters a new day,
// the day before is dropped: memory is about 40 bytes per network and per
// block with a qualified visit today. A network or block of 0 is unknown
// and has no budget.
//
// Time is only ever the judge's clock, the largest Visit.At applied. A
// visit older than the clock counts for velocity in the clock's granule
// (kept longer, never shorter), and against the budgets of the clock's
// day. An edge whose clock runs ahead moves the
// judge's clock ahead: windows are dropped and granules pass early by
// that much; the hour of grace in Visit.Expires absorbs skew below it.
//
// MarkOnly visits add their keys and are counted nowhere, velocity and
// budgets included.
//
// Counters: (campaign, creator, Visit.Day, reason) += 1 for every visit
// that is not MarkOnly, and (campaign, creator, Visit.Link, Visit.Day,
// reason) += 1 for those with a link. Payouts are computed from the
// creators' counters alone; a link's say which link brought what.
//
// # Policy change
//
// The policy (velocity and budgets, see Policy) may change at a
// checkpoint, never between two: SetPolicy, or UnmarshalBinary into a
// judge of the new policy. The change applies to the visits judged after
// the checkpoint it was adopted at, and the next checkpoint records it.
// A store that may have judged visits after its last checkpoint (a crash)
// replays them under that checkpoint's policy (CheckpointParams) and
// adopts the new one after, then checkpoints at once: so every visit is
// judged once, under one policy, and a replay from any checkpoint decides
// as the first judgement did. The state carries over (see SetPolicy): a
// network that spent its budget today under the old policy has spent it
// under the new one too, up to the new budget.
//
// # Checkpoint
//
// MarshalBinary writes, and UnmarshalBinary reads, all in little endian,
// varints as encoding/binary writes them:
//
//	magic     "CGJUDGE" and the format version, 7 (8 bytes)
//	params    Expected u64 | FP (IEEE 754) u64 | Partitions u32 |
//	          VelocityMax u32 | VelocityWindow (ns) u64 | BudgetNetwork u32 |
//	          BudgetBlock u32 | layers a window may have (uvarint, 1 to
//	          MaxLayers), each: bits m u64 | hash functions k u32 | bits
//	          set when sealed u64 | Keying (uvarint length <= 256, bytes)
//	offset    uvarint length <= 256, bytes (SetOffset)
//	clock     varint: largest Visit.At applied, ms; math.MinInt64 if none
//	windows   uvarint count <= 4096, in (campaign, start) order, each:
//	            campaign (uvarint length <= 256, bytes) | start varint |
//	            expires varint | layers uvarint, then each layer, oldest
//	            first: (zero words uvarint, non-zero words uvarint, those
//	            words u64 each) until its m/64 words
//	networks  uvarint count, in the order first counted, each: key (u64,
//	            each once) | lane mask byte | uvarint count per set bit i,
//	            the visits in granule G-7+i, G the granule of the clock
//	budgets   of the clock's UTC day: uvarint campaigns, in id order, each:
//	            id (uvarint length, bytes) | networks | blocks; each of
//	            those a uvarint count, then in the order first counted:
//	            key (u64, never 0, each once) | uvarint qualified visits,
//	            1 to the budget
//	counters  uvarint campaigns, in order, each: id (uvarint length,
//	            bytes) | uvarint creators, in order, each: id | uvarint
//	            days, each: day (first varint, then uvarint difference
//	            from the previous) | uvarint mask of reasons with a
//	            count | uvarint count per set bit
//	links     as counters, with a level of links between creators and
//	            days: uvarint campaigns, each: id | uvarint creators,
//	            each: id | uvarint links, in order, each: code (not
//	            empty) | uvarint days, each as above
//	batches   uvarint count <= 16384, then each batch id (u64), oldest
//	            first, each once (NewBatch)
//	crc       CRC-32C of everything before, u32
//
// Every layer but the last of a window is sealed (it has at least the
// bits set that seal it), and no layer is empty.
//
// Version 6, written before the judge remembered batch ids, is version 7
// without the batches section: it is read with none.
// Version 5, written while the networks were in key order, is version 6
// with the networks in key order, each key as a uvarint difference from
// the previous key (the first from 0): it is read with its networks
// counted in that order.
// Version 4, written while the budgets were in key order, is version 5
// with each budget's keys in key order, each as a uvarint difference from
// the previous key (the first from 0, so never 0): it is read with its
// keys counted in that order.
// Version 3, written before link counters, is version 4 without the
// links section: it is read with no link counters.
// Version 2, written before layers, is version 3 with the first layer's m
// and k alone in the params, and without a count of layers in a window:
// each window is one layer. It is read as such, its first layer maybe
// past its seal (a window flooded by that build keeps its rate; the next
// new key starts a second layer), and written again as version 7.
// Version 1, written before budgets, is version 2 without BudgetNetwork,
// BudgetBlock and the budgets section, and without the budget reason in
// the counters. It is read as a checkpoint of budgets 0.
//
// Layer i of a window is a filter of n_i = 2 × Expected × 2^i keys at rate
// p_i = FP/2^(i+1), but for the first, which is the filter of n_0 keys at
// FP (the filter before layers) and is sealed at FP/2: it has k_i =
// round(log2(1/p_i)) functions and m_i bits, the least multiple of 64
// with (1 - e^(-k·n/m))^k <= p (with FP for the first), and is sealed at
// ceil(m_i × p_i^(1/k_i)) bits set, where a key not in it is found with
// probability p_i. A window has at most MaxLayers layers, fewer when they
// would have over 2^32 bits together. Key's bits in a layer are, for i
// from 0 to k-1, the high 64 bits of (h1 + i·h2) × m, where h1 and h2 are
// derived from the key's first and last 8 bytes (little endian) by
// murmur3's fmix64 (see counter.VisitorKey.Probes), h2 with its low bit
// set; bit p is bit p%64 of word p/64.
//
// The sizing params are the fingerprint: a checkpoint made with another
// Expected, FP, Partitions or Keying, or whose layers differ because the
// sizing rule changed, is refused with ErrParams. The policy params
// record the policy the state was judged under: a judge of another policy
// restores the state under the checkpoint's, then adopts its own (see
// Policy change). The filters dominate the size: m/8 bytes per layer near
// its seal, less while it fills (a run of zero words costs a byte or
// two). At the defaults (1M visitors, fp 0.001) a window's first layer is
// 3.4 MiB: 28.8 bits, 3.6 bytes, per visitor of two keys; with all five
// layers, 31 times the visitors, 140 MiB. A network costs 10-13 bytes, a network or block with a budget
// count 3-12, a creator-day or a link-day about 8. Decoding checks the CRC first and bounds every count by what
// the rest of the input can hold and every string by 256 bytes, then
// refuses a checkpoint that does not re-encode to itself byte for byte, so
// each state has one checkpoint.
package judge
